"""Web Bot Auth end to end: a real crawl (``polite-crawl run``) against a local site whose
server verifies every request it gets, robots.txt and the other per-origin files included,
with a verifier we did not write (``http-message-signatures``' HTTPMessageVerifier) that knows
nothing of ours but the key directory ``polite-crawl about --serve`` publishes (itself checked
against the directory's own signature first). The same server then refuses a tampered request,
an expired signature and a key that is not in the directory.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import http_sf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.exceptions import InvalidSignature

from .conftest import ROOT, run_cli, write_config

AGENT = "https://crawler.example"
DIRECTORY = ".well-known/http-message-signatures-directory"


# -- the site's side: nothing of ours --------------------------------------------------------------

class _Msg:
    def __init__(self, method: str, url: str, headers: dict[str, str],
                 request: Any = None) -> None:
        self.method, self.url, self.headers = method, url, headers
        if request is not None:
            self.request, self.status_code = request, 200


class DirectoryKeys(HTTPSignatureKeyResolver):
    def __init__(self, jwks: dict[str, Any]) -> None:
        self.keys = {k["kid"]: Ed25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4))) for k in jwks["keys"]}

    def resolve_public_key(self, key_id: str) -> Any:
        return self.keys.get(key_id)


def fetch_directory(url: str) -> dict[str, Any]:
    """Fetch a key directory and check its own signatures (one per key, tag
    http-message-signatures-directory, covering the authority we asked)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        body, headers = resp.read(), {k: v for k, v in resp.headers.items()}
    assert headers["Content-Type"] == "application/http-message-signatures-directory+json"
    jwks = json.loads(body)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=DirectoryKeys(jwks))
    response = _Msg("", "", headers, request=_Msg("GET", url, {}))
    results = verifier.verify(response, expect_tag="http-message-signatures-directory",
                              require_components=['"@authority";req'])
    assert {r.parameters["keyid"] for r in results} == {k["kid"] for k in jwks["keys"]}
    return jwks


class VerifyingSite(ThreadingHTTPServer):
    """A site that verifies every request (Web Bot Auth) and answers 401 to a bad one."""

    daemon_threads = True

    def __init__(self, directories: dict[str, dict[str, Any]]) -> None:
        self.directories = directories  # Signature-Agent URL -> its key directory
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.flaky_seen = 0
        super().__init__(("127.0.0.1", 0), _SiteHandler)

    @property
    def origin(self) -> str:
        return "http://%s:%d" % self.server_address[:2]

    def verify(self, method: str, url: str, headers: dict[str, str]) -> dict[str, Any]:
        try:
            agents = http_sf.parse(headers.get("Signature-Agent", "").encode(),
                                   tltype="dictionary")
            (label, (agent, _)), = agents.items()
            jwks = self.directories[agent]
            verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                           key_resolver=DirectoryKeys(jwks))
            (result,) = verifier.verify(
                _Msg(method, url, headers), expect_tag="web-bot-auth",
                require_components=["@authority", f'"signature-agent";key="{label}"'])
        except (InvalidSignature, KeyError, ValueError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, "keyid": result.parameters["keyid"], "nonce": result.nonce,
                "created": result.parameters["created"]}


class _SiteHandler(BaseHTTPRequestHandler):
    server: VerifyingSite
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        headers = {k: v for k, v in self.headers.items()}
        outcome = self.server.verify("GET", f"http://{self.headers['Host']}{self.path}",
                                     headers)
        with self.server.lock:
            self.server.log.append({"path": self.path, **outcome})
            if self.path == "/flaky":
                self.server.flaky_seen += 1
            flaky_first = self.path == "/flaky" and self.server.flaky_seen == 1
        if not outcome["ok"]:
            return self._send(401, b"unverified\n", "text/plain")
        pages = {
            "/robots.txt": (b"User-agent: *\nAllow: /\n", "text/plain"),
            "/": (b'<html><head><title>home</title></head><body><a href="/a">a</a> '
                  b'<a href="/r">r</a> <a href="/flaky">f</a></body></html>', "text/html"),
            "/a": (b"<html><head><title>a</title></head><body>page a</body></html>",
                   "text/html"),
            "/b": (b"<html><head><title>b</title></head><body>page b</body></html>",
                   "text/html"),
            "/flaky": (b"<html><head><title>f</title></head><body>flaky</body></html>",
                       "text/html"),
        }
        if self.path == "/r":
            return self._send(302, b"", "text/plain", location="/b")
        if flaky_first:
            return self._send(503, b"busy\n", "text/plain")
        if self.path not in pages:
            return self._send(404, b"not found\n", "text/plain")
        body, ctype = pages[self.path]
        self._send(200, body, ctype)

    def _send(self, status: int, body: bytes, ctype: str, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


# -- our side -----------------------------------------------------------------------------------

@pytest.fixture
def about_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    key = tmp_path / "identity.pem"
    proc = run_cli("identity", "init", "--out", str(key))
    assert proc.returncode == 0, proc.stderr
    cfg = write_config(
        tmp_path / "job.yaml", seeds=["http://127.0.0.1:1/"],  # replaced once the site runs
        identity={"key_file": str(key), "signature_agent": AGENT},
        settings={"RETRY_TIMES": 2})
    serve = subprocess.Popen(
        [sys.executable, "-m", "crawler", "about", "--out", str(tmp_path / "about"), "--config",
         str(cfg), "--serve", "127.0.0.1:0"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = serve.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            m = re.search(r"serving .* at (http://127\.0\.0\.1:\d+)/", line)
            url = m.group(1) if m else None
        assert url, serve.stderr.read() if serve.poll() is not None else "no URL"  # type: ignore[union-attr]
        yield {"url": url, "key": key, "cfg": cfg}
    finally:
        serve.terminate()
        serve.wait(10)
        for stream in (serve.stdout, serve.stderr):
            if stream:
                stream.close()


def test_every_request_of_a_crawl_verifies_at_the_site(tmp_path, about_server):
    jwks = fetch_directory(f"{about_server['url']}/{DIRECTORY}")
    site = VerifyingSite({AGENT: jwks})
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        cfg: Path = about_server["cfg"]
        cfg.write_text(cfg.read_text().replace("http://127.0.0.1:1/", site.origin + "/"))
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = list(site.log)
        paths = [e["path"] for e in log]
        assert "/robots.txt" in paths and "/.well-known/tdmrep.json" in paths
        assert {"/", "/a", "/r", "/b"} <= set(paths)
        assert paths.count("/flaky") == 2  # a 503, then the retry
        bad = [e for e in log if not e["ok"]]
        assert bad == [], bad
        assert {e["keyid"] for e in log} == {k["kid"] for k in jwks["keys"]}
        nonces = [e["nonce"] for e in log]
        assert len(set(nonces)) == len(nonces)  # retries and redirect hops signed afresh
        signed = re.search(r"'polite/signed': (\d+)", proc.stderr)
        assert signed and int(signed.group(1)) == len(log), proc.stderr[-3000:]
        # run.json names the identity the sites saw (for the transparency page)
        from crawler.identity.keys import load_key as load

        run = json.loads((cfg.parent / "out" / "run.json").read_text())
        assert run["keyid"] == load(about_server["key"]).keyid
        assert run["signature_agent"] == AGENT

        # the same site refuses what it must refuse
        from crawler.identity.keys import Identity, load_key
        from crawler.identity.websig import sign_request

        ours = load_key(about_server["key"])
        url = site.origin + "/a"

        def send(headers: dict[str, str], host: str | None = None) -> int:
            req = urllib.request.Request(url, headers=headers)
            if host:
                req.add_header("Host", host)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as err:
                err.close()
                return err.code

        def signed_now(identity: Identity = ours, now: float | None = None) -> dict[str, str]:
            return sign_request(identity, "GET", url, {}, signature_agent=AGENT,
                                now=time.time() if now is None else now, validity=60)

        assert send(signed_now()) == 200  # the control: a good one passes
        fields = signed_now()
        assert send(fields, host=f"localhost:{site.server_address[1]}") == 401  # other host
        tampered = {**signed_now(), "Signature-Agent": 'sig1="https://crawler.example/x"'}
        assert send(tampered) == 401
        assert send(signed_now(now=time.time() - 300)) == 401  # expired
        stranger = Identity(Ed25519PrivateKey.generate())
        assert send(signed_now(stranger)) == 401  # a key not in the directory
        assert send({}) == 401  # unsigned
        refused = [e for e in site.log[len(log):] if not e["ok"]]
        assert len(refused) == 5
        assert any("expires" in e["error"] for e in refused)
    finally:
        site.shutdown()
        site.server_close()
