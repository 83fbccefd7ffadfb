"""RFC 3161 timestamps (crawler.audit.tsa) against a local ``openssl ts`` TSA, with
``openssl ts -verify`` / ``-query -text`` as the independent checks."""

from __future__ import annotations

import ast
import datetime
import hashlib
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.audit import tsa
from crawler.audit.tsa import (
    TimestampError,
    TimestampInfo,
    build_request,
    check_response,
    request_timestamp,
    verify_token,
)
from tests.tsa_server import POLICY_OID, make_root_ca, make_tsa_cert, openssl_binary, pem

MESSAGE = b'{"checkpoint":1,"head":"' + b"ab" * 32 + b'"}\n'


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([openssl_binary(), *args], check=False, capture_output=True, text=True,
                          cwd=cwd, timeout=30)


def openssl_verify(tmp_path: Path, tsr: bytes, message: bytes, ca_pem: bytes,
                   tsa_cert_pem: bytes) -> subprocess.CompletedProcess[str]:
    """``openssl ts -verify -data MSG -in TSR -CAfile CA -untrusted TSACERT``."""
    d = tmp_path / f"verify-{time.monotonic_ns()}"
    d.mkdir()
    for name, data in (("msg", message), ("tok.tsr", tsr), ("ca.pem", ca_pem),
                       ("tsa.pem", tsa_cert_pem)):
        (d / name).write_bytes(data)
    return openssl("ts", "-verify", "-data", "msg", "-in", "tok.tsr", "-CAfile", "ca.pem",
                   "-untrusted", "tsa.pem", cwd=d)


@pytest.fixture
def stamped(local_tsa):
    """(tsq, tsr, info) for MESSAGE from the local TSA."""
    return request_timestamp(local_tsa.url, MESSAGE, timeout=5)


def other_ca_pem() -> bytes:
    """A second throw-away root with the same subject name as the local TSA's root."""
    return pem(make_root_ca()[1])


def assert_one_line(exc: pytest.ExceptionInfo[TimestampError], *needles: str) -> str:
    text = str(exc.value)
    assert type(exc.value) is TimestampError and isinstance(exc.value, ValueError)
    assert "\n" not in text and text.strip() == text and len(text) < 400, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


# -- round trip ----------------------------------------------------------------------------------


def test_round_trip_against_local_tsa(local_tsa, stamped):
    tsq, tsr, info = stamped
    assert local_tsa.requests == 1 and local_tsa.replies == 1
    assert local_tsa.last_query == tsq and local_tsa.last_reply == tsr
    assert local_tsa.last_content_type == "application/timestamp-query"
    assert isinstance(info, TimestampInfo)
    assert info.status == 0 and info.hash_algorithm == "sha256"
    assert info.message_imprint == hashlib.sha256(MESSAGE).hexdigest()
    assert info.policy_oid == POLICY_OID
    assert info.tsa_name == "CN=polite-crawler test TSA"
    assert info.nonce is not None and info.nonce > 0
    assert info.gen_time.tzinfo is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - info.gen_time).total_seconds()) < 60
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", info.gen_time_iso)
    assert info.as_dict()["serial_number"] == str(info.serial_number)
    with pytest.raises(AttributeError):
        info.serial_number = 0  # frozen
    # check_response is what request_timestamp ran; it is repeatable on the stored pair
    assert check_response(tsr, MESSAGE, tsq) == info
    # openssl's serial file moves on: the next token has the next serial and a fresh nonce
    _, _, info2 = request_timestamp(local_tsa.url, MESSAGE, timeout=5)
    assert info2.serial_number == info.serial_number + 1 and info2.nonce != info.nonce
    assert local_tsa.requests == 2


def test_check_response_matches_what_openssl_reads(tmp_path, stamped):
    _, tsr, info = stamped
    (tmp_path / "r.tsr").write_bytes(tsr)
    text = openssl("ts", "-reply", "-in", str(tmp_path / "r.tsr"), "-text").stdout
    assert "Status: Granted." in text and f"Policy OID: {POLICY_OID}" in text
    assert re.search(rf"Serial number: 0x0*{info.serial_number:X}\n", text), text
    assert re.search(rf"Nonce: 0x0*{info.nonce:X}\n", text), text
    assert "TSA: DirName:/CN=polite-crawler test TSA" in text


# -- cryptographic verification ------------------------------------------------------------------


def test_verify_token_with_the_right_root(local_tsa, stamped):
    _, tsr, info = stamped
    assert verify_token(tsr, MESSAGE, ca_pem=local_tsa.ca_pem) == info
    pinned = verify_token(tsr, MESSAGE, ca_pem=local_tsa.ca_pem,
                          tsa_cert_pem=local_tsa.tsa_cert_pem)
    assert pinned == info
    # a bundle holding an unrelated root as well still verifies
    assert verify_token(tsr, MESSAGE, ca_pem=other_ca_pem() + local_tsa.ca_pem) == info


def test_verify_token_fails_with_another_root_or_tsa_cert(local_tsa, stamped):
    _, tsr, _ = stamped
    with pytest.raises(TimestampError) as exc:
        verify_token(tsr, MESSAGE, ca_pem=other_ca_pem())  # same subject name, other key
    assert_one_line(exc, "does not verify")
    ca_key, ca = make_root_ca()
    _, impostor = make_tsa_cert(ca_key, ca)  # same TSA name, other key and issuer
    with pytest.raises(TimestampError) as exc:
        verify_token(tsr, MESSAGE, ca_pem=local_tsa.ca_pem, tsa_cert_pem=pem(impostor))
    assert_one_line(exc, "does not verify")
    with pytest.raises(TimestampError) as exc:
        verify_token(tsr, MESSAGE, ca_pem=b"not a certificate")
    assert_one_line(exc, "ca_pem")


def test_wrong_message_fails_every_check(local_tsa, stamped):
    tsq, tsr, _ = stamped
    other = MESSAGE.replace(b"1", b"2")
    with pytest.raises(TimestampError) as exc:
        verify_token(tsr, other, ca_pem=local_tsa.ca_pem)
    assert_one_line(exc, "does not verify", "Mismatch between messages")
    with pytest.raises(TimestampError) as exc:
        check_response(tsr, other, tsq)
    assert_one_line(exc, "not for this message")  # the request was for MESSAGE
    with pytest.raises(TimestampError) as exc:
        check_response(tsr, other, build_request(other))
    assert_one_line(exc, "token is for another message")


def test_nonce_must_answer_the_request(stamped):
    _, tsr, _ = stamped
    another_request = build_request(MESSAGE)  # same message, fresh nonce
    with pytest.raises(TimestampError) as exc:
        check_response(tsr, MESSAGE, another_request)
    assert_one_line(exc, "answers another request", "nonce")
    with pytest.raises(TimestampError) as exc:
        check_response(tsr, MESSAGE, b"\x30\x03\x02\x01\x01")
    assert_one_line(exc, "not a DER TimeStampReq")


def test_token_without_embedded_certificate_needs_the_pinned_tsa_cert(local_tsa):
    tsq = build_request(MESSAGE, cert_req=False)
    tsr = local_tsa.reply(tsq)
    info = check_response(tsr, MESSAGE, tsq)
    assert verify_token(tsr, MESSAGE, ca_pem=local_tsa.ca_pem,
                        tsa_cert_pem=local_tsa.tsa_cert_pem) == info
    with pytest.raises(TimestampError) as exc:
        verify_token(tsr, MESSAGE, ca_pem=local_tsa.ca_pem)
    assert_one_line(exc, "does not verify")


def test_tampered_signed_content_never_verifies(local_tsa, stamped):
    """Flip one bit at every offset. The imprint and the signature never survive; a reply that
    still verifies carries the same TSTInfo (only unsigned bytes changed: the embedded copy of
    the root, which verification does not need, or CMS version/algorithm fields)."""
    _, tsr, info = stamped
    imprint_at = tsr.index(hashlib.sha256(MESSAGE).digest())
    must_fail = set(range(imprint_at, imprint_at + 32)) | set(range(len(tsr) - 64, len(tsr)))
    verified = []
    for i in range(len(tsr)):
        bad = bytearray(tsr)
        bad[i] ^= 1 << (i % 8)
        try:
            got = verify_token(bytes(bad), MESSAGE, ca_pem=local_tsa.ca_pem)
        except TimestampError:
            continue
        verified.append(i)
        assert got == info, i
    assert not must_fail & set(verified)
    assert len(verified) < len(tsr) // 2


# -- the independent check: openssl ts -verify ---------------------------------------------------


def test_openssl_ts_verify_accepts_the_stored_token(tmp_path, local_tsa, stamped):
    tsq, tsr, _ = stamped
    ok = openssl_verify(tmp_path, tsr, MESSAGE, local_tsa.ca_pem, local_tsa.tsa_cert_pem)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    # the stored request too: openssl compares its imprint and nonce with the token
    (tmp_path / "q.tsq").write_bytes(tsq)
    (tmp_path / "r.tsr").write_bytes(tsr)
    byq = openssl("ts", "-verify", "-queryfile", "q.tsq", "-in", "r.tsr", "-CAfile",
                  str(local_tsa.ca_file), "-untrusted", str(local_tsa.tsa_cert_file), cwd=tmp_path)
    assert byq.returncode == 0 and "Verification: OK" in byq.stdout, byq.stderr


def test_openssl_ts_verify_rejects_a_changed_message_or_root(tmp_path, local_tsa, stamped):
    _, tsr, _ = stamped
    bad = openssl_verify(tmp_path, tsr, MESSAGE + b" ", local_tsa.ca_pem, local_tsa.tsa_cert_pem)
    assert bad.returncode != 0 and "Verification: FAILED" in bad.stdout
    assert "message imprint mismatch" in bad.stderr
    bad = openssl_verify(tmp_path, tsr, MESSAGE, other_ca_pem(), local_tsa.tsa_cert_pem)
    assert bad.returncode != 0 and "Verification: FAILED" in bad.stdout


def test_build_request_as_openssl_reads_it(tmp_path):
    for nonce, cert_req in ((True, True), (False, False)):
        q = tmp_path / f"q-{nonce}.tsq"
        q.write_bytes(build_request(MESSAGE, nonce=nonce, cert_req=cert_req))
        out = openssl("ts", "-query", "-in", str(q), "-text")
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert "Hash Algorithm: sha256" in text
        rows = re.findall(r"^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){1,16})", text, re.MULTILINE)
        dump = "".join(rows)
        assert dump.replace(" ", "").replace("-", "") == hashlib.sha256(MESSAGE).hexdigest()
        assert ("Nonce: unspecified" in text) is not nonce
        assert f"Certificate required: {'yes' if cert_req else 'no'}" in text
    assert build_request(MESSAGE) != build_request(MESSAGE)  # fresh nonce each time
    with pytest.raises(TimestampError):
        build_request(b"")  # rfc3161-client refuses empty data


# -- a TSA that misbehaves -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "needles"), [
    ("reject", ["status 2 (rejection)", "Message digest algorithm is not supported."]),
    ("garbage", ["not a DER TimeStampResp"]),
    ("http500", ["HTTP 500"]),
    ("wrong_type", ["Content-Type 'text/html'", "application/timestamp-reply"]),
    ("huge", ["reply of 102400 bytes exceeds 65536"]),
    ("huge_undeclared", ["exceeds 65536"]),
])
def test_misbehaving_tsa_gives_one_line(local_tsa, mode, needles):
    local_tsa.mode = mode
    with pytest.raises(TimestampError) as exc:
        request_timestamp(local_tsa.url, MESSAGE, timeout=5)
    assert_one_line(exc, local_tsa.url, *needles)
    assert local_tsa.requests == 1


def test_slow_tsa_times_out(local_tsa):
    local_tsa.mode = "slow"
    t0 = time.monotonic()
    with pytest.raises(TimestampError) as exc:
        request_timestamp(local_tsa.url, MESSAGE, timeout=0.3)
    elapsed = time.monotonic() - t0
    assert_one_line(exc, local_tsa.url, "timed out after 0.3 s")
    assert 0.25 < elapsed < 2, elapsed


def test_dripping_tsa_times_out_as_a_whole(local_tsa):
    local_tsa.mode = "drip"  # every read returns within 50 ms; the whole reply takes a minute
    t0 = time.monotonic()
    with pytest.raises(TimestampError) as exc:
        request_timestamp(local_tsa.url, MESSAGE, timeout=0.4)
    elapsed = time.monotonic() - t0
    assert_one_line(exc, local_tsa.url, "timed out after 0.4 s")
    assert 0.35 < elapsed < 2, elapsed


def test_unreachable_tsa_gives_one_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TimestampError) as exc:
        request_timestamp(f"http://127.0.0.1:{port}/", MESSAGE, timeout=2)
    assert_one_line(exc, "Connection refused")
    with pytest.raises(TimestampError) as exc:
        request_timestamp(f"http://user:secret@127.0.0.1:{port}/", MESSAGE, timeout=2)
    assert "secret" not in assert_one_line(exc, "http://***@127.0.0.1:")
    with pytest.raises(TimestampError) as exc:
        request_timestamp("ftp-nonsense://x/", MESSAGE, timeout=2)
    assert_one_line(exc, "unknown url type")


def test_openssl_unsorted_certificate_set_is_a_known_library_limit(tmp_path, local_tsa):
    """``openssl ts -reply -chain`` writes the certificate SET signer-first, not DER-sorted.
    rfc3161-client 1.0.9 refuses that as malformed; openssl accepts it. The local TSA's
    certificates are sized so the normal modes sort correctly; if this starts failing, the
    library has become lenient and the workaround in tests/tsa_server.py can go."""
    local_tsa.mode = "unsorted"
    with pytest.raises(TimestampError) as exc:
        request_timestamp(local_tsa.url, MESSAGE, timeout=5)
    assert_one_line(exc, "not a DER TimeStampResp", "InvalidSetOrdering")
    ok = openssl_verify(tmp_path, local_tsa.last_reply, MESSAGE, local_tsa.ca_pem,
                        local_tsa.tsa_cert_pem)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr


# -- fuzzing: only TimestampError escapes --------------------------------------------------------


def _only_timestamp_error(fn, data: bytes) -> TimestampInfo | None:
    try:
        return fn(data)
    except TimestampError as exc:
        assert "\n" not in str(exc)
        return None
    except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
        pytest.fail(f"{type(exc).__module__}.{type(exc).__name__} escaped for "
                    f"{data[:40].hex()}…: {exc}")


def test_fuzz_check_response(stamped):
    tsq, tsr, info = stamped

    def check(data: bytes) -> TimestampInfo:
        return check_response(data, MESSAGE, tsq)

    rng = random.Random(3161)
    cases = [tsr[:n] for n in range(len(tsr))]  # every truncation
    cases += [tsr + b"\x00", tsr + tsr, b"", b"\x00", b"\xff" * 64, bytes(range(256))]
    for i in range(len(tsr)):  # every byte, one bit each, plus random multi-bit damage
        for bit in (i % 8, rng.randrange(8)):
            bad = bytearray(tsr)
            bad[i] ^= 1 << bit
            cases.append(bytes(bad))
    for _ in range(500):
        bad = bytearray(tsr)
        for _ in range(rng.randrange(2, 8)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        cases.append(bytes(bad))
    cases += [rng.randbytes(rng.randrange(1, 2000)) for _ in range(300)]
    accepted = [data for data in cases if _only_timestamp_error(check, data) is not None]
    assert len(cases) > 3 * len(tsr)
    for data in accepted:  # whatever still passes says the same about the message
        assert check_response(data, MESSAGE, tsq).message_imprint == info.message_imprint
    assert _only_timestamp_error(check, tsr) == info and tsr[:-1] not in accepted
    # the request side is fuzzed too
    for n in range(len(tsq)):
        _only_timestamp_error(lambda data: check_response(tsr, MESSAGE, data), tsq[:n])


def test_fuzz_verify_token(local_tsa, stamped):
    _, tsr, _ = stamped
    ca = local_tsa.ca_pem
    for n in range(0, len(tsr), 7):
        _only_timestamp_error(lambda data: verify_token(data, MESSAGE, ca_pem=ca), tsr[:n])
    for bad_pem in (b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                    ca[:100], ca.replace(b"M", b"N")):
        _only_timestamp_error(
            lambda data, pem=bad_pem: verify_token(data, MESSAGE, ca_pem=pem), tsr)


# -- layering ------------------------------------------------------------------------------------


def test_tsa_module_is_sans_io_but_for_request_timestamp():
    path = Path(tsa.__file__)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    network = {"scrapy", "twisted", "socket", "http", "urllib", "asyncio", "requests",
               "subprocess", "os", "pathlib", "time"}
    io_functions = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            if any(n.split(".")[0] in network for n in names):
                io_functions.add(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("open", "print", "input"), node.func.id
    owners = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
              for n in ast.walk(f) if n in io_functions}
    assert io_functions and owners == {"request_timestamp"}, owners
    code = ("import sys, crawler.audit.tsa\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('scrapy', 'twisted', 'http', 'asyncio') or m == 'urllib.request')\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
