"""Where a cluster worker's requests wait: the shared queue in Redis and the local spool.

:class:`InflightPriorityQueue` is scrapy-redis's priority queue for one job, run through the
queue scripts (:mod:`crawler.cluster.scripts`): a pop moves the request into the worker's
in-flight hash, a push interleaves origins and may pass the duplicate filter in the same call,
and :meth:`InflightPriorityQueue.step` sends a worker's batched :class:`Link` s, lease releases,
a grant and its next pops in one round trip. :class:`Spool` keeps, one JSON line each, the
requests Redis could not take. :class:`crawler.cluster.scheduler.ClusterScheduler` drives
both (why each exists: that module's docstring).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from scrapy_redis.queue import PriorityQueue

from crawler.cluster.connection import named_script
from crawler.cluster.keys import META_EPOCH, META_INFLIGHT
from crawler.cluster.scripts import POP_SCRIPT, PUSH_SCRIPT, PUSH_UNSEEN_SCRIPT, STEP_SCRIPT
from crawler.cluster.state import check, problem_of

if TYPE_CHECKING:
    from scrapy import Request


class Link(NamedTuple):
    """A request found by this worker, batched until the worker's next step."""

    request: Request
    data: bytes
    priority: int
    origin: str
    fp: str | None



class InflightPriorityQueue(PriorityQueue):
    """scrapy-redis's priority queue whose ``pop`` keeps the request in the in-flight hash,
    and whose ``push`` interleaves origins.

    scrapy-redis scores a request ``-priority``; requests of equal priority then come out in
    the byte order of their pickles, which tends to bunch one origin's requests together: a
    worker's downloader fills up with requests that all wait for the same origin's turn
    while other origins idle. Here the score is ``-priority * 1e9 + n``, ``n`` counting the
    origin's requests so far: within a priority, every origin's n-th request comes before
    any origin's (n+1)-th (round robin), as Scrapy's own downloader-aware queue intends.
    """

    def __init__(self, server: Any, spider: Any, key: str, serializer: Any = None, *,
                 inflight_key: str, seq_key: str, origin_seq_key: str, epoch_key: str,
                 epoch: Any) -> None:
        super().__init__(server, spider, key, serializer)
        self.inflight_key = inflight_key
        self.seq_key = seq_key
        self.origin_seq_key = origin_seq_key
        self.epoch_key = epoch_key
        #: a callable: the epoch the worker works under now
        self.epoch = epoch
        self._pop = named_script(server, POP_SCRIPT, "pop")
        self._push = named_script(server, PUSH_SCRIPT, "push")
        self._push_unseen = named_script(server, PUSH_UNSEEN_SCRIPT, "push_unseen")
        self._step = named_script(server, STEP_SCRIPT, "step")

    def encode(self, request: Request) -> bytes:
        return self._encode_request(request)

    def push(self, request: Request) -> None:
        from crawler.crawl.meta import origin_of

        self.push_raw(self._encode_request(request), int(request.priority), origin_of(request))

    def push_raw(self, data: bytes, priority: int, origin: str) -> None:
        check(self._push(keys=[self.key, self.origin_seq_key, self.epoch_key],
                         args=[priority, origin, data, self.epoch()]))

    def push_unseen(self, request: Request, dupefilter_key: str, fingerprint: str) -> bool:
        """Mark ``fingerprint`` seen and queue ``request`` in one script call (False: seen
        before). Two calls would leave a window in which a killed worker has marked a URL seen
        without queueing it: no worker would ever fetch it."""
        from crawler.crawl.meta import origin_of

        return self.push_unseen_raw(self._encode_request(request), int(request.priority),
                                    origin_of(request), dupefilter_key, fingerprint)

    def push_unseen_raw(self, data: bytes, priority: int, origin: str, dupefilter_key: str,
                        fingerprint: str) -> bool:
        return bool(check(self._push_unseen(
            keys=[self.key, self.origin_seq_key, dupefilter_key, self.epoch_key],
            args=[priority, origin, data, fingerprint, self.epoch()])))

    def step(self, links: list[Link], releases: list[tuple[str, str]], *, pop: int,
             origin_prefix: str, from_now: bool, dupefilter_key: str,
             grant: tuple[list[str], list[Any]] | None = None) -> tuple[Any, Any, Any, Any]:
        """One round trip: ``releases``, then ``links``, then the ``grant`` (ACQUIRE_SCRIPT's
        KEYS and ARGV) if asked, then up to ``pop`` pops. Returns (released, pushed, popped,
        granted) as STEP_SCRIPT answers them; ``popped`` a list of requests decoded as :meth:`pop`
        does, or a state problem answer."""
        epoch = self.epoch()
        if grant is not None:
            (origin_key, _epoch_key, beats, clock, _inflight), grant_args = grant
        else:
            origin_key, beats, clock, grant_args = origin_prefix, self.epoch_key, \
                self.epoch_key, [""] * 11
        args: list[Any] = [epoch, int(pop), origin_prefix, "1" if from_now else "0",
                           len(releases), "1" if grant is not None else "0", *grant_args]
        for origin, token in releases:
            args += [origin, token]
        for link in links:
            args += [link.priority, link.origin, link.data, link.fp or ""]
        released, pushed, popped, granted = self._step(
            keys=[self.key, self.inflight_key, self.seq_key, self.epoch_key,
                  self.origin_seq_key, dupefilter_key, origin_key, beats, clock], args=args)
        if problem_of(popped) is None:
            popped = [self._popped_request(popped[j:j + 2], epoch)
                      for j in range(0, len(popped or ()), 2)]
        return released, pushed, popped, granted

    def _popped_request(self, res: Any, epoch: str) -> Request:
        ident, data = res
        request = self._decode_request(data)
        request.meta[META_INFLIGHT] = ident.decode() if isinstance(ident, bytes) else ident
        request.meta[META_EPOCH] = epoch
        return request

    def pop(self, timeout: int = 0) -> Request | None:
        epoch = self.epoch()
        res = check(self._pop(keys=[self.key, self.inflight_key, self.seq_key, self.epoch_key],
                              args=[epoch]))
        if not res:
            return None
        ident, data = res
        request = self._decode_request(data)
        request.meta[META_INFLIGHT] = ident.decode() if isinstance(ident, bytes) else ident
        request.meta[META_EPOCH] = epoch
        return request


class Spool:
    """Requests Redis could not take, one JSON line each (``url``, ``priority``, ``origin``,
    ``fp``: the duplicate-filter fingerprint, or null for a request that bypasses it;
    ``data``: the encoded request, base64), appended and flushed one by one. The file exists
    only while something is spooled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        try:
            with open(path, "rb") as fh:
                self.count = sum(1 for line in fh if line.endswith(b"\n"))
        except OSError:
            pass

    def add(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.count += 1

    def entries(self) -> list[dict[str, Any]]:
        out = []
        try:
            with open(self.path, "rb") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except ValueError:  # a line torn by a kill: never completed, never used
                        continue
                    if isinstance(entry, dict) and isinstance(entry.get("data"), str):
                        out.append(entry)
        except OSError:
            pass
        return out

    def replace(self, entries: list[dict[str, Any]]) -> None:
        """Keep only ``entries`` (the file goes when none is left)."""
        if not entries:
            self.path.unlink(missing_ok=True)
            self.count = 0
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for e in entries:
                fh.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self.count = len(entries)

