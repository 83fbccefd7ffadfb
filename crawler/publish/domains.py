"""Registrable domains ("eTLD+1") by the Public Suffix List bundled with ``publicsuffixlist``
(read offline, never fetched): the unit of the transparency summary's top-domain list and of a
report's pay-per-crawl spend per domain."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

__all__ = ["registrable_domain"]


@lru_cache(maxsize=1)
def _psl() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()  # the list bundled with the package: no network


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str:
    """The registrable domain ("eTLD+1") of a host name or URL, by the Public Suffix List.

    IP addresses (normalised), ``localhost`` and hosts that are public suffixes themselves are
    their own domain. Internationalised names are compared in their ASCII (punycode) form.
    """
    if "/" in host:
        host = urlsplit(host).hostname or ""
    host = host.strip().strip("[]").rstrip(".").lower()
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost"
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return _psl().privatesuffix(host) or host

