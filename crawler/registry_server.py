"""A Spawning-compatible opt-out registry server, for loopback (tests, demos, a local mirror).

Serves one registry (:class:`~crawler.registry.RegistryIndex` or
:class:`~crawler.registry.SqliteRegistry`) with the request and answer shapes of Spawning's
"Do Not Train" API (protocols.md §8.1), so the same client code can talk to either:

* ``POST /api/v2/query/urls`` (a trailing ``/`` too): the body holds URLs, one per line (blank
  lines skipped); the answer is ``{"urls": [{"url": ..., "optOut": bool, "optIn": false}, ...]}``
  in request order.  A URL that cannot be looked up gets ``"optOut": false`` and an ``"error"``.
  More than ``max_urls`` URLs, or a body over :data:`MAX_BODY_BYTES`, -> 413; with an
  ``api_key``, a request without ``Authorization: API <key>`` -> 401.
* ``GET /health`` -> ``{"status": "ok", "entries": N}``.
* anything else -> 404.  Every error answer is JSON: ``{"error": "..."}``.

Nothing is logged per request; :attr:`RegistryServer.requests` records each one instead, so a
test can count calls.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crawler.registry import (
    SPAWNING_PATH,
    RegistryIndex,
    SqliteRegistry,
    canonical_url,
    open_registry,
    parse_spawning_request,
)

#: Request bodies larger than this are refused (413) without being read.
MAX_BODY_BYTES = 16 * 2**20
DEFAULT_PORT = 8700


@dataclass(frozen=True, slots=True)
class LoggedQuery:
    """One request the server answered: ``urls`` is the number of URLs asked (0 for others)."""

    method: str
    path: str
    urls: int
    status: int
    time: float


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away: not worth a traceback
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class RegistryServer:
    """Serve ``backend`` on ``host:port`` (0 = a free port) in a background thread.

    ``host`` must be a loopback address unless ``allow_public=True``.  Use as a context manager
    or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, backend: RegistryIndex | SqliteRegistry, *, host: str = "127.0.0.1",
                 port: int = 0, api_key: str | None = None, max_urls: int = 10_000,
                 allow_public: bool = False) -> None:
        if not allow_public and not _is_loopback(host):
            raise ValueError(f"the registry server listens on loopback (127.0.0.0/8, ::1) only, "
                             f"not {host!r}; pass allow_public=True to serve other networks")
        if api_key is not None and not api_key:
            raise ValueError("api_key is empty (use None for no key)")
        if max_urls < 1:
            raise ValueError("max_urls must be at least 1")
        self.backend = backend
        self.host = host
        self.port = port
        self.api_key = api_key
        self.max_urls = max_urls
        self.requests: list[LoggedQuery] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8700``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def query_url(self) -> str:
        """Where to POST URLs: :attr:`url` + :data:`~crawler.registry.SPAWNING_PATH`."""
        return self.url + SPAWNING_PATH

    def start(self) -> RegistryServer:
        cls = _Server6 if ":" in self.host else _Server
        self._server = cls((self.host.strip("[]"), self.port), _handler(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"registry-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RegistryServer:  # noqa: PYI034 - py3.10 has no typing.Self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self, entry: LoggedQuery) -> None:
        with self._lock:
            self.requests.append(entry)

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        if header is None:
            return False
        scheme, _, key = header.strip().partition(" ")
        return scheme.lower() == "api" and hmac.compare_digest(
            key.strip().encode("utf-8"), self.api_key.encode("utf-8"))

    def answer(self, urls: tuple[str, ...]) -> list[dict[str, Any]]:
        """The answer items for ``urls``, in order."""
        errors: dict[str, str] = {}
        valid: list[str] = []
        for url in urls:
            try:
                canonical_url(url)
            except ValueError as exc:
                errors[url] = str(exc)
            else:
                valid.append(url)
        found = self.backend.lookup_many(valid)
        out: list[dict[str, Any]] = []
        for url in urls:
            if url in errors:
                out.append({"url": url, "optOut": False, "optIn": False, "error": errors[url]})
            else:
                item = {"url": url, "optOut": found[url] is not None, "optIn": False}
                if found[url] is not None:
                    # an extension Spawning clients ignore: which entry matched (evidence)
                    item["entry"] = found[url].raw
                    if found[url].line:
                        item["line"] = found[url].line
                out.append(item)
        return out


def _handler(server: RegistryServer) -> type[BaseHTTPRequestHandler]:
    query_paths = {SPAWNING_PATH, SPAWNING_PATH + "/"}

    class Handler(BaseHTTPRequestHandler):
        server_version = "polite-crawler-registry"
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: Any, *, urls: int = 0,
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
            # logged before the answer goes out, so a client that has it finds it in the log
            server.log(LoggedQuery(self.command, self.path, urls, status, time.time()))
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, message: str, **kw: Any) -> None:
            self._send(status, {"error": message}, **kw)

        def _refuse_unread_body(self, status: int, message: str, **kw: Any) -> None:
            self.close_connection = True  # the body was not read: this connection is spent
            self._error(status, message, **kw)

        def _path(self) -> str:
            return self.path.split("?", 1)[0]

        def do_GET(self) -> None:
            if self._path() == "/health":
                self._send(200, {"status": "ok", "entries": len(server.backend)})
            else:
                self._error(404, f"no such resource: GET {self._path()}")

        def do_POST(self) -> None:
            if self._path() not in query_paths:
                self._refuse_unread_body(404, f"no such resource: POST {self._path()}")
                return
            if not server.authorized(self.headers.get("Authorization")):
                self._refuse_unread_body(401, "missing or wrong API key (send "
                                              "'Authorization: API <key>')",
                                         headers=(("WWW-Authenticate", "API"),))
                return
            length_text = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding") or length_text is None:
                self._refuse_unread_body(411, "send the URLs with a Content-Length")
                return
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError(length_text)
            except ValueError:
                self._refuse_unread_body(400, f"bad Content-Length {length_text!r}")
                return
            if length > MAX_BODY_BYTES:
                self._refuse_unread_body(413, f"body over {MAX_BODY_BYTES} bytes")
                return
            body = self.rfile.read(length)
            try:
                urls = parse_spawning_request(body)
            except ValueError:
                self._error(400, "the body is not UTF-8 text")
                return
            if len(urls) > server.max_urls:
                self._error(413, f"{len(urls)} URLs; at most {server.max_urls} per request",
                            urls=len(urls))
                return
            try:
                items = server.answer(urls)
            except Exception as exc:  # noqa: BLE001 - any backend failure is a 500, never "allowed"
                self._error(500, f"registry lookup failed: {type(exc).__name__}: {exc}",
                            urls=len(urls))
                return
            self._send(200, {"urls": items}, urls=len(urls))

        def _not_found(self) -> None:
            self._refuse_unread_body(404, f"no such resource: {self.command} {self._path()}")

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_found

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(path: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          api_key_env: str | None = None, max_urls: int = 10_000,
          allow_public: bool = False) -> int:
    """Serve the registry at ``path`` (an SQLite database or a text list) until interrupted.

    ``api_key_env`` names an environment variable holding the API key clients must send.
    Prints where it serves to stdout; returns an exit code (2 when it cannot start, with one
    line on stderr).
    """
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            print(f"polite-crawl: environment variable {api_key_env} is not set or empty",
                  file=sys.stderr)
            return 2
    try:
        backend = open_registry(path)
    except (OSError, ValueError) as exc:
        print(f"polite-crawl: cannot open registry {os.fspath(path)}: {exc}", file=sys.stderr)
        return 2
    try:
        server = RegistryServer(backend, host=host, port=port, api_key=api_key,
                                max_urls=max_urls, allow_public=allow_public)
        server.start()
    except (OSError, ValueError) as exc:
        print(f"polite-crawl: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        if isinstance(backend, SqliteRegistry):
            backend.close()
        return 2
    problems = getattr(backend, "problems", ())
    kind = "SQLite database" if isinstance(backend, SqliteRegistry) else "text list"
    print(f"Serving {len(backend):,} registry entries ({kind} {os.fspath(path)}"
          f"{f', {len(problems)} problems' if problems else ''}) at {server.query_url}"
          f"{' (API key required)' if api_key else ''}; health: {server.url}/health. "
          f"Ctrl-C stops.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if isinstance(backend, SqliteRegistry):
            backend.close()
    return 0
