"""The provenance of the allow decision, on the items a Scrapy project's spider yields.

:class:`ItemProvenanceMiddleware` is the spider middleware the add-on installs (at 990, next
to the spider). A response reaches a callback only once its allow decision is in the audit
log (a reserved response never does); each item the callback yields is given that decision's
provenance:

- ``polite_audit_seq``, ``polite_audit_hash``: ``seq`` and ``hash`` of the allow record;
- ``polite_policy_sha256``: the hash of the policy the decision was taken under (the
  ``policy_sha256`` of the record, of run.json and of the log line at the start).

A dict gets the three fields; a ``scrapy.Item``, dataclass, attrs or pydantic item gets those
of them it declares (``ItemAdapter(item).field_names()``). An item that cannot take all three
is passed unchanged (the project's feeds and pipelines see what they always saw) and the
provenance is recorded beside it: one JSON line in ``<output_dir>/provenance.jsonl``
(``POLITE_PROVENANCE_FILE``) with the response's ``url``, ``audit_seq``, ``audit_hash``,
``policy_sha256``, the item's class and ``item_sha256`` (:func:`item_sha256` of the item as
it goes on to the project's pipelines and feeds). Items are never dropped here.
``POLITE_ITEM_PROVENANCE = False`` switches the middleware off (the corpus spider does: its
items carry ``audit_seq`` and ``audit_hash`` of their own).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawler.crawl import defaults
from crawler.crawl.meta import audit_of
from crawler.crawl.runtime import get_runtime, polite_setting

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

#: the item fields the provenance goes into, where the item type takes them
FIELDS = ("polite_audit_seq", "polite_audit_hash", "polite_policy_sha256")


def item_sha256(item: Any) -> str | None:
    """SHA-256 (hex) of the item's fields: ``ItemAdapter(item).asdict()`` as JSON with sorted
    keys, separators ``(",", ":")``, not ASCII-escaped, a value JSON has no form for written
    as its ``repr()``, in UTF-8. The same fields read back from a JSON feed give the same
    digest. None for an object that is not an item (no fields) or whose fields cannot be
    written so (keys of mixed types, a cycle)."""
    if not is_item(item):
        return None
    try:
        text = json.dumps(ItemAdapter(item).asdict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def attach(item: Any, fields: dict[str, Any]) -> bool:
    """Put ``fields`` into ``item`` where its type takes them (a dict: all; another item type:
    those it declares and lets be set). True when every one of them is in the item."""
    if isinstance(item, dict):
        item.update(fields)
        return True
    if not is_item(item):
        return False
    adapter = ItemAdapter(item)
    declared = set(adapter.field_names())
    complete = True
    for name, value in fields.items():
        if name not in declared:
            complete = False
            continue
        try:
            adapter[name] = value
        except Exception:  # noqa: BLE001 - frozen, validated, read-only: recorded beside it
            complete = False
    return complete


class ProvenanceLog:
    """``provenance.jsonl``: one line per item that could not take its provenance, appended
    whole and at once (opened at the first such item: none, no file). A write that fails
    stops the crawl (``on_failure``) like the corpus and the audit log; items still pass."""

    def __init__(self, path: Path, on_failure: Any) -> None:
        self.path = path
        self._on_failure = on_failure
        self._fd: int | None = None
        self._failed = False

    def write(self, record: dict[str, Any]) -> bool:
        if self._failed:
            return False
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._failed = True
            self._on_failure(f"cannot write {self.path}: {exc.strerror or exc}")
            return False
        return True

    def close(self, *args: Any, **kwargs: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ItemProvenanceMiddleware(BaseSpiderMiddleware):
    """Spider middleware (sync and async spider output alike): each item a callback yields
    carries, or has recorded beside it, the provenance of its response's allow decision.

    ``policy_sha256``: the hash of the run's policy; ``log``: where the provenance of an item
    that cannot take it goes; ``crawler``: its stats and signals. :meth:`from_crawler` takes
    them from the runtime (:func:`crawler.crawl.runtime.get_runtime`)."""

    def __init__(self, crawler: Crawler, policy_sha256: str, log: ProvenanceLog) -> None:
        super().__init__(crawler)
        self.policy_sha256 = policy_sha256
        self.stats = crawler.stats
        self.log = log
        crawler.signals.connect(self.log.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ItemProvenanceMiddleware:
        if not crawler.settings.getbool("POLITE_ITEM_PROVENANCE",
                                        defaults.POLITE_ITEM_PROVENANCE):
            raise NotConfigured
        runtime = get_runtime(crawler)
        return cls(crawler, runtime.policy.sha256, ProvenanceLog(
            runtime.output_dir / str(polite_setting(crawler, "POLITE_PROVENANCE_FILE")),
            runtime.output_failed))

    def get_processed_item(self, item: Any, response: Response | None) -> Any:
        audit = audit_of(response) if response is not None else None
        if not audit:
            # a start item, an errback's, a response without an allow record (a redirect not
            # followed): no decision to cite; the item passes as it is
            self.stats.inc_value("polite/provenance/no_decision")
            return item
        fields = {"polite_audit_seq": audit["seq"], "polite_audit_hash": audit["hash"],
                  "polite_policy_sha256": self.policy_sha256}
        if attach(item, fields):
            self.stats.inc_value("polite/provenance/attached")
            return item
        cls = type(item)
        if self.log.write({
                "url": response.url, "audit_seq": audit["seq"], "audit_hash": audit["hash"],
                "policy_sha256": self.policy_sha256,
                "item_class": f"{cls.__module__}.{cls.__qualname__}",
                "item_sha256": item_sha256(item)}):
            self.stats.inc_value("polite/provenance/recorded_beside")
        return item
