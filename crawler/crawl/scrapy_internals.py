"""Every touch of Scrapy's internals, in one place.

Scrapy has no public API for what a polite crawler needs of its downloader and engine: an
origin's download slot (its delay and jitter, when it may send next), the per-slot defaults of
slots not created yet, the engine's requests in progress and its next loop call. These small
functions are the only code that reads or writes them; the middlewares and the cluster call
them. They are written for the Scrapy this project supports (``pyproject.toml``: the floor CI
tests, see README "Installation"): ``Slot.jitter`` and a monotonic ``Slot.lastseen`` (Scrapy
2.19), ``ExecutionEngine._slot`` (``inprogress``, ``nextcall``). A Scrapy upgrade that changes
them is fixed here.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Request


def engine_of(crawler: Crawler) -> Any:
    """The crawler's engine, or None before the crawl starts (Scrapy >= 2.14 raises then)."""
    try:
        return crawler.engine
    except RuntimeError:
        return None


# -- the downloader's slots --------------------------------------------------------------
def slot_by_key(crawler: Crawler, key: str) -> Slot | None:
    """The download slot named ``key`` (``request.meta["download_slot"]``), or None when the
    downloader has not made it yet (then :func:`set_slot_defaults` decides how it starts)."""
    return crawler.engine.downloader.slots.get(key)  # type: ignore[union-attr]


def slot_of(crawler: Crawler, request: Request) -> Slot | None:
    """The download slot ``request`` goes through, or None when none was made yet."""
    downloader = crawler.engine.downloader  # type: ignore[union-attr]
    return downloader.slots.get(downloader.get_slot_key(request))


def floor_slot_delay(slot: Slot, delay: float) -> None:
    """At least ``delay`` seconds between two requests of ``slot``, and no random jitter below
    it (a NaN, infinite or negative slot delay, which no comparison would catch, counts as 0)."""
    current = slot.delay if math.isfinite(slot.delay) and slot.delay > 0 else 0.0
    if current < delay or slot.jitter or current != slot.delay:
        slot.delay, slot.jitter = max(current, delay), 0.0


def set_slot_defaults(crawler: Crawler, key: str, delay: float) -> None:
    """The delay (and no jitter) the slot ``key`` starts with when the downloader makes it
    (again: an idle slot is dropped after a while)."""
    downloader = crawler.engine.downloader  # type: ignore[union-attr]
    downloader.per_slot_settings.setdefault(key, {}).update(delay=delay, jitter=0.0)


def hold_slot(slot: Slot, wait: float) -> None:
    """Nothing leaves ``slot`` before ``wait`` seconds from now have passed: the downloader
    waits until ``lastseen + delay`` (a monotonic time), so ``lastseen`` is pushed into the
    future (and the delay must be > 0 for the downloader to look at it)."""
    slot.lastseen = max(slot.lastseen, time.monotonic() + wait)
    slot.delay = slot.delay or 0.001


# -- the engine ---------------------------------------------------------------------------
def engine_inprogress(crawler: Crawler) -> set[Any] | None:
    """The engine's requests in progress (from the scheduler until their callback's output
    is scheduled), or None when this Scrapy does not expose them."""
    slot = getattr(engine_of(crawler), "_slot", None)
    inprogress = getattr(slot, "inprogress", None)
    return inprogress if isinstance(inprogress, set) else None


def wake_engine(engine: Any) -> None:
    """Ask ``engine`` to look at its scheduler now (it does so by itself every heartbeat,
    ~5 s); nothing when it has no loop running."""
    nextcall = getattr(getattr(engine, "_slot", None), "nextcall", None)
    if nextcall is not None:
        nextcall.schedule()
