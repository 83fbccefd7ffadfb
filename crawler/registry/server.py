"""A Spawning-compatible opt-out registry server, for loopback (tests, demos, a local mirror).

Serves one registry (:class:`~crawler.registry.index.RegistryIndex` or
:class:`~crawler.registry.sqlite.SqliteRegistry`) with the request and answer shapes of Spawning's
"Do Not Train" API (protocols.md §8.1), so the same client code can talk to either:

* ``POST /api/v2/query/urls`` (a trailing ``/`` too): the body holds URLs, one per line (blank
  lines skipped); the answer is ``{"urls": [{"url": ..., "optOut": bool, "optIn": false}, ...]}``
  in request order.  A URL that cannot be looked up gets ``"optOut": false`` and an ``"error"``.
  More than ``max_urls`` URLs, or a body over :data:`MAX_BODY_BYTES`, -> 413; with an
  ``api_key``, a request without ``Authorization: API <key>`` -> 401.  No ``Content-Length``
  (or a ``Transfer-Encoding``) -> 411; a negative or non-numeric one, or a body that ends
  before its ``Content-Length`` -> 400.
* ``GET /health`` -> ``{"status": "ok", "entries": N}``.
* anything else -> 404.  Every error answer is JSON: ``{"error": "..."}``.

The server stays bounded whatever clients do: at most ``max_connections`` connections at once
(:data:`DEFAULT_MAX_CONNECTIONS`; one more gets a bare ``503`` with ``Retry-After`` and is
closed), at most ``max_buffer_bytes`` of request bodies held across all requests at once
(:data:`DEFAULT_MAX_BUFFER_BYTES`; a body that does not fit -> 503 with ``Retry-After``,
unread), and every socket read waits at most ``read_timeout`` seconds, a whole body at most
``read_timeout`` seconds in all (:data:`DEFAULT_READ_TIMEOUT`; a body not received in time ->
408, and an idle or stalled connection is closed).  Bodies are decoded and split in small
blocks, so a body of many short lines costs no more memory than its bytes.

Nothing is logged per request; :attr:`RegistryServer.requests` records each one instead, so a
test can count calls.
"""

from __future__ import annotations

import codecs
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

from crawler.registry.entries import canonical_url
from crawler.registry.index import RegistryIndex
from crawler.registry.spawning import SPAWNING_PATH
from crawler.registry.sqlite import SqliteRegistry, open_registry

#: Request bodies larger than this are refused (413) without being read.
MAX_BODY_BYTES = 16 * 2**20
DEFAULT_PORT = 8700
#: Connections served at once; one more is answered 503 (Retry-After) and closed.
DEFAULT_MAX_CONNECTIONS = 16
#: Request body bytes held at once across all requests; a body that does not fit -> 503.
DEFAULT_MAX_BUFFER_BYTES = 64 * 2**20
#: Seconds any socket read may wait, and a whole request body may take.
DEFAULT_READ_TIMEOUT = 10.0
#: Seconds a client is asked to wait (``Retry-After``) when the server is at a limit.
RETRY_AFTER = 1
_BLOCK = 64 * 1024


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


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")


def _busy_answer() -> bytes:
    body = json.dumps({"error": "too many connections; retry later"}).encode()
    return _BUSY % (RETRY_AFTER, len(body), body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    #: set by :meth:`RegistryServer.start`
    max_connections = DEFAULT_MAX_CONNECTIONS

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._active = 0
        self._active_lock = threading.Lock()
        self.refused = 0
        super().__init__(*args, **kw)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            busy = self._active >= self.max_connections
            if busy:
                self.refused += 1
            else:
                self._active += 1
        if busy:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._active_lock:
            self._active -= 1

    def _refuse(self, request: socket.socket) -> None:
        """Answer 503 and close, on the accepting thread, never waiting on the client."""
        try:
            request.setblocking(False)
            try:
                while request.recv(_BLOCK):  # what already arrived, so close() sends no RST
                    pass
            except OSError:
                pass
            request.send(_busy_answer())
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            request.close()

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
                 allow_public: bool = False,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
                 read_timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        if not allow_public and not _is_loopback(host):
            raise ValueError(f"the registry server listens on loopback (127.0.0.0/8, ::1) only, "
                             f"not {host!r}; pass allow_public=True to serve other networks")
        if api_key is not None and not api_key:
            raise ValueError("api_key is empty (use None for no key)")
        if max_urls < 1:
            raise ValueError("max_urls must be at least 1")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_buffer_bytes < MAX_BODY_BYTES:
            raise ValueError(f"max_buffer_bytes must be at least {MAX_BODY_BYTES} "
                             f"(one largest body)")
        if not read_timeout > 0:
            raise ValueError("read_timeout must be positive")
        self.max_connections = max_connections
        self.max_buffer_bytes = max_buffer_bytes
        self.read_timeout = float(read_timeout)
        self._buffered = 0
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
        """Where to POST URLs: :attr:`url` + :data:`~crawler.registry.spawning.SPAWNING_PATH`."""
        return self.url + SPAWNING_PATH

    def start(self) -> RegistryServer:
        cls = _Server6 if ":" in self.host else _Server
        self._server = cls((self.host.strip("[]"), self.port), _handler(self))
        self._server.max_connections = self.max_connections
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

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 because ``max_connections`` were open."""
        return self._server.refused if self._server is not None else 0

    def reserve(self, size: int) -> bool:
        """Count ``size`` body bytes against ``max_buffer_bytes``; False when they do not fit."""
        with self._lock:
            if self._buffered + size > self.max_buffer_bytes:
                return False
            self._buffered += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._buffered -= size

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
        timeout = server.read_timeout  # every socket read and write: idle, stalled clients

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
            if not server.reserve(length):
                self._refuse_unread_body(503, "too many request bodies in progress; retry "
                                              "later", headers=(("Retry-After",
                                                                 str(RETRY_AFTER)),))
                return
            try:
                self._query(length)
            finally:
                server.release(length)

        def _query(self, length: int) -> None:
            try:
                body = _read_body(self.rfile, self.connection, length, server.read_timeout)
            except TimeoutError:
                self._refuse_unread_body(408, f"the body did not arrive within "
                                              f"{server.read_timeout:g} s")
                return
            except OSError:
                self.close_connection = True
                return  # the client went away
            if len(body) < length:
                self._refuse_unread_body(400, f"the body ended after {len(body)} of "
                                              f"{length} bytes (Content-Length)")
                return
            try:
                urls, count = _parse_urls(body, server.max_urls)
            except ValueError:
                self._error(400, "the body is not UTF-8 text")
                return
            del body
            if count > server.max_urls:
                self._error(413, f"{count} URLs; at most {server.max_urls} per request",
                            urls=count)
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


def _read_body(rfile: Any, sock: socket.socket, length: int, timeout: float) -> bytearray:
    """Up to ``length`` bytes of ``rfile``, fewer when the client closes first.

    Raises TimeoutError when the whole body takes over ``timeout`` seconds (each read waits at
    most what is left).  Memory grows with the bytes received, not with ``length``.
    """
    deadline = time.monotonic() + timeout
    body = bytearray()
    try:
        while len(body) < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request body timed out")
            sock.settimeout(left)
            chunk = rfile.read1(min(_BLOCK, length - len(body)))
            if not chunk:
                break
            body += chunk
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass
    return body  # not copied to bytes: one body is held once


def _parse_urls(body: bytes | bytearray, limit: int) -> tuple[tuple[str, ...], int]:
    """What :func:`~crawler.registry.spawning.parse_spawning_request` reads from ``body``, in
    blocks.

    Returns (the first ``limit`` URLs, how many there are); a body of many short or blank
    lines costs no memory for the lines past ``limit``.  Raises ValueError (a
    ``UnicodeDecodeError``) when the body is not UTF-8, wherever the bad bytes are.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    urls: list[str] = []
    count = 0
    pending: list[str] = []  # the line not yet ended by a newline, in pieces
    start = True
    view = memoryview(body)
    size = len(body)
    offset = 0
    while True:
        final = offset + _BLOCK >= size
        text = decoder.decode(view[offset:offset + _BLOCK], final)
        offset += _BLOCK
        if start and text:
            text = text.removeprefix("\ufeff")
            start = False
        lines = text.split("\n")
        if len(lines) > 1:
            pending.append(lines[0])
            lines[0] = "".join(pending)
            pending = []
        last = lines.pop()
        if final:
            lines.append("".join((*pending, last)))
        else:
            pending.append(last)
        for line in lines:
            if s := line.strip():
                count += 1
                if count <= limit:
                    urls.append(s)
        if final:
            return tuple(urls), count


def serve(path: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          api_key_env: str | None = None, max_urls: int = 10_000,
          allow_public: bool = False, max_connections: int = DEFAULT_MAX_CONNECTIONS,
          max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
          read_timeout: float = DEFAULT_READ_TIMEOUT) -> int:
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
                                max_urls=max_urls, allow_public=allow_public,
                                max_connections=max_connections,
                                max_buffer_bytes=max_buffer_bytes, read_timeout=read_timeout)
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
