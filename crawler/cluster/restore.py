"""Rebuild a cluster job's Redis state from what its workers hold: ``polite-crawl seed CONFIG
--restore``.

When Redis lost the job (restarted empty) or can no longer be trusted with it (restarted from
a snapshot or an AOF that may miss its last writes, failed over to a replica), the workers
stop sending (state.py). The job's record is on disk, in its ``output_dir``:

* every worker's audit log (``audit-<worker>.jsonl``): a ``send`` record for each request that
  left (written before it left), the decisions (allow, deny, undecided);
* every worker's corpus (``corpus-<worker>.jsonl``): the pages collected, with their HTML;
* every worker's spool (``spool-<worker>.jsonl``): links Redis could not take.

:func:`restore_job` rebuilds from them, in this order:

1. the job's epoch is deleted first (every worker stops, if one had not yet);
2. what Redis still holds of the queue, the workers' in-flight requests and the start URLs is
   read (after a restart from an AOF or a snapshot: redirect targets, links of pages whose
   corpus line is not written);
3. every key of the job is deleted but the shared reservation entries (each carries its own
   MAC and expiry);
4. the duplicate filter gets the fingerprint of every URL with a ``send`` record (it is never
   fetched again because Redis forgot) and of every URL refused for good;
5. the queue gets the job's seeds and the links of every stored page (extracted by the
   corpus spider's own follow rule), what Redis still held, and the spooled links, minus
   everything in step 4, each URL once; URLs left undecided (a reservation could not be
   determined) first;
6. a new epoch, with a hold of ``POLITE_CLUSTER_RESTORE_HOLD`` (default: the worker TTL):
   the waiting workers adopt it (each re-registers the leases of its requests on the wire and
   re-queues the requests it had popped but not sent, unless step 5 has them), and nothing is
   granted before the hold ends.

Run it where the output_dir has every worker's files (the workers' machines share it, or copy
the files together first): a worker whose log is not there may have its pages fetched again.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.cluster.budget import RedisLedger
from crawler.cluster.keys import JobKeys
from crawler.cluster.seeds import META_SEED
from crawler.cluster.state import job_problem, write_epoch
from crawler.crawl.meta import origin_of
from crawler.crawl.resume import refused_urls, undecided_urls
from crawler.policy.ledger import PaymentPolicy
from crawler.policy.payment_replay import cross_log_charges, replay
from crawler.policy.scope import Scope
from crawler.spiders.corpus import UNDECIDED_PRIORITY, CorpusSpider

if TYPE_CHECKING:
    import redis
    from scrapy import Request

    from crawler.config.job import JobConfig

_AUDIT = re.compile(r"^audit-([A-Za-z0-9_.-]{1,64})\.jsonl$")
_SPOOL = re.compile(r"^spool-([A-Za-z0-9_.-]{1,64})\.jsonl$")
_CORPUS = re.compile(r"^corpus-([A-Za-z0-9_.-]{1,64})\.jsonl$")
_BATCH = 1000


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (a line torn by a kill, or unreadable, left out)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return
    with fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def worker_logs(out: Path) -> dict[str, Path]:
    """``worker -> audit-<worker>.jsonl`` in ``out`` (audit logs only: not a merged report,
    not a checkpoint file)."""
    found: dict[str, Path] = {}
    if not out.is_dir():
        return found
    for path in sorted(out.iterdir()):
        m = _AUDIT.match(path.name)
        if not m or not path.is_file():
            continue
        try:
            with open(path, "rb") as fh:
                first = json.loads(fh.readline(1 << 20) or b"null")
        except (OSError, ValueError):
            continue
        if isinstance(first, dict) and "decision" in first and "seq" in first:
            found[m.group(1)] = path
    return found


def prepare_seed(client: redis.Redis, job: str, output_dir: Any = None) -> str | None:
    """Before seeds are pushed: the job's epoch is there and trusted (None), or this is a new
    job and one is written now (its id). Raises RuntimeError (one line) when Redis lost the
    job's state (no epoch, but ``output_dir`` has worker logs) or cannot be trusted with it
    (another server run, a garbled epoch): the operator restores it or starts over."""
    problem = job_problem(client, job)
    if problem is None or problem.code == "hold":
        return None
    if problem.code == "lost":
        logs = worker_logs(Path(output_dir)) if output_dir is not None else {}
        if logs:
            names = ", ".join(p.name for p in list(logs.values())[:3])
            raise RuntimeError(
                f"job {job!r} has no state in Redis but its output_dir has worker logs "
                f"({names}{', ...' if len(logs) > 3 else ''}): Redis lost the job; rebuild it "
                "from them with 'polite-crawl seed CONFIG --restore' (or start over with "
                "--reset: every page is fetched again)")
        return write_epoch(client, job, "seed", replace=False)
    raise RuntimeError(f"{problem.describe(job)}; rebuild it from the workers' logs with "
                       "'polite-crawl seed CONFIG --restore' (or start over with --reset)")


def fingerprint(url: str, method: str = "GET", body: bytes = b"") -> str | None:
    """The shared duplicate filter's fingerprint of a request (None: not a valid URL)."""
    from scrapy import Request
    from scrapy_redis.dupefilter import RFPDupeFilter

    try:
        request = Request(url, method=method or "GET", body=body or b"")
    except (TypeError, ValueError):
        return None
    return str(RFPDupeFilter(None, "-").request_fingerprint(request))


@dataclass
class Gathered:
    """What the output directory says about the job."""

    workers: list[str] = field(default_factory=list)
    #: fingerprint -> URL of every request that left (a ``send`` record; per-origin files
    #: and registry calls are not queued requests and are left out)
    sent: dict[str, str] = field(default_factory=dict)
    #: fingerprint -> URL refused for good (a deny that was not "undecided")
    refused: dict[str, str] = field(default_factory=dict)
    undecided: list[str] = field(default_factory=list)
    documents: int = 0
    #: the frontier: the seeds, then the links of the stored pages (Request objects)
    frontier: list[Any] = field(default_factory=list)
    #: spooled entries (with a fingerprint: those without are pushed by their worker only)
    spooled: list[dict[str, Any]] = field(default_factory=list)


def gather(job: JobConfig, spider: Any = None) -> Gathered:
    """Read every worker's audit log, corpus and spool in ``job.output_dir``."""
    out = Path(job.output_dir)
    spider = spider or _spider(job)
    g = Gathered()
    logs = worker_logs(out)
    g.workers = sorted(logs)
    undecided: dict[str, None] = {}
    for path in logs.values():
        for rec in _records(path):
            url = rec.get("url")
            if (rec.get("decision") == "send" and isinstance(url, str)
                    and not rec.get("preflight")):
                fp = fingerprint(url, str(rec.get("method") or "GET"))
                if fp:
                    g.sent[fp] = url
        for url in refused_urls(path):
            fp = fingerprint(url)
            if fp:
                g.refused[fp] = url
        for url in undecided_urls(path):
            undecided.setdefault(url, None)
    g.undecided = [u for u in undecided if fingerprint(u) not in g.sent]

    from scrapy import Request

    for url in job.seeds:
        try:
            g.frontier.append(Request(url, callback=spider.parse, meta={META_SEED: True}))
        except (TypeError, ValueError):
            continue
    for path in sorted(out.iterdir()) if out.is_dir() else ():
        if _CORPUS.match(path.name):
            for doc in _records(path):
                links = _links(spider, doc)
                if links is not None:
                    g.documents += 1
                    g.frontier.extend(links)
        elif _SPOOL.match(path.name):
            g.spooled.extend(e for e in _records(path)
                             if e.get("fp") and isinstance(e.get("data"), str))
    return g


def _spider(job: JobConfig) -> Any:
    spider = CorpusSpider()
    spider.job = job
    # no crawl runs here: the links a page gave are filtered by the job's scope patterns as
    # the running spider filters them (the page cap is the workers' to enforce, per worker)
    spider._scope_obj = Scope(job.scope)
    return spider


def _links(spider: Any, doc: dict[str, Any]) -> list[Any] | None:
    """The links the corpus spider follows from a stored page (its own follow rule)."""
    from scrapy import Request
    from scrapy.http import HtmlResponse

    url, html = doc.get("url"), doc.get("html")
    if not isinstance(url, str) or not isinstance(html, str):
        return None
    try:
        response = HtmlResponse(url, body=html.encode("utf-8"), encoding="utf-8",
                                request=Request(url))
        return list(spider._follow(response))
    except (TypeError, ValueError):
        return None


@dataclass
class RestoreReport:
    job: str
    epoch: str
    hold: float
    workers: list[str]
    sent: int
    refused: int
    documents: int
    from_pages: int = 0
    from_redis: int = 0
    from_spool: int = 0
    undecided: int = 0
    start_urls: int = 0
    unreadable: int = 0
    #: pay per crawl: micro-units the workers' logs say were spent, loaded into the budget
    spent_micros: int | None = None

    @property
    def queued(self) -> int:
        return self.from_pages + self.from_redis + self.from_spool + self.undecided

    def describe(self) -> str:
        who = ", ".join(self.workers) or "none"
        extra = f", {self.start_urls} start URLs kept" if self.start_urls else ""
        bad = f", {self.unreadable} unreadable entries dropped" if self.unreadable else ""
        if self.spent_micros is not None:
            bad += (f"; pay per crawl: {self.spent_micros / 1e6:g} (budget currency) spent "
                    "by the workers' logs, loaded into the shared budget")
        n = len(self.workers)
        return (f"polite-crawl: job {self.job!r} restored from the logs of {n} "
                f"worker{'' if n == 1 else 's'} ({who}): {self.sent} URLs sent (never fetched again), {self.refused} "
                f"refused, {self.documents} stored pages; {self.queued} URLs queued "
                f"({self.undecided} undecided first, {self.from_pages} from the seeds and "
                f"stored pages, {self.from_redis} Redis still held, {self.from_spool} "
                f"spooled){extra}{bad}; new epoch {self.epoch}: the workers resume after a "
                f"{self.hold:g} s hold")


def restore_job(client: Any, job: JobConfig, *, hold: float) -> RestoreReport:
    """Rebuild ``job``'s Redis state (see the module docstring); what was done."""
    from scrapy_redis import picklecompat


    keys = JobKeys(job.job)
    spider = _spider(job)
    client.delete(keys.epoch)  # 1. every worker stops now (a half-built state is never used)
    g = gather(job, spider)
    report = RestoreReport(job.job, "", hold, g.workers, len(g.sent), len(g.refused),
                           g.documents)
    known = set(g.sent) | set(g.refused)
    spent = _spent(job)  # (before anything is deleted: a log that lies about money stops here)

    # 2. what Redis still holds
    survived: list[tuple[bytes, int, str, str | None]] = []
    raws = [bytes(r) for r in client.zrange(keys.requests, 0, -1)]
    for key in client.scan_iter(match=keys.inflight_prefix + "*", count=500):
        for v in client.hvals(key):
            _score, sep, raw = bytes(v).partition(b":")
            if sep:
                raws.append(raw)
    for raw in raws:
        try:
            d = picklecompat.loads(raw)
            url = str(d["url"])
            fp = (None if d.get("dont_filter")
                  else fingerprint(url, str(d.get("method") or "GET"), d.get("body") or b""))
            survived.append((raw, int(d.get("priority") or 0), _origin(url), fp))
        except Exception:  # noqa: BLE001 - garbage or another version's entry: not restored
            report.unreadable += 1
    start_urls = [bytes(x) for x in client.lrange(keys.start_urls, 0, -1)]

    # 3. every key of the job but the shared reservation entries
    shared = tuple(p[:-1] for p in keys.shared_patterns())
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith(shared):
            continue
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)

    # 4. + 5. the duplicate filter and the queue
    seen: set[str] = set()
    counters: dict[str, int] = {}
    entries: list[tuple[bytes, float]] = []

    def queue(raw: bytes, priority: int, origin: str, fp: str | None) -> bool:
        if fp is not None:
            if fp in known or fp in seen:
                return False
            seen.add(fp)
        n = counters[origin] = counters.get(origin, 0) + 1
        entries.append((raw, -priority * 1e9 + (n % 1e9)))
        return True

    def encode(request: Request) -> bytes:
        return bytes(picklecompat.dumps(request.to_dict(spider=spider)))

    from scrapy import Request as Req

    for url in g.undecided:
        r = Req(url, callback=spider.parse, priority=UNDECIDED_PRIORITY)
        report.undecided += queue(encode(r), UNDECIDED_PRIORITY, origin_of(r), fingerprint(url))
    for raw, priority, origin, fp in survived:
        report.from_redis += queue(raw, priority, origin, fp)
    for e in g.spooled:
        try:
            raw = base64.b64decode(e["data"])
        except (ValueError, TypeError):
            report.unreadable += 1
            continue
        report.from_spool += queue(raw, int(e.get("priority") or 0), str(e.get("origin") or ""),
                                   str(e["fp"]))
    for r in g.frontier:
        fp = fingerprint(r.url, r.method)
        if fp is not None:
            report.from_pages += queue(encode(r), int(r.priority), origin_of(r), fp)

    pipe = client.pipeline(transaction=False)
    fps = list(known | seen)
    for i in range(0, len(fps), _BATCH):
        pipe.sadd(keys.dupefilter, *fps[i:i + _BATCH])
    for i in range(0, len(entries), _BATCH):
        pipe.zadd(keys.requests, dict(entries[i:i + _BATCH]))
    if counters:
        pipe.hset(keys.origin_seq, mapping=counters)
    if start_urls:
        pipe.rpush(keys.start_urls, *start_urls)
        report.start_urls = len(start_urls)
    pipe.execute()
    if spent is not None:  # the shared pay-per-crawl budget, as spent by every worker
        RedisLedger(client, keys, PaymentPolicy.from_config(job.payment)).load(spent)
        report.spent_micros = sum(spent.values())

    # 6. the new epoch, last
    report.epoch = write_epoch(client, job.job, "restore", hold=hold) or ""
    return report


def _spent(job: JobConfig) -> dict[str, int] | None:
    """Pay per crawl: micro-units spent per origin by every worker of the job, from their
    audit logs (:func:`crawler.policy.payment_replay.replay` per log: an authorisation without its
    charge record counts as spent in full), or None when the job does not pay. A log whose money
    cannot be read refuses the restore (the workers stay stopped): never a budget guessed."""
    if job.payment is None:
        return None
    spent: dict[str, int] = {}
    logs = {path.name: path for path in worker_logs(Path(job.output_dir)).values()}
    # a paid request goes through the shared queue: another worker may have sent it and
    # recorded its charge against an authorisation in this log
    closed = cross_log_charges({name: _records(path) for name, path in logs.items()})
    for name, path in logs.items():
        try:
            history = replay(_records(path), log=name, closed=closed[name])
        except ValueError as exc:  # PriceError, CurrencyMismatch
            raise RuntimeError(f"{path}: the money spent cannot be read ({exc}); the budget "
                               "is not restored and the workers stay stopped") from None
        for origin, micros in history.spent.items():
            spent[origin] = spent.get(origin, 0) + int(micros)
    return spent


def _origin(url: str) -> str:
    from scrapy import Request

    return origin_of(Request(url))
