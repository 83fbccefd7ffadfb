"""WARC output in the crawl: :class:`WarcWriterPipeline`, the Scrapy glue of
:class:`crawler.corpus.warc.CorpusWarcWriter` (``POLITE_WARC = True``). What is written, and
why, is described in :mod:`crawler.corpus.warc`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.corpus.warc import WARC_FILENAME, CorpusWarcWriter
from crawler.crawl import defaults
from crawler.crawl.runtime import get_runtime
from crawler.crawl.signals import decision_recorded
from crawler.crawl.sitecache import EVIDENCE_KEPT, load_capture

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: The private item key the corpus spider fills for this pipeline (the corpus writer skips
#: keys starting with "_").
WARC_ITEM_KEY = "_warc"
#: Allow records kept (from the ``decision_recorded`` signal) until their item arrives; an
#: allow that never becomes an item (a 404, a redirect) is forgotten oldest first.
PENDING_ALLOWS = 10_000


class WarcWriterPipeline:
    """Writes ``<output_dir>/corpus.warc.gz`` (appended to, one gzip member per record).

    Enabled by ``POLITE_WARC = True`` (``output.warc: true`` in a job config); runs before the
    corpus writer (priority 700 < 800) and never changes or drops an item. Every per-origin
    file kept as evidence is written when it is fetched (:data:`crawler.crawl.sitecache.
    EVIDENCE_KEPT`), so every file an audit record cites is in the WARC, whatever the
    decision. An item is written only when it carries the provenance of an allow decision
    (``audit_seq``) and the :data:`WARC_ITEM_KEY` payload ``{"request_headers",
    "response_headers", "body"}`` (optional: ``content_sha256``, ``as_received``,
    ``complete``, ``method``, ``protocol``, ``ip_address``, ``checks``). The allow record's
    ``checks`` come from ``_warc["checks"]`` when given, else from the ``decision_recorded``
    signal.

    Takes the run's ``policy``, its ``job`` name and ``output_dir`` (the WARC ``path`` and the
    evidence are there) and the crawler (its stats and signals); :meth:`from_crawler` takes
    them from the runtime (:func:`crawler.crawl.runtime.get_runtime`) and the settings.
    """

    def __init__(self, crawler: Crawler, *, policy: Any, job: str, output_dir: Path,
                 path: Path) -> None:
        self.crawler = crawler
        self.policy = policy
        self.job = job
        self.output_dir = Path(output_dir)
        self.path = Path(path)
        self.evidence_dir = self.output_dir / "evidence"
        self._fh: IO[bytes] | None = None
        self._writer: CorpusWarcWriter | None = None
        self._allows: OrderedDict[int, Mapping[str, Any]] = OrderedDict()
        self._closed = False
        crawler.signals.connect(self._on_decision, signal=decision_recorded)
        crawler.signals.connect(self._on_evidence, signal=EVIDENCE_KEPT)
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcWriterPipeline:
        if not crawler.settings.getbool("POLITE_WARC", defaults.POLITE_WARC):
            raise NotConfigured("POLITE_WARC is off")
        runtime = get_runtime(crawler)
        output_dir = Path(runtime.output_dir)
        return cls(crawler, policy=runtime.policy,
                   job=str(crawler.settings.get("POLITE_JOB", defaults.POLITE_JOB)),
                   output_dir=output_dir,
                   path=output_dir / str(crawler.settings.get("POLITE_WARC_FILE")
                                         or WARC_FILENAME))

    def _on_decision(self, record: Mapping[str, Any], request: Any = None,
                     **kwargs: Any) -> None:
        if record.get("decision") != "allow":
            return
        self._allows[record["seq"]] = record
        while len(self._allows) > PENDING_ALLOWS:
            self._allows.popitem(last=False)

    def _on_evidence(self, file: Any, body: bytes, capture: Mapping[str, Any] | None = None,
                     **kwargs: Any) -> None:
        """A per-origin file was kept as evidence: archive it now (any status)."""
        if self._closed or getattr(file, "sha256", None) is None:
            return
        written = self._open().write_evidence(
            url=file.url, sha256=file.sha256, body=body, status=file.status, capture=capture,
            kind=file.kind, final_url=file.final_url, complete=file.complete)
        if self._fh is not None:
            self._fh.flush()
        if written is not None:
            self.crawler.stats.inc_value("polite/warc/evidence")

    def _open(self) -> CorpusWarcWriter:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - held open for the crawl
            p = self.policy
            self._writer = CorpusWarcWriter(
                self._fh, job=self.job, user_agent=p.user_agent, policy_sha256=p.sha256,
                info={"product-token": p.token, "purpose": p.purpose,
                      "signals": ",".join(p.signals),
                      "honor-agents": ",".join(p.honor_agents),
                      "description": "documents collected where no reservation applied, "
                                     "as received; every evidence file an audit record "
                                     "cites; metadata records link each document to its "
                                     "audit record"})
        return self._writer

    def _evidence(self, sha256: str) -> bytes | None:
        try:
            return (self.evidence_dir / sha256).read_bytes()
        except OSError:
            return None

    def _capture(self, sha256: str, url: str, status: int | None) -> Mapping[str, Any] | None:
        return load_capture(self.evidence_dir, sha256, url, status)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        from itemadapter import ItemAdapter

        data = ItemAdapter(item)
        stats = self.crawler.stats
        seq, payload = data.get("audit_seq"), data.get(WARC_ITEM_KEY)
        if seq in (None, "") or not data.get("url"):
            stats.inc_value("polite/warc/skipped_no_provenance")
            return item
        if not isinstance(payload, Mapping) or payload.get("body") is None:
            stats.inc_value("polite/warc/skipped_no_payload")
            logger.warning("no %s payload on the item for %s: not written to the WARC",
                           WARC_ITEM_KEY, data.get("url"))
            return item
        audit: dict[str, Any] = {"seq": seq, "hash": data.get("audit_hash"),
                                 "policy_sha256": self.policy.sha256}
        record = self._allows.pop(seq, None)
        if payload.get("checks") is not None:
            audit["checks"] = payload["checks"]
        elif record is not None and record.get("hash") == data.get("audit_hash"):
            audit["checks"] = record.get("checks") or []
            audit["policy_sha256"] = record.get("policy_sha256", self.policy.sha256)
        else:
            stats.inc_value("polite/warc/evidence_unknown")
        if not payload.get("as_received", True):
            stats.inc_value("polite/warc/decoded_payload")
        self._open().write_document(
            url=data["url"], status=int(data.get("status") or 200),
            response_headers=payload.get("response_headers") or {},
            body=payload["body"], request_headers=payload.get("request_headers") or {},
            audit=audit, method=payload.get("method", "GET"),
            protocol=payload.get("protocol") or "HTTP/1.1",
            fetched_at=data.get("fetched_at"), ip_address=payload.get("ip_address"),
            content_sha256=payload.get("content_sha256") or data.get("sha256"),
            as_received=bool(payload.get("as_received", True)),
            complete=payload.get("complete", True) is not False,
            evidence=self._evidence, captures=self._capture)
        if self._fh is not None:
            self._fh.flush()
        stats.inc_value("polite/warc/documents")
        return item

    def close(self, spider: Any = None, reason: str = "") -> None:
        self._closed = True
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._writer = None
