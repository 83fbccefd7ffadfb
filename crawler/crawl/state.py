"""What the reservation middleware carries from one hook to the next, per request.

One small dataclass under one ``request.meta`` key (:data:`META_STATE`) instead of a dozen
``polite_*`` keys. Read it with :func:`state_of`; change it with :func:`update`, which stores a
new value on the request it is given. Copy on write: a copy of a request (``request.replace()``,
a redirect, a retry, ``response.follow(..., meta=response.meta)``) starts with the same state,
and a change to one never shows on the other, as with the separate meta keys before.

The state survives the queues that serialize a request (Scrapy's disk queues, the cluster's
Redis queue and spool: both pickle ``request.to_dict()``): every field is plain data.

Not in it (meta keys of their own, because other components or users read or set them):
``polite_audit`` (the allow record, read by a spider as ``response.meta["polite_audit"]`` and
by :func:`crawler.crawl.meta.audit_of`), the inputs our spiders and components set on a
request (``polite_no_fetch``, ``polite_any_kind``, ``polite_sitemap``, ``polite_maxsize``,
``polite_trusted``, ``polite_preflight``), the body records of the per-origin file cache
(``polite_body``, ``polite_raw``), the audit sequence numbers (``polite_send_seq``,
``polite_follows_seq``) and the cluster's own keys (``polite_cluster_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

#: the one request.meta key of :class:`RequestState`
META_STATE = "polite"


@dataclass(frozen=True)
class RequestState:
    #: ``scheme://host[:port]`` the request was decided for (set by process_request)
    origin: str | None = None
    #: the checks (audit ``check`` dicts) that allowed the request so far; None: not decided
    #: by process_request (the later hooks leave such a request alone)
    checks: list[dict[str, Any]] | None = None
    #: the tdmrep.json statement for the URL, and the one its headers gave (TDMRep's order)
    tdm_file: Any = None
    tdm_header: Any = None
    #: the headers were judged while downloading (headers_received)
    headers_checked: bool = False
    #: why the request was refused (process_exception raises it as IgnoreRequest)
    denied: str | None = None
    #: what the document stage found the response to be (crawler.corpus.documents.document_kind)
    #: and whether the corpus collects it (``collect:``); set on every 2xx the spider receives
    kind: str | None = None
    collect: bool | None = None
    #: pay per crawl: the paid attempt the request carries (crawler.policy.payment.PaidAttempt
    #: .to_meta), the InternalError retries an unpaid request has had, a response reserved at
    #: its headers whose payment outcome is concluded at the response, what the page cost
    payment: dict[str, Any] | None = None
    payment_retries: int = 0
    payment_reserved_at_headers: bool = False
    payment_charged: str | None = None
    #: undecided: the attempts so far (a deferred request is decided again later)
    attempt: int = 0
    #: bytes received so far of a response read up to ``polite_maxsize``
    received: int = 0
    #: the URL the request was sent to (the write-ahead ``send`` record; a redirect hop's
    #: previous URL)
    send_url: str | None = None


_EMPTY = RequestState()
_FIELDS = frozenset(f.name for f in fields(RequestState))


def _with(current: RequestState, changes: dict[str, Any]) -> RequestState:
    """``dataclasses.replace(current, **changes)`` at a fraction of its cost (a few times per
    request): a copy of the instance dict, the field names checked."""
    if not _FIELDS.issuperset(changes):
        raise TypeError(f"RequestState has no field {sorted(set(changes) - _FIELDS)}")
    new = object.__new__(RequestState)
    d = new.__dict__
    d.update(current.__dict__)
    d.update(changes)
    return new


def state_of(request: Any) -> RequestState:
    """The request's state (a default one, never stored, when it has none)."""
    return request.meta.get(META_STATE) or _EMPTY


def update(request: Any, **changes: Any) -> RequestState:
    """Store a new state on ``request``: its current one with ``changes``; returns it."""
    new = _with(request.meta.get(META_STATE) or _EMPTY, changes)
    request.meta[META_STATE] = new
    return new


def reset(request: Any, *names: str) -> None:
    """Back to their defaults: fields ``names`` of the request's state (a re-request decided
    afresh)."""
    current = request.meta.get(META_STATE)
    if current is not None:
        request.meta[META_STATE] = _with(current, {f: getattr(_EMPTY, f) for f in names})
