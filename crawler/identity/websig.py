"""Web Bot Auth: the signatures our requests and our key directory carry (sans-IO).

Which draft, and why: **draft-ietf-webbotauth-httpsig-protocol-01** (29 October 2026), the
Web Bot Auth working group's document, which replaced draft-meunier-web-bot-auth-architecture
and draft-meunier-http-message-signatures-directory (it defines the Signature-Agent field, the
key directory and its well-known URI in one text). It is the newest revision we could find, and
the one Cloudflare's reference implementation (github.com/cloudflare/web-bot-auth, whose
published test vectors ``web_bot_auth_architecture_v2.json`` our tests reproduce byte for byte)
follows. The Signature Agent card follows draft-meunier-webbotauth-registry-04.

A signed request carries three fields (RFC 9421 HTTP Message Signatures):

* ``Signature-Agent: sig1="https://crawler.example"``, a Structured Field *Dictionary* (the
  current form; older drafts had a bare sf-string), whose member names where our key
  directory is published;
* ``Signature-Input: sig1=("@authority" "signature-agent";key="sig1");created=...;
  keyid="<RFC 7638 thumbprint>";alg="ed25519";expires=...;nonce="...";tag="web-bot-auth"``:
  the signature covers the target's authority and that one dictionary member, so it cannot be
  replayed against another host nor re-pointed at another directory;
* ``Signature: sig1=:<Ed25519 signature, base64>:``.

``created``/``expires`` bound the signature's life (``validity`` seconds, short: a captured
request stops working quickly); ``nonce`` is 64 random bytes, base64, as the reference
implementation sends, so a site may refuse replays within the window.

The key directory response is signed too (tag ``http-message-signatures-directory``, covering
``"@authority";req``, one signature per published key, labels ``binding0``, ``binding1``...),
which proves that whoever serves the directory holds every key in it.

The RFC 9421 serialisation (signature base, component identifiers, parameters, the structured
fields) is done by the maintained ``http-message-signatures`` library and ``http-sf``; the
signature by ``cryptography``. Nothing here reads a clock, a file or the network: ``now`` and
the nonce are the caller's, so outputs are byte-exact in tests.

Key material never leaves :class:`crawler.identity.keys.Identity` (its repr shows the keyid only);
nothing returned or raised here contains a private key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import http_sf
from http_message_signatures import HTTPMessageSigner, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from crawler.identity.keys import JWKS_MEDIA_TYPE, JWKS_PATH, Identity, jwks

#: tag of a signed request (draft-ietf-webbotauth-httpsig-protocol-01)
TAG_REQUEST = "web-bot-auth"
#: tag of a signed key directory response
TAG_DIRECTORY = "http-message-signatures-directory"
#: our signature's label, and the Signature-Agent dictionary member it covers
LABEL = "sig1"
#: what a signed request covers
REQUEST_COMPONENTS: tuple[str, ...] = ("@authority", f'"signature-agent";key="{LABEL}"')
#: what a signed directory response covers: the authority of the request it answers
DIRECTORY_COMPONENTS: tuple[str, ...] = ('"@authority";req',)
#: random bytes in a nonce (as Cloudflare's reference implementation)
NONCE_BYTES = 64
#: default and largest signature lifetime, seconds
DEFAULT_VALIDITY = 60
MAX_VALIDITY = 3600
#: default lifetime of a directory signature written for static hosting, seconds
DEFAULT_DIRECTORY_VALIDITY = 86400
#: the fields a signed request gets (and that a re-sign replaces)
SIGNATURE_FIELDS = ("Signature-Agent", "Signature-Input", "Signature")
#: where the Signature Agent card is published, relative to the Signature-Agent origin
CARD_PATH = "signature-agent-card"
CARD_MEDIA_TYPE = "application/json"

__all__ = [
    "CARD_PATH", "DIRECTORY_COMPONENTS", "JWKS_MEDIA_TYPE", "JWKS_PATH", "LABEL",
    "REQUEST_COMPONENTS", "SIGNATURE_FIELDS", "TAG_DIRECTORY", "TAG_REQUEST", "SigningError",
    "agent_card", "directory_response_headers", "new_nonce", "sign_directory", "sign_request",
    "signature_agent_field", "signature_fields",
]


class SigningError(ValueError):
    """The caller asked for something that cannot be signed (a programming or config error)."""


# -- the library's message interface -------------------------------------------------------

@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Response:
    request: _Request
    status_code: int = 200
    headers: dict[str, str] = field(default_factory=dict)


_SIGNER = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)


def new_nonce() -> str:
    """A fresh nonce: 64 random bytes, base64 (the reference implementation's form)."""
    return base64.b64encode(os.urandom(NONCE_BYTES)).decode("ascii")


def check_validity(validity: float) -> int:
    """Validity in whole seconds, 1..MAX_VALIDITY (a longer-lived signature is a replay risk)."""
    if isinstance(validity, bool) or not isinstance(validity, (int, float)):
        raise SigningError(f"signature validity must be a number of seconds, not {validity!r}")
    seconds = int(validity)
    if not 1 <= seconds <= MAX_VALIDITY:
        raise SigningError(f"signature validity must be 1..{MAX_VALIDITY} seconds, not {validity}")
    return seconds


def signature_agent_field(url: str, member: str = LABEL) -> str:
    """The Signature-Agent value naming ``url``: ``sig1="<url>"`` (an sf-dictionary)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
        raise SigningError(f"signature agent must be an https:// URL, not {url!r}")
    try:
        return http_sf.ser({member: (url, {})})
    except (ValueError, TypeError) as exc:  # a non-ASCII or control character
        raise SigningError(f"signature agent {url!r} cannot be sent in a header ({exc})") from None


def _when(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def sign_request(
    identity: Identity,
    method: str,
    url: str,
    headers: Mapping[str, Any] | None = None,
    *,
    signature_agent: str,
    now: float,
    validity: float = DEFAULT_VALIDITY,
    nonce: str | None = None,
) -> dict[str, str]:
    """The ``Signature-Agent``, ``Signature-Input`` and ``Signature`` fields to add to a request.

    ``headers`` are the request's own fields: they are not covered, but a request that already
    carries one of the three is refused (strip them first: we never sign next to, or over, a
    signature we did not make). ``now`` is the time in seconds since the epoch (the caller's
    clock); the signature is valid from ``int(now)`` for ``validity`` seconds (1..3600).
    ``nonce`` defaults to :func:`new_nonce`.
    """
    for name in headers or ():
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        if key.lower() in ("signature-agent", "signature-input", "signature"):
            raise SigningError(f"the request already carries {key}: remove it before signing")
    created = int(now)
    return signature_fields(identity, method, url, signature_agent=signature_agent,
                            created=created, expires=created + check_validity(validity),
                            nonce=new_nonce() if nonce is None else nonce)


def signature_fields(
    identity: Identity,
    method: str,
    url: str,
    *,
    signature_agent: str,
    created: int,
    expires: int,
    nonce: str,
    label: str = LABEL,
    agent_key: str | None = None,
) -> dict[str, str]:
    """The three fields, with every parameter given and no lifetime policy (what
    :func:`sign_request` does after its checks; also what the published test vectors need:
    ``label`` names the signature, ``agent_key`` the Signature-Agent member, default the label).
    """
    if expires <= created:
        raise SigningError("expires must come after created")
    member = label if agent_key is None else agent_key
    agent_field = signature_agent_field(signature_agent, member)
    base_and_params = _from_template(method, url, agent_field, identity.keyid, created, expires,
                                     nonce, label, member)
    if base_and_params is None:
        base_and_params = _prepare(method, url, agent_field, identity.keyid, created, expires,
                                   nonce, label, member)
    base, params = base_and_params
    signature = identity.sign(base)
    return {
        "Signature-Agent": agent_field,
        "Signature-Input": f"{label}={params}",
        "Signature": http_sf.ser({label: (signature, {})}),
    }


def _prepare(method: str, url: str, agent_field: str, keyid: str, created: int, expires: int,
             nonce: str, label: str, member: str) -> tuple[bytes, str]:
    """The signature base and the signature parameters, as ``http-message-signatures`` makes
    them (the one serialisation: :func:`_from_template` only repeats its output)."""
    covered = REQUEST_COMPONENTS if member == LABEL else (
        "@authority", f'"signature-agent";key="{member}"')
    message = _Request(method.upper(), url, {"Signature-Agent": agent_field})
    try:
        prepared = _SIGNER.prepare(
            message, key_id=keyid, created=_when(created), expires=_when(expires),
            nonce=nonce, label=label, tag=TAG_REQUEST, covered_component_ids=covered)
    except HTTPMessageSignaturesException as exc:
        raise SigningError(f"cannot sign {method} {url}: {exc}") from None
    return prepared.signature_base, prepared.signature_params


#: What the library writes for one target authority and signer, cut where ``created``,
#: ``expires`` and ``nonce`` go: ``(scheme, netloc, agent field, keyid, label, member) ->
#: (base pieces, params pieces)`` or None (no template: the library each time). The covered
#: components (``@authority`` and the Signature-Agent member) depend on nothing else of the
#: request, so every request to that authority has the same base but for those three values.
_TEMPLATES: dict[tuple[str, ...], tuple[list[Any], list[Any]] | None] = {}
_MAX_TEMPLATES = 4096
#: stand-ins the library is given to make a template: each must come out exactly once
_T_CREATED, _T_EXPIRES, _T_NONCE = 1111111111, 2222222222, "N0nceTemplateStandIn7q"
#: a nonce the template may carry as it is: what new_nonce makes (base64), nothing to escape
_PLAIN_NONCE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _cut(text: str) -> list[Any] | None:
    """``text`` as pieces and the names of the values at the cuts, or None when a stand-in is
    not there exactly once."""
    marks = {str(_T_CREATED): "created", str(_T_EXPIRES): "expires", _T_NONCE: "nonce"}
    found = []
    for mark, name in marks.items():
        at = text.find(mark)
        if at < 0 or text.find(mark, at + 1) >= 0:
            return None
        found.append((at, mark, name))
    found.sort()
    pieces: list[Any] = []
    pos = 0
    for at, mark, name in found:
        pieces.append(text[pos:at])
        pieces.append((name,))
        pos = at + len(mark)
    pieces.append(text[pos:])
    return pieces


def _from_template(method: str, url: str, agent_field: str, keyid: str, created: int,
                   expires: int, nonce: str, label: str, member: str) -> tuple[bytes, str] | None:
    """:func:`_prepare`'s output for these values, from the library's output for stand-ins
    (the same bytes: ``tests/test_websig.py`` compares the two on thousands of requests), or
    None when no template applies (then the library is asked)."""
    if type(created) is not int or type(expires) is not int or not nonce \
            or not _PLAIN_NONCE.issuperset(nonce) or not (0 <= created < expires < 10**10):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    key = (parts.scheme, parts.netloc, agent_field, keyid, label, member)
    if key in _TEMPLATES:
        got = _TEMPLATES[key]
    else:
        try:
            base, params = _prepare(method, url, agent_field, keyid, _T_CREATED, _T_EXPIRES,
                                    _T_NONCE, label, member)
            text = base.decode("ascii")
        except (SigningError, UnicodeDecodeError):
            got = None
        else:
            base_pieces, param_pieces = _cut(text), _cut(params)
            got = None if base_pieces is None or param_pieces is None else (
                base_pieces, param_pieces)
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        _TEMPLATES[key] = got
    if got is None:
        return None
    values = {"created": str(created), "expires": str(expires), "nonce": nonce}
    base_pieces, param_pieces = got
    base = "".join(p if type(p) is str else values[p[0]] for p in base_pieces)
    params = "".join(p if type(p) is str else values[p[0]] for p in param_pieces)
    return base.encode("ascii"), params


def sign_directory(
    identities: Identity | Sequence[Identity],
    authority: str,
    *,
    now: float,
    validity: float = DEFAULT_DIRECTORY_VALIDITY,
    scheme: str = "https",
) -> dict[str, str]:
    """``Signature`` and ``Signature-Input`` for the key directory served at ``authority``.

    One signature per key (labels ``binding0``...), tag ``http-message-signatures-directory``,
    each covering the ``@authority`` of the request the directory answers (``;req``): a
    directory copied to another host does not verify there. ``validity`` may be longer than a
    request's (up to 1 day by default) because a statically hosted directory is re-signed only
    when ``about`` runs again.
    """
    ids = [identities] if isinstance(identities, Identity) else list(identities)
    if not ids:
        raise SigningError("no key to sign the directory with")
    if len({i.keyid for i in ids}) != len(ids):
        raise SigningError("the same key twice")
    if isinstance(validity, bool) or not isinstance(validity, (int, float)) or validity < 1:
        raise SigningError(f"directory signature validity must be >= 1 s, not {validity!r}")
    created = int(now)
    response = _Response(_Request("GET", f"{scheme}://{authority}/{JWKS_PATH}"))
    inputs: dict[str, Any] = {}
    signatures: dict[str, Any] = {}
    for i, identity in enumerate(ids):
        label = f"binding{i}"
        try:
            prepared = _SIGNER.prepare(
                response, key_id=identity.keyid, created=_when(created),
                expires=_when(created + int(validity)), label=label, tag=TAG_DIRECTORY,
                covered_component_ids=DIRECTORY_COMPONENTS)
        except HTTPMessageSignaturesException as exc:
            raise SigningError(f"cannot sign the directory for {authority!r}: {exc}") from None
        inputs[label] = prepared.signature_params
        signatures[label] = (identity.sign(prepared.signature_base), {})
    return {
        "Signature-Input": ", ".join(f"{k}={v}" for k, v in inputs.items()),
        "Signature": http_sf.ser(signatures),
    }


def directory_response_headers(
    identities: Sequence[Identity], authority: str, *, now: float,
    validity: float = DEFAULT_DIRECTORY_VALIDITY, scheme: str = "https",
) -> dict[str, str]:
    """Every header the directory must be served with: its media type and signatures."""
    return {"Content-Type": JWKS_MEDIA_TYPE,
            **sign_directory(identities, authority, now=now, validity=validity, scheme=scheme)}


def directory(keys: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The key directory body (a JWK Set of public keys)."""
    return jwks(keys)


def agent_card(
    *,
    signature_agent: str,
    name: str,
    user_agent: str,
    product_token: str,
    purpose: str,
    contact: str | None = None,
    about_url: str | None = None,
    rate_expectation: str | None = None,
) -> dict[str, Any]:
    """The Signature Agent card (draft-meunier-webbotauth-registry-04) built from the config.

    Its ``client_id`` is the URL it is published at (``<signature_agent>/signature-agent-card``);
    its keys are given by reference, ``jwks_uri`` = the (signed) key directory, because the
    draft allows ``jwks`` or ``jwks_uri`` but not both and the directory is what rotation
    updates. ``rate_expectation`` is free text (e.g. "1 request per second per origin").
    """
    base = signature_agent.rstrip("/")
    signature_agent_field(signature_agent)  # refuses what could not be sent
    card: dict[str, Any] = {
        "client_id": f"{base}/{CARD_PATH}",
        "client_name": name,
        "jwks_uri": f"{base}/{JWKS_PATH}",
        "web_bot_auth": {
            "expected-user-agent": user_agent,
            "rfc9309-product-token": product_token,
            "rfc9309-compliance": ["User-agent", "Allow", "Disallow", "Crawl-delay"],
            "trigger": "crawler",
            "purpose": purpose,
        },
    }
    if about_url:
        card["client_uri"] = about_url
    if contact:
        card["contacts"] = [contact]
    if rate_expectation:
        card["web_bot_auth"]["rate-expectation"] = rate_expectation
    return card
