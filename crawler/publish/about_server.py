"""Serving an about directory (``polite-crawl about --serve``): a small threaded HTTP server
for what :func:`crawler.publish.about.build_about` wrote, with the right media types, signing
the key directory afresh for each response.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.identity.keys import JWKS_MEDIA_TYPE, keys_from_jwks
from crawler.identity.websig import sign_directory
from crawler.publish.about import (
    ABOUT_HTML,
    ABOUT_JSON,
    AGENT_CARD,
    CHANGES_ATOM,
    JWKS_HEADERS_PATH,
    JWKS_PATH,
    KEY_HISTORY,
)

__all__ = ["AboutServer", "media_types", "serve_about"]


#: what ``about --serve`` serves (nothing else: no directory listing, no other file)
def media_types() -> dict[str, str]:
    return {ABOUT_HTML: "text/html; charset=utf-8", ABOUT_JSON: "application/json",
            CHANGES_ATOM: "application/atom+xml", KEY_HISTORY: "application/json",
            AGENT_CARD: "application/json", JWKS_PATH: JWKS_MEDIA_TYPE}


class AboutServer(ThreadingHTTPServer):
    """A small threaded HTTP server for an about directory (see :func:`serve_about`)."""

    daemon_threads = True

    def __init__(self, root: Path, address: tuple[str, int], *, signers: Sequence[Any],
                 clock: Callable[[], float], validity: float,
                 authorities: Iterable[str] | None = None) -> None:
        self.root, self.signers, self.clock, self.validity = root, list(signers), clock, validity
        self.authorities = None if authorities is None else {a.lower() for a in authorities}
        self.types = media_types()
        self._thread: threading.Thread | None = None
        super().__init__(address, _AboutHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AboutServer:
        self._thread = threading.Thread(target=self.serve_forever, name="about-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def directory_headers(self, authority: str) -> dict[str, str]:
        """The key directory's signature headers for a request to ``authority``: signed now by
        every key we hold that the directory lists; else the ones ``about`` wrote beside it.
        An authority we do not serve (a forged Host) gets no signature: our keys sign a
        directory only for where it is published."""
        try:
            listed = set(keys_from_jwks(json.loads((self.root / JWKS_PATH).read_text("utf-8"))))
        except (OSError, ValueError):
            listed = set()
        signers = [i for i in self.signers if i.keyid in listed]
        own = self.url.split("://", 1)[1]
        if self.authorities is not None and authority.lower() not in self.authorities | {own}:
            return {}
        if signers:
            return sign_directory(signers, authority, now=self.clock(), validity=self.validity)
        try:
            saved = json.loads((self.root / JWKS_HEADERS_PATH).read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in saved.items() if k in ("Signature", "Signature-Input")}


class _AboutHandler(BaseHTTPRequestHandler):
    server: AboutServer
    server_version = "polite-crawler-about"

    def _serve(self, head_only: bool) -> None:
        path = urlsplit(self.path).path.lstrip("/") or ABOUT_HTML
        media = self.server.types.get(path)
        body = None
        if media is not None:
            try:
                body = (self.server.root / path).read_bytes()
            except OSError:
                body = None
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        if path == JWKS_PATH:
            authority = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
            for name, value in self.server.directory_headers(authority).items():
                self.send_header(name, value)
            self.send_header("Cache-Control", "max-age=300")
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._serve(head_only=False)

    def do_HEAD(self) -> None:
        self._serve(head_only=True)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI says where it is
        return


def serve_about(out_dir: str | Path, host: str = "127.0.0.1", port: int = 0, *,
                signers: Sequence[Any] = (), clock: Callable[[], float] = time.time,
                validity: float = 3600, authorities: Iterable[str] | None = None
                ) -> AboutServer:
    """Start serving ``out_dir`` (what :func:`build_about` wrote) on ``host:port`` (loopback by
    default; port 0 picks a free one) in a background thread; ``stop()`` ends it. The key
    directory is signed for each response (``signers``: the keys we hold), valid ``validity``
    seconds, for the authority the client asked for (its Host header) when it is the server's
    own address or one of ``authorities`` (None: any)."""
    return AboutServer(Path(out_dir), (host, port), signers=signers, clock=clock,
                       validity=validity, authorities=authorities).start()
