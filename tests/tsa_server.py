"""A local RFC 3161 Time-Stamp Authority for tests: ``openssl ts -reply`` behind http.server.

``LocalTSA`` makes, in a temp dir, a throw-away root CA and a TSA certificate (critical EKU
timeStamping, both EC P-256, made with ``cryptography``), an ``openssl ts`` config and serial
file, and serves ``POST`` timestamp queries on 127.0.0.1 (ephemeral port, one thread per
request): each query is answered by ``openssl ts -reply -queryfile … -config … -inkey …
-signer … -chain … -out …`` in a subprocess and returned with ``Content-Type:
application/timestamp-reply``.

Set ``mode`` (also while running) to misbehave:

``ok``          openssl's reply (the default)
``reject``      openssl's own rejection (the config section accepts only SHA-512 imprints, so a
                SHA-256 query gets status 2 "Message digest algorithm is not supported.")
``garbage``     200 with the right Content-Type and bytes that are no TimeStampResp
``http500``     HTTP 500
``slow``        waits ``slow_seconds`` before answering (to trip the client's timeout)
``drip``        a genuine reply, one byte every 50 ms after the headers (each read is quick,
                the whole is slow)
``wrong_type``  a genuine reply served as ``text/html``
``huge``        a 100 KiB body with the right Content-Type and Content-Length
``huge_undeclared``  the same without Content-Length (the body ends when the connection closes)
``unsorted``    ``-chain`` also carries a small unrelated certificate, so OpenSSL writes the
                token's certificate SET unsorted (valid BER, not DER)

The certificates are chosen so that OpenSSL's certificate SET (signer first, then the chain)
is in DER order in the normal modes: the root's DER is longer than the TSA certificate's
(checked at start). Subject names are fixed, so two LocalTSA instances differ only in keys.

If the ``openssl`` binary is missing, :func:`openssl_binary` / ``start()`` raise
:class:`OpenSSLMissing` with a clear message (tests fail, they do not skip).
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MODES = ("ok", "reject", "garbage", "http500", "slow", "drip", "wrong_type", "huge",
         "huge_undeclared", "unsorted")
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
POLICY_OID = "1.3.6.1.4.1.99999.1.1"
GARBAGE = b"<html><body>this is not a TimeStampResp</body></html>\n"
MAX_QUERY = 64 * 1024

ROOT_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "polite-crawler test suite (throw-away)"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "deleted with its temporary directory"),
    x509.NameAttribute(NameOID.COMMON_NAME, "polite-crawler throw-away test root CA"),
])
TSA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polite-crawler test TSA")])


class OpenSSLMissing(RuntimeError):
    """The ``openssl`` command line tool is not installed."""


def openssl_binary() -> str:
    """Path of ``openssl``; :class:`OpenSSLMissing` with an install hint if there is none."""
    path = shutil.which("openssl")
    if path is None:
        raise OpenSSLMissing("the `openssl` command line tool is not on PATH; the RFC 3161 tests "
                             "need it for the local TSA and as the independent verifier "
                             "(Debian/Ubuntu: apt-get install openssl)")
    return path


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


def make_root_ca(name: x509.Name = ROOT_NAME) -> tuple[ec.EllipticCurvePrivateKey,
                                                       x509.Certificate]:
    """A throw-away self-signed root CA (valid from an hour ago for two days)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(sign=False, ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_tsa_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                  name: x509.Name = TSA_NAME) -> tuple[ec.EllipticCurvePrivateKey,
                                                       x509.Certificate]:
    """A TSA signing certificate issued by ``ca_cert``: critical EKU timeStamping only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True, ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _der_set_order(a: bytes, b: bytes) -> bool:
    """True if ``a`` may precede ``b`` in a DER SET OF (X.690 11.6: zero-padded comparison)."""
    n = max(len(a), len(b))
    return a.ljust(n, b"\0") <= b.ljust(n, b"\0")


_CONFIG = """\
# openssl ts -reply configuration of a throw-away test TSA
[ tsa ]
default_tsa = tsa_ok

[ tsa_ok ]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = {policy}
other_policies = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256

[ tsa_reject ]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = {policy}
other_policies = {policy}
digests = sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tsa: LocalTSA


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "LocalTSA/1"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str, *, declare_length: bool = True) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            if declare_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout tests)
            pass

    def do_GET(self) -> None:
        self._send(405, b"POST a timestamp query\n", "text/plain")

    def do_POST(self) -> None:
        tsa = self.server.tsa
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_QUERY:
            self._send(411 if length < 0 else 413, b"bad Content-Length\n", "text/plain")
            return
        query = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        mode = tsa._record(query, ctype)
        if ctype.split(";")[0].strip().lower() != QUERY_TYPE:
            self._send(415, b"expected application/timestamp-query\n", "text/plain")
        elif mode == "http500":
            self._send(500, b"TSA out of order\n", "text/plain")
        elif mode == "garbage":
            self._send(200, GARBAGE, REPLY_TYPE)
        elif mode in ("huge", "huge_undeclared"):
            self._send(200, b"\x30" * (100 * 1024), REPLY_TYPE, declare_length=mode == "huge")
        else:
            if mode == "slow" and tsa._stopping.wait(tsa.slow_seconds):
                return
            try:
                reply = tsa.reply(query, mode)
            except RuntimeError as exc:
                self._send(500, str(exc).encode(), "text/plain")
                return
            if mode == "drip":
                self._drip(reply)
            else:
                self._send(200, reply, "text/html" if mode == "wrong_type" else REPLY_TYPE)

    def _drip(self, body: bytes) -> None:
        stopping = self.server.tsa._stopping
        try:
            self.send_response(200)
            self.send_header("Content-Type", REPLY_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for i in range(len(body)):
                if stopping.wait(0.05):
                    return
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
        except OSError:
            pass


class LocalTSA:
    """A throw-away TSA on 127.0.0.1; ``with LocalTSA() as tsa: ... tsa.url ...``."""

    def __init__(self, directory: str | Path | None = None, *, mode: str = "ok",
                 slow_seconds: float = 5.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} not in {MODES}")
        self.mode = mode
        self.slow_seconds = slow_seconds
        self._given_dir = Path(directory) if directory is not None else None
        self.dir: Path | None = None
        self.requests = 0  #: POSTs received (any mode)
        self.replies = 0  #: replies made by openssl
        self.last_query: bytes | None = None
        self.last_content_type: str | None = None
        self.last_reply: bytes | None = None
        self._lock = threading.Lock()
        self._openssl_lock = threading.Lock()  # one writer of the serial file at a time
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.openssl = ""
        self.openssl_version = ""

    # -- files ---------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self._path("ca.pem")

    @property
    def tsa_cert_file(self) -> Path:
        return self._path("tsa.pem")

    @property
    def tsa_key_file(self) -> Path:
        return self._path("tsa.key")

    @property
    def config_file(self) -> Path:
        return self._path("ts.cnf")

    @property
    def serial_file(self) -> Path:
        return self._path("tsaserial")

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    @property
    def tsa_cert_pem(self) -> bytes:
        return self.tsa_cert_file.read_bytes()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalTSA is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/tsa"

    def _path(self, name: str) -> Path:
        if self.dir is None:
            raise RuntimeError("LocalTSA is not started")
        return self.dir / name

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> LocalTSA:
        if self._server is not None:
            return self
        self.openssl = openssl_binary()
        self.openssl_version = subprocess.run(
            [self.openssl, "version"], capture_output=True, text=True, check=True).stdout.strip()
        if self._given_dir is not None:
            self._given_dir.mkdir(parents=True, exist_ok=True)
            self.dir = self._given_dir
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="localtsa-"))
        self._make_files()
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.tsa = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.02},
                                        name="LocalTSA", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._given_dir is None and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> LocalTSA:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_files(self) -> None:
        ca_key, ca = make_root_ca()
        tsa_key, tsa = make_tsa_cert(ca_key, ca)
        ca_der = ca.public_bytes(serialization.Encoding.DER)
        tsa_der = tsa.public_bytes(serialization.Encoding.DER)
        if not _der_set_order(tsa_der, ca_der):  # sizes make this hold; keep it that way
            raise RuntimeError("test TSA certificate does not sort before the root in DER; "
                               "rfc3161-client would reject OpenSSL's tokens")
        _, extra = make_root_ca(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        assert not _der_set_order(tsa_der, extra.public_bytes(serialization.Encoding.DER))
        self.ca_file.write_bytes(pem(ca))
        self.tsa_cert_file.write_bytes(pem(tsa))
        self.tsa_key_file.write_bytes(tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.tsa_key_file.chmod(0o600)
        self._path("unsorted-chain.pem").write_bytes(pem(ca) + pem(extra))
        self.serial_file.write_text("01\n", encoding="ascii")
        self.config_file.write_text(_CONFIG.format(serial=self.serial_file, policy=POLICY_OID),
                                    encoding="ascii")

    # -- serving -------------------------------------------------------------------------------

    def _record(self, query: bytes, ctype: str) -> str:
        with self._lock:
            self.requests += 1
            self.last_query = query
            self.last_content_type = ctype
            return self.mode

    def reply(self, query: bytes, mode: str | None = None) -> bytes:
        """``openssl ts -reply`` for one DER query, without HTTP (``mode`` "ok", "reject" or
        "unsorted"; default: the current mode). Serialised: openssl bumps the serial file."""
        mode = self.mode if mode is None else mode
        with self._openssl_lock:
            n = self.replies + 1
            qfile, rfile = self._path(f"q{n}.tsq"), self._path(f"r{n}.tsr")
            qfile.write_bytes(query)
            chain = self._path("unsorted-chain.pem") if mode == "unsorted" else self.ca_file
            cmd = [self.openssl, "ts", "-reply", "-config", str(self.config_file),
                   "-section", "tsa_reject" if mode == "reject" else "tsa_ok",
                   "-queryfile", str(qfile), "-inkey", str(self.tsa_key_file),
                   "-signer", str(self.tsa_cert_file), "-chain", str(chain), "-out", str(rfile)]
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
            if proc.returncode != 0 or not rfile.exists():
                raise RuntimeError(f"openssl ts -reply failed ({proc.returncode}): "
                                   + " ".join(proc.stderr.split())[-500:])
            reply = rfile.read_bytes()
            with self._lock:
                self.replies = n
                self.last_reply = reply
            return reply
