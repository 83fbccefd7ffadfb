"""The crawler's signing identity: one Ed25519 key, published as a JWK Set.

``polite-crawl identity init --out PATH`` creates the key (PKCS#8 PEM, file mode 0600, never
overwritten); a job names it with ``identity: {key_file: PATH}``. The key signs the audit
checkpoints (:mod:`crawler.audit.checkpoint`); its public half is published by ``polite-crawl
about`` as a JWK Set at ``.well-known/http-message-signatures-directory`` (the key directory of
the IETF Web Bot Auth drafts), where anyone can check a checkpoint against it.

A key is named by its JWK SHA-256 thumbprint (RFC 7638), the ``keyid`` of Web Bot Auth. The
private key is never logged, printed or copied into an output; only the thumbprint and the
public JWK are.

Key rotation (:func:`rotate_key`, ``polite-crawl identity rotate``): a new key takes the key
file's place; the old key's *public* half is listed, with the time it was retired, in
``<key file>.retired.json``, and the key directory keeps publishing it for a grace period (a
site that cached the directory, or a request signed just before the switch, still verifies);
its private half is moved aside to ``<key file>.retired-<keyid>`` (mode 0600) for the operator
to destroy.

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
from datetime import datetime, timezone
from functools import cached_property
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
#: how long a retired key stays in the key directory by default (seconds)
DEFAULT_GRACE = 7 * 86400


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

    @cached_property
    def _public_jwk(self) -> dict[str, str]:  # computed once: signing needs it per request
        return public_jwk(self.public_key)

    @property
    def jwk(self) -> dict[str, str]:
        return dict(self._public_jwk)

    @property
    def keyid(self) -> str:
        return self._public_jwk["kid"]

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


# -- rotation --------------------------------------------------------------------------------

def retired_keys_path(key_path: str | os.PathLike[str]) -> Path:
    """Where the retired keys of a key file are listed (public keys and dates only)."""
    path = Path(key_path)
    return path.with_name(f"{path.name}.retired.json")


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: Any) -> float:
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r}")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_retired(key_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The retired keys of a key file, oldest first: ``{"jwk", "retired_at", "publish_until"}``
    (RFC 3339 UTC). No list: ``[]``. A list that cannot be read raises IdentityError (a
    directory that silently dropped a key would make requests signed with it fail)."""
    path = retired_keys_path(key_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise IdentityError(f"{path}: cannot read the retired keys ({exc})") from None
    try:
        entries = data["retired"]
        if not isinstance(entries, list):
            raise ValueError("'retired' is not a list")
        for e in entries:
            keys_from_jwks({"keys": [e["jwk"]]})  # a kid that is not its thumbprint is refused
            _epoch(e["retired_at"])
            _epoch(e["publish_until"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IdentityError(f"{path}: not a retired-keys list ({exc})") from None
    return [dict(e) for e in entries]


def published_keys(key_path: str | os.PathLike[str], *, now: float) -> list[dict[str, str]]:
    """The public keys the key directory publishes at ``now``: the retired keys still in their
    grace period (oldest first), then the current key. Raises IdentityError."""
    current = load_key(key_path)
    out = [dict(e["jwk"]) for e in read_retired(key_path)
           if _epoch(e["publish_until"]) > now and e["jwk"].get("kid") != current.keyid]
    return [*out, current.jwk]


def key_history(key_path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Every public key this key file ever held, oldest first (old audit checkpoints stay
    checkable after the grace period ends). Raises IdentityError."""
    current = load_key(key_path)
    out = [dict(e["jwk"]) for e in read_retired(key_path) if e["jwk"].get("kid") != current.keyid]
    return [*out, current.jwk]


def rotate_key(key_path: str | os.PathLike[str], *, now: float,
               grace: float = DEFAULT_GRACE) -> tuple[Identity, str]:
    """Replace the key at ``key_path`` with a new one; return (the new identity, the old keyid).

    The old public key is listed in :func:`retired_keys_path` with ``retired_at`` = ``now`` and
    ``publish_until`` = ``now + grace``; its private key file is moved to
    ``<key_path>.retired-<keyid>`` (mode 0600 kept) for the operator to destroy. The new key is
    written beside the old one first, so an interrupted rotation leaves the old key in place.
    """
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise IdentityError(f"grace period must be >= 0 seconds, not {grace!r}")
    path = Path(key_path)
    old = load_key(path)
    retired = read_retired(path)
    pending = path.with_name(f".{path.name}.new")
    if pending.exists():
        raise IdentityError(f"{pending}: an earlier rotation was interrupted; check it and "
                            "remove it, then rotate again")
    aside = path.with_name(f"{path.name}.retired-{old.keyid}")
    if aside.exists():
        raise IdentityError(f"{aside}: already exists")
    new = generate_key(pending)
    retired.append({"jwk": old.jwk, "retired_at": _rfc3339(now),
                    "publish_until": _rfc3339(now + grace)})
    listing = retired_keys_path(path)
    tmp = listing.with_name(f".{listing.name}.tmp")
    tmp.write_text(json.dumps({"retired": retired}, indent=2, sort_keys=True) + "\n",
                   encoding="utf-8")
    tmp.replace(listing)
    os.replace(path, aside)
    os.replace(pending, path)
    return Identity(new._key, path), old.keyid
