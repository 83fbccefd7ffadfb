"""A small multi-site web server for the demo and the tests (loopback only).

Each site is its own origin (its own port on 127.0.0.1) and serves a fixed set of pages.
Every request is logged, so a test can prove from the server's side what was never asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Page:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    #: seconds between the headers and the body (lets a test see the client hang up)
    body_delay: float = 0.0
    #: the body is written in pieces of this many bytes, ``chunk_pause`` seconds apart (lets a
    #: test decide where a client that stops reading at a size cap cuts the body)
    chunk: int = 65536
    chunk_pause: float = 0.0
    #: sent with ``Transfer-Encoding: chunked`` (no Content-Length), one HTTP chunk per piece
    chunked: bool = False

    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


@dataclass
class Site:
    name: str
    description: str
    pages: dict[str, Page] = field(default_factory=dict)
    #: path -> pages served in turn (the last one stays), for stateful cases like a 429 first
    sequences: dict[str, list[Page]] = field(default_factory=dict)
    #: answers that depend on the request (pay per crawl, a signature check):
    #: ``(method, path, headers, url, listed page) -> Page``, or None for the listed page
    responder: Callable[[str, str, dict[str, str], str, Page], Page | None] | None = None

    def __post_init__(self) -> None:
        for path in ("/robots.txt", "/.well-known/tdmrep.json"):
            self.pages.setdefault(path, Page(b"not found", status=404,
                                             content_type="text/plain"))


@dataclass(frozen=True)
class LoggedRequest:
    site: str
    method: str
    path: str
    user_agent: str
    time: float


class LocalWeb:
    """Serve ``sites`` on 127.0.0.1, one port per site (0 = any free port)."""

    def __init__(self, sites: list[Site], *, host: str = "127.0.0.1",
                 ports: dict[str, int] | None = None) -> None:
        if not host.startswith("127."):
            raise ValueError("the local web serves on loopback (127.0.0.0/8) only")
        self.sites = {s.name: s for s in sites}
        self.host = host
        self.ports = dict(ports or {})
        self.requests: list[LoggedRequest] = []
        #: (site, path) of every response whose whole body was written to the socket
        self.completed: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalWeb:
        for name, site in self.sites.items():
            server = _Server((self.host, self.ports.get(name, 0)),
                                         _handler(self, site))
            server.daemon_threads = True
            self._servers[name] = server
            self.ports[name] = server.server_address[1]
            t = threading.Thread(target=server.serve_forever, name=f"localweb-{name}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> LocalWeb:  # noqa: PYI034 - py3.10 has no typing.Self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def origin(self, name: str) -> str:
        return f"http://{self.host}:{self.ports[name]}"

    def log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def paths(self, name: str) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests if r.site == name]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # the crawler hung up (a size cap, a refusal at the headers): expected
        super().handle_error(request, client_address)


def _handler(web: LocalWeb, site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "polite-crawler-localweb"
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stalls

        def _serve(self, head_only: bool) -> None:
            web.log(LoggedRequest(site.name, self.command, self.path,
                                  self.headers.get("User-Agent", ""), time.time()))
            seq = site.sequences.get(self.path)
            if seq:
                with web._lock:
                    page = seq.pop(0) if len(seq) > 1 else seq[0]
            else:
                page = site.pages.get(self.path) or site.pages.get(self.path.split("?")[0])
            if page is None:
                page = Page(b"<html><body>not found</body></html>", status=404)
            if site.responder is not None:
                host = self.headers.get("Host") or f"{web.host}:{self.server.server_address[1]}"
                page = site.responder(self.command, self.path, dict(self.headers.items()),
                                      f"http://{host}{self.path}", page) or page
            if page.delay:
                time.sleep(page.delay)
            etag = {k.lower(): v for k, v in page.headers}.get("etag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = page.payload()
            self.send_response(page.status)
            if page.content_type:  # "" = no Content-Type header at all
                self.send_header("Content-Type", page.content_type)
            if page.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            for k, v in page.headers:
                self.send_header(k, v)
            self.end_headers()
            if not head_only:
                try:
                    if page.body_delay:
                        self.wfile.flush()
                        time.sleep(page.body_delay)
                    view = memoryview(body)
                    step = max(1, page.chunk)
                    for i in range(0, len(body), step):
                        if i and page.chunk_pause:
                            time.sleep(page.chunk_pause)
                        piece = view[i:i + step]
                        if page.chunked:
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        else:
                            self.wfile.write(piece)
                        self.wfile.flush()
                    if page.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return  # the crawler stopped reading (StopDownload at the headers)
                with web._lock:
                    web.completed.append((site.name, self.path))

        def do_GET(self) -> None:
            self._serve(False)

        def do_HEAD(self) -> None:
            self._serve(True)

        def do_POST(self) -> None:
            # the body is read (bounded, with a deadline) and dropped; the page is the GET one
            refusal = _read_post_body(self)
            if refusal is not None:
                web.log(LoggedRequest(site.name, self.command, self.path,
                                      self.headers.get("User-Agent", ""), time.time()))
                _refuse_post(self, *refusal)
                return
            self._serve(False)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


#: A POST body larger than this is refused (413) without being read.
MAX_POST_BYTES = 2**20
#: Seconds a whole POST body may take to arrive (each socket read waits at most what is left).
POST_TIMEOUT = 10.0


def _read_post_body(handler: BaseHTTPRequestHandler) -> tuple[int, str] | None:
    """Read and drop the body of a POST; (status, reason) when it must be refused instead.

    No ``Content-Length`` (or a ``Transfer-Encoding``) -> 411; a negative or non-numeric one,
    or a body that ends early -> 400; over :data:`MAX_POST_BYTES` -> 413; not all there within
    :data:`POST_TIMEOUT` seconds -> 408.
    """
    text = handler.headers.get("Content-Length")
    if handler.headers.get("Transfer-Encoding") or text is None:
        return 411, "Length Required"
    try:
        length = int(text)
    except ValueError:
        return 400, "Bad Content-Length"
    if length < 0:
        return 400, "Bad Content-Length"
    if length > MAX_POST_BYTES:
        return 413, "Content Too Large"
    sock = handler.connection
    old = sock.gettimeout()
    deadline = time.monotonic() + POST_TIMEOUT
    left_bytes = length
    try:
        while left_bytes > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return 408, "Request Timeout"
            sock.settimeout(left)
            chunk = handler.rfile.read1(min(65536, left_bytes))
            if not chunk:
                return 400, "Body Shorter Than Content-Length"
            left_bytes -= len(chunk)
    except TimeoutError:
        return 408, "Request Timeout"
    except OSError:
        return 400, "Body Not Received"
    finally:
        try:
            sock.settimeout(old)
        except OSError:
            pass
    return None


def _refuse_post(handler: BaseHTTPRequestHandler, status: int, reason: str) -> None:
    """Answer ``status`` (plain text) and close: the rest of the body is never read."""
    handler.close_connection = True
    body = f"{status} {reason}\n".encode()
    try:
        handler.send_response(status, reason)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
    except OSError:
        pass
