"""Every ``POLITE_CLUSTER_*`` setting and its default, in one place.

Cluster mode is on when ``POLITE_CLUSTER_REDIS_URL`` is set (``cluster: {redis_url: ...}`` in a
job config). :func:`crawler.cluster.settings.cluster_settings` derives the rest of the Scrapy
settings a worker needs, including scrapy-redis's own names (``SCHEDULER_PERSIST`` ...), from
these.
"""

#: ``redis://host:port/db`` of the Redis server the workers share; None = cluster mode off.
POLITE_CLUSTER_REDIS_URL: str | None = None
#: This worker's name: unique among the job's running workers ([A-Za-z0-9_.-], at most 64).
#: It names the worker's outputs (``audit-<worker>.jsonl``) and its Redis presence.
POLITE_CLUSTER_WORKER = "w1"
#: The job whose Redis keys (``polite:<job>:...``) this worker uses; None = ``POLITE_JOB``.
POLITE_CLUSTER_JOB: str | None = None
#: The per-origin delay enforced for the whole cluster (seconds between two requests to one
#: origin, whichever workers send them). A robots.txt Crawl-delay / Request-rate above it
#: wins (up to ``POLITE_MAX_CRAWL_DELAY``). Cluster mode sets Scrapy's own DOWNLOAD_DELAY to 0:
#: a local delay on top of the shared one could only shift a granted send later.
POLITE_CLUSTER_DELAY = 1.0
#: Where the delay counts from: "response" (the next request to an origin leaves at least the
#: delay after the previous one was answered: the server never sees a shorter gap) or
#: "grant" (after the previous one was granted, as Scrapy's DOWNLOAD_DELAY: one download
#: time faster per request, gaps at the server shorter by the grant-to-arrival jitter).
POLITE_CLUSTER_SPACING = "response"
#: While another worker holds an origin's lease, ask again after at most this many seconds.
POLITE_CLUSTER_LEASE_POLL = 0.1
#: Added to a request's download timeout to get its lease's lifetime (a lease whose holder
#: is no longer alive is void at once, see ``POLITE_CLUSTER_WORKER_TTL``).
POLITE_CLUSTER_LEASE_MARGIN = 5.0
#: Give up waiting for an origin after this many seconds (the request is dropped, with a
#: stat and an error log line; it is not sent).
POLITE_CLUSTER_GATE_TIMEOUT = 3600.0
#: Seconds a worker's presence key lives without a heartbeat. A worker that stops beating
#: (killed) holds no origin lease and no fetch lock after this, and its in-flight requests
#: go back to the shared queue.
POLITE_CLUSTER_WORKER_TTL = 10.0
#: A worker that finds the job's state lost or untrusted in Redis (no epoch: Redis restarted
#: empty; another server run: restarted from a snapshot or an AOF, or failed over) sends
#: nothing and waits this many seconds for an operator to run ``polite-crawl seed CONFIG
#: --restore`` (or ``--reset``); it then re-registers what it holds and goes on. After the
#: wait it spools what it held (``spool-<worker>.jsonl``) and exits non-zero.
POLITE_CLUSTER_RESTORE_WAIT = 1800.0
#: Seconds a restored (or reset) epoch holds every grant, so that every live worker
#: re-registers the leases of its requests on the wire first; None = the worker TTL (each
#: live worker beats at least three times within it).
POLITE_CLUSTER_RESTORE_HOLD: float | None = None
#: Seconds between heartbeats (presence, acknowledgement of finished requests, recovery of
#: dead workers' requests, waking an idle engine when the shared queue has work).
POLITE_CLUSTER_HEARTBEAT = 1.0
#: A per-origin file another worker is fetching is waited for up to this many seconds; then
#: this worker fetches it itself.
POLITE_CLUSTER_FETCH_WAIT = 90.0
#: How often a waiting worker looks for the file another worker is fetching.
POLITE_CLUSTER_FETCH_POLL = 0.05
#: Lifetime of a fetch lock (renewed by nobody: the fetch must finish within it; a holder
#: that dies frees it at once through its presence key).
POLITE_CLUSTER_FETCH_LOCK_TTL = 120.0
#: A worker with nothing to do closes once the whole cluster has had nothing to do (empty
#: queue, no start URLs, no request in flight on any worker) for this many seconds.
POLITE_CLUSTER_IDLE_CLOSE = 5.0
#: Start URLs popped from ``polite:<job>:start_urls`` per batch.
POLITE_CLUSTER_SEED_BATCH = 100
