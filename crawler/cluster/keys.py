"""The Redis key names of one cluster job: everything lives under ``polite:<job>:``.

Keys are plain strings (a single Redis server, no Redis Cluster hash tags). Job and worker
names are checked here once, since they become parts of key names and file names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Request meta the scheduler sets on a popped request (beside the Redis keys: the names the
#: cluster writes): its id in its worker's in-flight hash, and the job epoch it was popped
#: under (state.py). The politeness gate reads them too.
META_INFLIGHT = "polite_cluster_inflight"
META_EPOCH = "polite_cluster_epoch"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_name(value: str, what: str) -> str:
    """Refuse a job or worker name that cannot be a key or file name part."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(f"{what}: {value!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


@dataclass(frozen=True)
class JobKeys:
    """Key names for ``job``; per-origin and per-file keys embed the origin / URL as is."""

    job: str

    def __post_init__(self) -> None:
        check_name(self.job, "job")

    @property
    def prefix(self) -> str:
        return f"polite:{self.job}"

    # -- scrapy-redis: queue, duplicate filter, start URLs ---------------------------------
    @property
    def requests(self) -> str:
        return f"{self.prefix}:requests"

    @property
    def dupefilter(self) -> str:
        return f"{self.prefix}:dupefilter"

    @property
    def start_urls(self) -> str:
        return f"{self.prefix}:start_urls"

    # -- the job's epoch (state.py) ---------------------------------------------------------
    @property
    def epoch(self) -> str:
        """Hash ``id``, ``run_id``, ``how``, ``created``, ``hold_until``: written by ``seed``;
        missing or from another server run = the job's state is not trusted."""
        return f"{self.prefix}:epoch"

    # -- workers: presence, liveness and requests in flight ----------------------------------
    @property
    def beats(self) -> str:
        """Hash ``worker -> Redis TIME (ms) of its last heartbeat``."""
        return f"{self.prefix}:beats"

    @property
    def clock(self) -> str:
        """Hash ``last`` (ms of the last heartbeat anyone made) and ``since`` (since when Redis
        has served heartbeats without a gap): a worker is dead only from evidence."""
        return f"{self.prefix}:clock"

    @property
    def workers(self) -> str:
        """Set of every worker name that has run for the job (dead ones are removed)."""
        return f"{self.prefix}:workers"

    @property
    def alive_prefix(self) -> str:
        return f"{self.prefix}:alive:"

    def alive(self, worker: str) -> str:
        return self.alive_prefix + worker

    @property
    def inflight_prefix(self) -> str:
        return f"{self.prefix}:inflight:"

    def inflight(self, worker: str) -> str:
        """Hash ``id -> "<score>:<encoded request>"`` of the requests a worker has popped."""
        return self.inflight_prefix + worker

    @property
    def inflight_seq(self) -> str:
        return f"{self.prefix}:inflight-seq"

    @property
    def origin_seq(self) -> str:
        """Hash ``origin -> requests queued so far`` (interleaves origins in the queue)."""
        return f"{self.prefix}:origin-seq"

    # -- shared politeness and reservation cache --------------------------------------------
    def origin(self, origin: str) -> str:
        return f"{self.prefix}:origin:{origin}"

    def site(self, kind: str, url: str) -> str:
        return f"{self.prefix}:site:{kind}:{url}"

    def site_lock(self, kind: str, url: str) -> str:
        return f"{self.prefix}:site-lock:{kind}:{url}"

    def site_failures(self, kind: str, url: str) -> str:
        return f"{self.prefix}:site-failures:{kind}:{url}"

    def registry(self, name: str, url: str) -> str:
        return f"{self.prefix}:registry:{name}:{url}"

    def shared_patterns(self) -> tuple[str, ...]:
        """Glob patterns of the authenticated reservation entries (kept by ``seed --restore``:
        they are not job progress, and each carries its own MAC and expiry)."""
        return (f"{self.prefix}:site:*", f"{self.prefix}:registry:*")

    def all_patterns(self) -> tuple[str, ...]:
        """Glob patterns covering every key of the job (for ``seed --reset``)."""
        return (f"{self.prefix}:*",)
