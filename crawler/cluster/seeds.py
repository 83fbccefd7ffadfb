"""Start URLs for a cluster job: ``polite-crawl seed CONFIG`` pushes them, workers pop them.

The list ``polite:<job>:start_urls`` holds one JSON object per seed, as scrapy-redis's
``RedisMixin`` reads them (``{"url": ...}``; a bare URL string is accepted too). Seeds are
popped in batches by whichever worker asks first (at start, and whenever a worker is idle),
and go through the shared duplicate filter like any link: a seed that another page links to
is fetched once. (scrapy-redis's own ``make_request_from_data`` sets ``dont_filter=True``
and a POST-capable ``FormRequest``; a seed here is a plain GET that the filter sees.)

The first ``seed`` of a job writes its epoch (state.py): the sentinel every worker checks.
A ``seed`` never writes one over a job whose state Redis lost or cannot be trusted with
(:func:`crawler.cluster.restore.prepare_seed`): that is what ``seed --restore`` (restore.py)
or ``--reset`` is for. A worker pops its first batch with
:func:`crawler.cluster.worker.cluster_start_requests`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from crawler.cluster.keys import JobKeys
from crawler.cluster.state import job_problem, write_epoch

if TYPE_CHECKING:
    import redis
    from scrapy import Request

META_SEED = "polite_seed"


class SeedSource(Protocol):
    """What :func:`pop_seed_requests` takes from a worker
    (:class:`crawler.cluster.worker.ClusterWorker`): its Redis client, the job's keys, how many
    seeds it pops at once, and its crawler (for the stats)."""

    redis: Any
    keys: JobKeys
    seed_batch: int
    crawler: Any


def push_seeds(client: redis.Redis, job: str, urls: Iterable[str]) -> int:
    """Append ``urls`` (duplicates dropped, order kept) to the job's start URLs; how many."""
    unique = list(dict.fromkeys(urls))
    if unique:
        client.rpush(JobKeys(job).start_urls,
                     *(json.dumps({"url": u}, ensure_ascii=False) for u in unique))
    return len(unique)


def reset_job(client: redis.Redis, job: str, *, hold: float = 0.0) -> int:
    """Delete every key of the job (queue, duplicate filter, start URLs, in-flight requests,
    shared reservation cache, origin state) and write a new epoch (with a ``hold`` in which
    workers waiting on a lost state re-register their requests on the wire): the next run
    starts from nothing. Refused while a worker of the job is alive, unless the job's state
    is untrusted (Redis restarted: its workers are waiting, sending nothing). Returns the
    number of keys deleted."""
    keys = JobKeys(job)
    problem = job_problem(client, job)
    alive = [k for k in client.scan_iter(match=keys.alive_prefix + "*", count=500)]
    if alive and (problem is None or not problem.stalled or problem.code == "lost"):
        names = sorted(k.decode()[len(keys.alive_prefix):] if isinstance(k, bytes) else k
                       for k in alive)
        raise RuntimeError(f"job {job!r} has live workers ({', '.join(names)}); stop them "
                           "before resetting it")
    deleted = 0
    batch: list[Any] = []
    for pattern in keys.all_patterns():
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
    if batch:
        deleted += client.delete(*batch)
    write_epoch(client, job, "reset", hold=hold)
    return deleted


def job_status(client: redis.Redis, job: str) -> dict[str, Any]:
    """Queue length, seeds waiting, live workers and their requests in flight."""
    keys = JobKeys(job)
    workers = sorted(w.decode() if isinstance(w, bytes) else w
                     for w in client.smembers(keys.workers))
    live = {w: int(client.hlen(keys.inflight(w))) for w in workers
            if client.exists(keys.alive(w))}
    return {"job": job, "queued": int(client.zcard(keys.requests)),
            "start_urls": int(client.llen(keys.start_urls)),
            "seen": int(client.scard(keys.dupefilter)), "workers": live}


def request_from_data(data: bytes | str, spider: Any) -> Request | None:
    """A GET request for one start URL entry (JSON ``{"url": ...}`` or a bare URL)."""
    from scrapy import Request

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    text = text.strip()
    url: Any = text
    if text.startswith("{"):
        try:
            url = json.loads(text).get("url")
        except (ValueError, AttributeError):
            url = None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    callback = getattr(spider, "parse", None)
    return Request(url, callback=callback, meta={META_SEED: True})


def pop_seed_requests(worker: SeedSource, spider: Any,
                      limit: int | None = None) -> list[Request]:
    """Pop one batch of start URLs (atomically: each seed goes to one worker)."""
    import logging

    count = limit or worker.seed_batch
    raw = worker.redis.lpop(worker.keys.start_urls, count) or []
    out = []
    for data in raw:
        request = request_from_data(data, spider)
        if request is None:
            logging.getLogger(__name__).warning("start URL entry %r is not an http(s) URL or "
                                                '{"url": ...}: skipped', data[:200])
            continue
        out.append(request)
    if out:
        worker.crawler.stats.inc_value("polite/cluster/seeds_popped", len(out))
    return out
