"""The crawler's signing key: creation, loading, JWK thumbprint (RFC 7638 / RFC 8037 vectors),
and signatures checked by code we did not write (the openssl command line)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crawler.cli.main import main
from crawler.identity.keys import (
    Identity,
    IdentityError,
    b64url_decode,
    generate_key,
    jwk_thumbprint,
    keys_from_jwks,
    load_key,
    verify_signature,
)

# RFC 8037 Appendix A.1-A.3: the Ed25519 key of RFC 8032 test 1, as a JWK, and its thumbprint
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
# RFC 8037 A.4: signature of the JWS signing input "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
RFC8037_INPUT = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
RFC8037_SIG = ("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_Mu"
               "M0KAg")


def rfc_identity() -> Identity:
    return Identity(Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D)))


def test_rfc8037_vectors():
    ident = rfc_identity()
    assert ident.jwk["x"] == RFC8037_X
    assert jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}) == RFC8037_THUMBPRINT
    assert ident.keyid == RFC8037_THUMBPRINT
    # Ed25519 is deterministic: our signing reproduces the RFC's signature exactly
    assert ident.sign(RFC8037_INPUT) == b64url_decode(RFC8037_SIG)
    keys = keys_from_jwks({"keys": [ident.jwk]})
    assert verify_signature(keys[RFC8037_THUMBPRINT], b64url_decode(RFC8037_SIG), RFC8037_INPUT)
    assert not verify_signature(keys[RFC8037_THUMBPRINT], b64url_decode(RFC8037_SIG),
                                RFC8037_INPUT + b"x")


def test_generate_writes_a_private_key_file_once(tmp_path):
    path = tmp_path / "keys" / "id.pem"
    old = os.umask(0)  # even with a permissive umask the file is 0600
    try:
        ident = generate_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path).keyid == ident.keyid
    assert "PRIVATE" not in repr(ident) and ident.keyid in repr(ident)
    before = path.read_bytes()
    with pytest.raises(IdentityError, match="already exists"):
        generate_key(path)
    assert path.read_bytes() == before


def test_load_refuses_bad_key_files(tmp_path):
    path = tmp_path / "id.pem"
    generate_key(path)
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="open to other users"):
        load_key(path)
    path.chmod(0o600)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(IdentityError, match="not an unencrypted PEM"):
        load_key(path)
    with pytest.raises(IdentityError):
        load_key(tmp_path / "missing.pem")


def test_jwks_kid_must_be_the_thumbprint():
    jwk = dict(rfc_identity().jwk)
    assert set(keys_from_jwks({"keys": [jwk]})) == {RFC8037_THUMBPRINT}
    jwk["kid"] = "someone-else"
    with pytest.raises(ValueError, match="thumbprint"):
        keys_from_jwks({"keys": [jwk]})
    with pytest.raises(ValueError):
        keys_from_jwks({"nokeys": []})
    # other key types are skipped, not an error
    assert keys_from_jwks({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}) == {}


def test_cli_identity_init_and_show(tmp_path, capsys):
    path = tmp_path / "id.pem"
    assert main(["identity", "init", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    kid = load_key(path).keyid
    assert kid in out and "BEGIN" not in out
    assert main(["identity", "init", "--out", str(path)]) == 2
    assert main(["identity", "show", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["keys"][0]["kid"] == kid and "d" not in shown["keys"][0]


def test_signature_verified_by_openssl(tmp_path):
    """An independent verifier: openssl checks a signature made here against the public key
    rebuilt from the published JWK alone (CI installs openssl: missing, this fails)."""
    assert shutil.which("openssl"), "the openssl command is needed (.ci/run installs it)"
    ident = generate_key(tmp_path / "id.pem")
    x = b64url_decode(ident.jwk["x"])
    spki = bytes.fromhex("302a300506032b6570032100") + x  # RFC 8410 SubjectPublicKeyInfo
    pem = ("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki).decode() +
           "\n-----END PUBLIC KEY-----\n")
    (tmp_path / "pub.pem").write_text(pem)
    msg = b"polite-crawler checkpoint test\n"
    (tmp_path / "msg").write_bytes(msg)
    (tmp_path / "sig").write_bytes(ident.sign(msg))
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
           "-rawin", "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr
    (tmp_path / "msg").write_bytes(msg + b"!")
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode != 0


# -- rotation ------------------------------------------------------------------------------------

def test_rotate_keeps_the_old_key_published_for_the_grace_period(tmp_path):
    from crawler.identity.keys import key_history, published_keys, read_retired, rotate_key

    path = tmp_path / "id.pem"
    old = generate_key(path)
    t0 = 1_800_000_000.0
    new, old_kid = rotate_key(path, now=t0, grace=3600)
    assert old_kid == old.keyid != new.keyid
    assert load_key(path).keyid == new.keyid  # the key file now holds the new key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    aside = tmp_path / f"id.pem.retired-{old.keyid}"
    assert load_key(aside).keyid == old.keyid and stat.S_IMODE(aside.stat().st_mode) == 0o600
    (entry,) = read_retired(path)
    assert entry["jwk"] == old.jwk and "d" not in entry["jwk"]
    assert entry["retired_at"] == "2027-01-15T08:00:00Z"
    assert entry["publish_until"] == "2027-01-15T09:00:00Z"
    assert [k["kid"] for k in published_keys(path, now=t0 + 3599)] == [old.keyid, new.keyid]
    assert [k["kid"] for k in published_keys(path, now=t0 + 3600)] == [new.keyid]
    assert [k["kid"] for k in key_history(path)] == [old.keyid, new.keyid]
    # a second rotation lists both retired keys, oldest first
    newer, _ = rotate_key(path, now=t0 + 10, grace=3600)
    assert [e["jwk"]["kid"] for e in read_retired(path)] == [old.keyid, new.keyid]
    assert [k["kid"] for k in published_keys(path, now=t0 + 3605)] == [new.keyid, newer.keyid]


def test_rotate_refuses_what_it_cannot_do_safely(tmp_path):
    from crawler.identity.keys import retired_keys_path, rotate_key

    path = tmp_path / "id.pem"
    with pytest.raises(IdentityError):  # no key to rotate
        rotate_key(path, now=0)
    generate_key(path)
    before = path.read_bytes()
    with pytest.raises(IdentityError, match="grace"):
        rotate_key(path, now=0, grace=-1)
    (tmp_path / ".id.pem.new").write_text("half a rotation")
    with pytest.raises(IdentityError, match="interrupted"):
        rotate_key(path, now=0)
    (tmp_path / ".id.pem.new").unlink()
    retired_keys_path(path).write_text("{not json")
    with pytest.raises(IdentityError, match="retired keys"):
        rotate_key(path, now=0)
    assert path.read_bytes() == before  # nothing was changed by a refused rotation


def test_identity_rotate_command(tmp_path, capsys):
    path = tmp_path / "id.pem"
    old = generate_key(path)
    assert main(["identity", "rotate", str(path), "--grace", "2"]) == 0
    out = capsys.readouterr().out
    assert old.keyid in out and load_key(path).keyid in out and "2 more days" in out
    assert load_key(path).keyid != old.keyid
