"""Sign every request the crawler sends (Web Bot Auth), as a Scrapy downloader middleware.

Thin: the signature is :func:`crawler.identity.websig.sign_request`; this module only wires it in.
It sits just before the write-ahead middleware (990), after every other ``process_request``,
so what it signs is the request as it leaves: pages, redirect hops, retries, and the
per-origin files (robots.txt, tdmrep.json, ...) that are fetched through the engine and so
pass through the downloader middlewares like any page. A retried or redirected request is a
copy that still carries the old signature: it is stripped and the copy signed afresh (new
``created``, ``expires`` and ``nonce``), so no request leaves with a stale signature.

Settings (``POLITE_*``): ``POLITE_IDENTITY_KEY_FILE`` (the key, see :mod:`crawler.identity.keys`),
``POLITE_IDENTITY_SIGNATURE_AGENT`` (the https:// URL where the key directory is published;
both must be set to sign), ``POLITE_SIGNATURE_VALIDITY`` (seconds a signature is valid,
1..3600, default 60). Fail closed: a key file that is set but cannot be used, a Signature-Agent
that is not an https:// URL or a validity out of range stop the crawl before its first request.
Stats: ``polite/signed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from scrapy.exceptions import NotConfigured

from crawler.identity.keys import Identity, IdentityError, load_key
from crawler.identity.websig import (
    DEFAULT_VALIDITY,
    SIGNATURE_FIELDS,
    SigningError,
    check_validity,
    sign_request,
    signature_agent_field,
)

logger = logging.getLogger(__name__)

#: where the add-on puts this middleware: just before WriteAheadMiddleware (990)
ORDER = 980


class SigningConfigError(RuntimeError):
    """Signing is configured but cannot be done: the crawl must not start."""


class SignRequestsMiddleware:
    def __init__(self, identity: Identity, signature_agent: str, *, stats: Any,
                 validity: float = DEFAULT_VALIDITY,
                 clock: Callable[[], float] = time.time) -> None:
        try:
            self.validity = check_validity(validity)
            signature_agent_field(signature_agent)
        except SigningError as exc:
            raise SigningConfigError(f"request signing: {exc}") from None
        if not signature_agent.startswith("https://"):
            raise SigningConfigError("request signing: POLITE_IDENTITY_SIGNATURE_AGENT must be "
                                     f"an https:// URL, not {signature_agent!r}")
        self.identity = identity
        self.signature_agent = signature_agent
        self.stats = stats
        self.clock = clock

    @classmethod
    def from_crawler(cls, crawler: Any) -> SignRequestsMiddleware:
        settings = crawler.settings
        key_file = settings.get("POLITE_IDENTITY_KEY_FILE")
        agent = settings.get("POLITE_IDENTITY_SIGNATURE_AGENT")
        if not key_file:
            raise NotConfigured("no POLITE_IDENTITY_KEY_FILE: requests are not signed")
        if not agent:
            raise NotConfigured("no POLITE_IDENTITY_SIGNATURE_AGENT (identity.signature_agent):"
                                " requests are not signed")
        try:
            identity = load_key(key_file)
        except IdentityError as exc:  # fail closed: never crawl unsigned when signing was asked
            raise SigningConfigError(f"request signing: identity.key_file: {exc}") from None
        try:
            validity = settings.getfloat("POLITE_SIGNATURE_VALIDITY", DEFAULT_VALIDITY)
        except ValueError:
            raise SigningConfigError("request signing: POLITE_SIGNATURE_VALIDITY must be a "
                                     "number of seconds") from None
        mw = cls(identity, agent, stats=crawler.stats, validity=validity)
        logger.info("Signing every request (Web Bot Auth) with key %s; Signature-Agent %s; "
                    "valid %d s", identity.keyid, agent, mw.validity)
        return mw

    def process_request(self, request: Any, spider: Any = None) -> None:
        for name in SIGNATURE_FIELDS:  # a retry or redirect copy carries the old signature
            request.headers.pop(name, None)
        fields = sign_request(self.identity, request.method, request.url, None,
                              signature_agent=self.signature_agent, now=self.clock(),
                              validity=self.validity)
        for name, value in fields.items():
            request.headers[name] = value
        self.stats.inc_value("polite/signed")
        return None
