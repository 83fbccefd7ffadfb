"""The crawler's signing identity: one Ed25519 key, published as a JWK Set.

``polite-crawl identity init --out PATH`` creates the key (PKCS#8 PEM, file mode 0600, never
overwritten); a job names it with ``identity: {key_file: PATH}``. The key signs the audit
checkpoints (:mod:`crawler.audit.checkpoint`); its public half is published by ``polite-crawl
about`` as a JWK Set at ``.well-known/http-message-signatures-directory`` (the key directory of
the IETF Web Bot Auth drafts), where anyone can check a checkpoint against it.

A key is named by its JWK SHA-256 thumbprint (RFC 7638), the ``keyid`` of Web Bot Auth. The
private key is never logged, printed or copied into an output; only the thumbprint and the
public JWK are.

Everything signed here carries a context string first (``DOMAIN_*``), so that a signature made
for one purpose can never be replayed as another (an audit checkpoint cannot pass for a signed
HTTP request and the other way round: an RFC 9421 signature base starts with ``"@``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: mode of a key file we create (owner read/write only)
KEY_FILE_MODE = 0o600
#: media type of the key directory (draft-meunier-http-message-signatures-directory)
JWKS_MEDIA_TYPE = "application/http-message-signatures-directory+json"
#: where the key directory is published, under the crawler information page's base URL
JWKS_PATH = ".well-known/http-message-signatures-directory"
#: context string signed before an audit checkpoint (see the module docstring)
DOMAIN_CHECKPOINT = b"polite-crawler audit checkpoint v1\n"


class IdentityError(Exception):
    """A key file that cannot be created or used (one line, for the CLI)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url) of an OKP (RFC 8037) public JWK."""
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    blob = json.dumps(required, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return b64url(hashlib.sha256(blob).digest())


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": "EdDSA", "use": "sig"}


@dataclass(frozen=True)
class Identity:
    """A loaded signing key (the private half stays in this object)."""

    _key: Ed25519PrivateKey
    path: Path | None = None

    def __repr__(self) -> str:  # never print key material
        return f"Identity(keyid={self.keyid!r}, path={str(self.path)!r})"

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.public_key)

    @property
    def keyid(self) -> str:
        return self.jwk["kid"]

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def generate_key(path: str | os.PathLike[str]) -> Identity:
    """Create a new Ed25519 key at ``path`` (mode 0600); an existing file is never replaced."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise IdentityError(f"{path}: already exists (a key is never overwritten)") from None
    except OSError as exc:
        raise IdentityError(f"{path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # whatever the umask
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Identity(key, path)


def load_key(path: str | os.PathLike[str]) -> Identity:
    """Load a key file made by :func:`generate_key` (an unencrypted PKCS#8 Ed25519 key).

    A key file others may read or write (group/other permission bits) is refused: anyone who
    could read it could sign checkpoints in the crawler's name.
    """
    path = Path(path)
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"{path}: {exc.strerror or exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(f"{path}: the key file is open to other users (mode "
                            f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return Identity(key, path)


def jwks(keys: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A JWK Set of public keys (each with ``kid`` = its thumbprint), oldest first."""
    return {"keys": [dict(k) for k in keys]}


def keys_from_jwks(data: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWK Set, by thumbprint (recomputed: a ``kid`` that does not match
    its key is refused, so a key cannot pose as another). Raises ValueError."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWK Set (no 'keys' list)")
    out: dict[str, Ed25519PublicKey] = {}
    for i, jwk in enumerate(data["keys"]):
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue  # other key types may sit in a directory; we sign with Ed25519 only
        try:
            raw = b64url_decode(jwk["x"])
            key = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"keys[{i}]: not an Ed25519 public key ({exc})") from None
        kid = jwk_thumbprint(jwk)
        if jwk.get("kid") not in (None, kid):
            raise ValueError(f"keys[{i}]: kid {jwk.get('kid')!r} is not the key's thumbprint")
        out[kid] = key
    return out


def verify_signature(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
