"""A site's side of Web Bot Auth, for the demo web and the tests: verify a request's signature.

Nothing of ours signs or checks here: the verifier is ``http-message-signatures``'
``HTTPMessageVerifier``, fed only a key directory (a JWK Set, what ``polite-crawl about``
publishes at ``/.well-known/http-message-signatures-directory``) for the one Signature-Agent
the site trusts. A request passes when its ``Signature-Agent`` names that agent, its signature
(tag ``web-bot-auth``) covers ``@authority`` and that ``Signature-Agent`` member, was made by a
key in the directory and has not expired.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.exceptions import InvalidSignature


class _Message:
    def __init__(self, method: str, url: str, headers: Mapping[str, str]) -> None:
        self.method, self.url, self.headers = method, url, dict(headers)


class _DirectoryKeys(HTTPSignatureKeyResolver):
    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self.keys = {k["kid"]: Ed25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4)))
            for k in jwks.get("keys", ()) if k.get("crv") == "Ed25519"}

    def resolve_public_key(self, key_id: str) -> Any:
        return self.keys.get(key_id)


class WebBotAuthVerifier:
    """Verify requests signed by the one agent ``signature_agent`` whose directory is ``jwks``."""

    def __init__(self, signature_agent: str, jwks: Mapping[str, Any]) -> None:
        self.signature_agent = signature_agent
        self._verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                             key_resolver=_DirectoryKeys(jwks))

    def verify(self, method: str, url: str, headers: Mapping[str, str]) -> str | None:
        """None when the request is verified; else why not (one line)."""
        h = {k.lower(): v for k, v in headers.items()}
        if "signature" not in h or "signature-input" not in h:
            return "not signed"
        try:
            agents = http_sf.parse(h.get("signature-agent", "").encode(), tltype="dictionary")
            (label, (agent, _)), = agents.items()
        except (ValueError, TypeError):
            return "no single Signature-Agent"
        if agent != self.signature_agent:
            return f"unknown Signature-Agent {str(agent)[:80]!r}"
        try:
            self._verifier.verify(
                _Message(method, url, {k.title(): v for k, v in h.items()}),
                expect_tag="web-bot-auth",
                require_components=["@authority", f'"signature-agent";key="{label}"'])
        except (InvalidSignature, KeyError, ValueError) as exc:
            return f"{type(exc).__name__}: {str(exc)[:160]}"
        return None
