"""How long to wait between two requests to one origin: the Crawl-delay clamp (pure).

One rule for both places that space an origin's requests: the reservation middleware (the
local download slot, :mod:`crawler.crawl.reservation`) and the cluster gate
(:mod:`crawler.cluster.politeness`).
"""

from __future__ import annotations

import math


def clamp_crawl_delay(wanted: float | None, base: float, cap: float) -> float | None:
    """The delay an origin asks for (robots.txt ``Crawl-delay`` / ``Request-rate``: ``wanted``
    seconds between two requests), capped at ``cap`` (``POLITE_MAX_CRAWL_DELAY``); None when it
    asks for nothing more than ``base`` (the delay that applies anyway): nothing to apply.

    A ``cap`` that is not a finite number >= 0 caps nothing (the setting is validated at start;
    NaN, infinite or negative never shortens the site's delay)."""
    if wanted is None or wanted <= base:
        return None
    if math.isfinite(cap) and cap >= 0:
        return min(wanted, cap)
    return wanted
