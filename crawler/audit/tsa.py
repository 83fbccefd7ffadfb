"""RFC 3161 trusted timestamps for signed audit checkpoints.

A checkpoint's bytes are sent (as a SHA-256 message imprint) to a Time-Stamp Authority; the
request (``.tsq``) and the TSA's reply (``.tsr``) are stored beside the checkpoint, so anyone can
check them later without this package::

    openssl ts -verify -data CHECKPOINT -in CHECKPOINT.tsr -CAfile TSA_ROOT.pem [-untrusted TSA.pem]

All ASN.1 is parsed and built by ``rfc3161-client`` (and ``cryptography`` for certificates);
nothing here encodes DER by hand. Everything is sans-IO except :func:`request_timestamp`, the
one blocking HTTP POST (the caller runs it in a thread); it imports ``urllib.request`` itself so
that importing this module opens nothing and loads no network stack.

Every failure -- garbage bytes, a refused request, a token for another message or another
request, a signature or chain that does not verify, a TSA that is down, slow or answers the
wrong thing -- raises :class:`TimestampError` (a ``ValueError``) with a one-line reason; no
library exception type escapes for bad input.

Known limits of rfc3161-client 1.0.9 (see the tests): it parses strictly as DER, so a token whose
``SignedData.certificates`` SET is not in DER order (OpenSSL's ``ts -reply -chain`` writes the
signer first, then the chain, unsorted) is rejected as malformed although ``openssl ts -verify``
accepts it; it exposes a rejection's status and status text but not its ``failInfo`` bits; and
its verifier accepts only status ``granted`` (0), not ``grantedWithMods`` (1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cryptography.x509
import rfc3161_client
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

# rfc3161-client 1.0.9 parses requests but does not re-export the function; it is the library's
# own DER parser (tests/audit/test_tsa.py pins that it is still there).
from rfc3161_client._rust import parse_timestamp_request as _parse_timestamp_request

__all__ = [
    "QUERY_CONTENT_TYPE",
    "REPLY_CONTENT_TYPE",
    "TimestampError",
    "TimestampInfo",
    "build_request",
    "check_response",
    "request_timestamp",
    "verify_token",
]

QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
_HASH_NAMES = {SHA256_OID: "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
               "2.16.840.1.101.3.4.2.3": "sha512", "1.3.14.3.2.26": "sha1"}
_GRANTED = (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS)


class TimestampError(ValueError):
    """A timestamp could not be obtained, parsed or verified (the message is one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(_one_line(reason))


@dataclass(frozen=True)
class TimestampInfo:
    """What a granted timestamp token says (from its TSTInfo)."""

    gen_time: datetime  #: timezone-aware (UTC)
    serial_number: int
    policy_oid: str
    hash_algorithm: str  #: "sha256" (or the dotted OID if unknown)
    message_imprint: str  #: hex digest the TSA signed
    nonce: int | None
    tsa_name: str | None  #: RFC 4514 string for a directory name, else the name's value
    status: int  #: 0 granted, 1 granted with modifications

    @property
    def gen_time_iso(self) -> str:
        """``gen_time`` as ISO 8601 UTC with a ``Z`` (microseconds only if present)."""
        return self.gen_time.isoformat().replace("+00:00", "Z")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (big integers as decimal strings, so no reader loses precision)."""
        return {"gen_time": self.gen_time_iso, "serial_number": str(self.serial_number),
                "policy_oid": self.policy_oid, "hash_algorithm": self.hash_algorithm,
                "message_imprint": self.message_imprint,
                "nonce": None if self.nonce is None else str(self.nonce),
                "tsa_name": self.tsa_name, "status": self.status}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")[:300]


def build_request(message: bytes, *, nonce: bool = True, cert_req: bool = True) -> bytes:
    """DER ``TimeStampReq`` over SHA-256 of ``message`` (a fresh random 64-bit nonce by
    default; ``cert_req`` asks the TSA to include its certificate in the token)."""
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise TypeError(f"message must be bytes, not {type(message).__name__}")
    try:
        req = (TimestampRequestBuilder().data(bytes(message))
               .hash_algorithm(HashAlgorithm.SHA256)
               .nonce(nonce=bool(nonce)).cert_request(cert_request=bool(cert_req)).build())
        return req.as_bytes()
    except Exception as exc:  # the library's ValueError for empty data, for instance
        raise TimestampError(f"cannot build a timestamp request: {_describe(exc)}") from None


def _parse_request(tsq: bytes) -> Any:
    try:
        req = _parse_timestamp_request(bytes(tsq))
        return req, req.nonce, req.message_imprint.message
    except Exception as exc:
        raise TimestampError(f"not a DER TimeStampReq: {_describe(exc)}") from None


def _parse_response(tsr: bytes) -> rfc3161_client.TimeStampResponse:
    if not isinstance(tsr, (bytes, bytearray, memoryview)):
        raise TimestampError(f"timestamp reply must be bytes, not {type(tsr).__name__}")
    if not tsr:
        raise TimestampError("empty timestamp reply")
    try:
        resp = decode_timestamp_response(bytes(tsr))
        status = int(resp.status)
    except Exception as exc:
        raise TimestampError(f"not a DER TimeStampResp: {_describe(exc)}") from None
    if status not in _GRANTED:
        try:
            name = PKIStatus(status).name.lower()
            text = "; ".join(_one_line(s) for s in resp.status_string) or "no status text"
        except Exception:
            name, text = "unknown", "unreadable status text"
        raise TimestampError(f"TSA did not grant the timestamp: status {status} ({name}): {text}")
    return resp


def _tsa_name(general_name: Any) -> str | None:
    if general_name is None:
        return None
    value = getattr(general_name, "value", general_name)
    if isinstance(value, cryptography.x509.Name):
        return value.rfc4514_string()
    return _one_line(value)


def _info(resp: rfc3161_client.TimeStampResponse) -> TimestampInfo:
    """TimestampInfo of a granted reply; TimestampError if its token is unreadable."""
    try:
        tst = resp.tst_info
        imprint = tst.message_imprint
        algo = imprint.hash_algorithm.dotted_string
        gen_time = tst.gen_time
        if gen_time.tzinfo is None:
            raise ValueError("genTime without a time zone")
        nonce = tst.nonce
        return TimestampInfo(
            gen_time=gen_time, serial_number=int(tst.serial_number),
            policy_oid=tst.policy.dotted_string, hash_algorithm=_HASH_NAMES.get(algo, algo),
            message_imprint=bytes(imprint.message).hex(),
            nonce=None if nonce is None else int(nonce), tsa_name=_tsa_name(tst.name),
            status=int(resp.status))
    except Exception as exc:
        raise TimestampError(f"unreadable timestamp token: {_describe(exc)}") from None


def check_response(tsr: bytes, message: bytes, tsq: bytes) -> TimestampInfo:
    """Check a DER ``TimeStampResp`` against the request that asked for it (no signature check:
    see :func:`verify_token`): status granted, SHA-256 imprint of ``message``, same nonce."""
    _req, req_nonce, req_imprint = _parse_request(tsq)
    digest = hashlib.sha256(message).digest()
    if bytes(req_imprint) != digest:
        raise TimestampError("the timestamp request is not for this message "
                             f"(request imprint {bytes(req_imprint).hex()[:16]}…, "
                             f"SHA-256 of message {digest.hex()[:16]}…)")
    info = _info(_parse_response(tsr))
    if info.hash_algorithm != "sha256":
        raise TimestampError(f"token imprint uses {info.hash_algorithm}, expected sha256")
    if info.message_imprint != digest.hex():
        raise TimestampError("token is for another message "
                             f"(imprint {info.message_imprint[:16]}…, "
                             f"SHA-256 of message {digest.hex()[:16]}…)")
    if req_nonce is not None and info.nonce != req_nonce:
        raise TimestampError(f"token answers another request (nonce {info.nonce}, "
                             f"request nonce {req_nonce})")
    return info


def _load_certs(pem: bytes, what: str) -> list[cryptography.x509.Certificate]:
    try:
        certs = cryptography.x509.load_pem_x509_certificates(bytes(pem))
    except Exception as exc:
        raise TimestampError(f"{what}: no PEM certificate ({_describe(exc)})") from None
    if not certs:
        raise TimestampError(f"{what}: no PEM certificate")
    return certs


def verify_token(tsr: bytes, message: bytes, *, ca_pem: bytes,
                 tsa_cert_pem: bytes | None = None) -> TimestampInfo:
    """Verify a stored reply cryptographically: the token's signature, its signing certificate
    (critical EKU timeStamping) chaining to a root in ``ca_pem`` at the token's genTime, and the
    imprint = hash of ``message``. ``tsa_cert_pem`` pins the signing certificate (needed if the
    token does not embed it). The nonce is not checked here: run :func:`check_response` with the
    stored request as well to tie the token to it."""
    roots = _load_certs(ca_pem, "ca_pem")
    resp = _parse_response(tsr)
    info = _info(resp)
    builder = VerifierBuilder()
    for i, root in enumerate(roots):
        if root not in roots[:i]:  # the builder refuses duplicates with a ValueError
            builder = builder.add_root_certificate(root)
    if tsa_cert_pem is not None:
        builder = builder.tsa_certificate(_load_certs(tsa_cert_pem, "tsa_cert_pem")[0])
    try:
        builder.build().verify_message(resp, bytes(message))
    except (VerificationError, ValueError) as exc:
        raise TimestampError(f"timestamp token does not verify: {exc}") from None
    except Exception as exc:
        raise TimestampError(f"timestamp token does not verify: {_describe(exc)}") from None
    return info


def _redact(url: str) -> str:
    """``url`` without user:password (error lines end up in logs)."""
    head, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if sep and "@" in netloc:
        return f"{head}://***@{netloc.rpartition('@')[2]}{slash}{path}"
    return url


def request_timestamp(url: str, message: bytes, *, timeout: float = 10.0,
                      max_size: int = 64 * 1024) -> tuple[bytes, bytes, TimestampInfo]:
    """POST a fresh request for ``message`` to the TSA at ``url``; return ``(tsq, tsr, info)``
    after :func:`check_response`. Blocking (run it in a thread). ``timeout`` bounds the whole
    exchange (each socket operation, and the reading of the reply as a whole, so a TSA that
    drips its answer cannot hold the caller), ``max_size`` the reply; redirects are not
    followed; proxies come from the environment as usual for urllib."""
    import http.client
    import time
    import urllib.error
    import urllib.request

    tsq = build_request(message)
    deadline = time.monotonic() + timeout

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=tsq, method="POST", headers={
        "Content-Type": QUERY_CONTENT_TYPE, "Accept": REPLY_CONTENT_TYPE})
    where = f"TSA {_redact(url)}"
    try:
        with opener.open(req, timeout=timeout) as resp:
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != REPLY_CONTENT_TYPE:
                raise TimestampError(f"{where}: reply Content-Type {ctype or 'missing'!r}, "
                                     f"expected {REPLY_CONTENT_TYPE}")
            length = resp.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_size:
                raise TimestampError(f"{where}: reply of {int(length)} bytes exceeds {max_size}")
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise TimestampError(f"{where}: timed out after {timeout:g} s")
                chunk = resp.read1(min(16384, max_size + 1 - size))  # what has arrived
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_size:
                    raise TimestampError(f"{where}: reply exceeds {max_size} bytes")
            tsr = b"".join(chunks)
    except TimestampError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        raise TimestampError(f"{where}: HTTP {exc.code} {_one_line(exc.reason)}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise TimestampError(f"{where}: timed out after {timeout:g} s") from None
        raise TimestampError(f"{where}: {_describe(reason)}") from None
    except TimeoutError:
        raise TimestampError(f"{where}: timed out after {timeout:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # resets, bad HTTP, bad URL
        raise TimestampError(f"{where}: {_describe(exc)}") from None
    try:
        info = check_response(tsr, message, tsq)
    except TimestampError as exc:
        raise TimestampError(f"{where}: {exc}") from None
    return tsq, tsr, info
