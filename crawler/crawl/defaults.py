"""Every ``POLITE_*`` setting and its default, in one place.

A Scrapy project that enables :class:`crawler.addon.Addon` may override any of these in
its own settings; ``polite-crawl run`` derives them from the YAML config (``crawler.config.job``).
"""

POLITE_JOB = "default"
#: The full User-Agent header. Must contain a product token (text before "/") and a contact
#: URL; the crawl refuses to start otherwise.
POLITE_USER_AGENT = ""
#: The use the corpus serves: train-ai | train-genai | search | ai-input.
POLITE_PURPOSE = "train-ai"
#: robots.txt groups naming these tokens bind this crawl too (the ``*`` group binds only
#: through our own token).
POLITE_HONOR_AGENTS: list[str] = []
#: Refuse loopback, private, link-local, metadata and other non-global addresses.
POLITE_ALLOW_PRIVATE_NETWORKS = False
#: Origins exempt from the network guard although their address is private, e.g.
#: ["http://10.0.0.5:8080"] for an internal mirror (also how the tests prove the guard).
POLITE_ALLOWED_PRIVATE_ORIGINS: list[str] = []
#: Where corpus.jsonl and audit.jsonl go. ``%(name)s`` (the spider's name) and ``%(time)s``
#: (the run's start, UTC, as Scrapy's FEEDS URIs write it) are filled in, e.g.
#: "out/%(name)s/%(time)s"; any other ``%(...)`` placeholder is a settings error.
POLITE_OUTPUT_DIR = "out"
#: File names inside POLITE_OUTPUT_DIR (a cluster worker writes audit-<worker>.jsonl, ...).
POLITE_AUDIT_FILE = "audit.jsonl"
POLITE_CORPUS_FILE = "corpus.jsonl"
POLITE_PROVENANCE_FILE = "provenance.jsonl"
POLITE_RUN_FILE = "run.json"
#: Write corpus.jsonl (crawler.crawl.pipelines.CorpusWriterPipeline). Off for a Scrapy project
#: using the add-on (its items go to its own pipelines and feeds); ``polite-crawl run`` and
#: the corpus spider switch it on.
POLITE_CORPUS_ENABLED = False
#: Attach the provenance of the allow decision to each item a callback yields (fields
#: polite_audit_seq, polite_audit_hash, polite_policy_sha256 where the item type takes
#: them, else a line in POLITE_PROVENANCE_FILE). The corpus spider's own items carry
#: audit_seq/audit_hash instead: it switches this off.
POLITE_ITEM_PROVENANCE = True
#: Reservation signals to honour (all by default). Switching one off is recorded in the
#: policy hash of every audit record.
POLITE_SIGNALS = ["robots", "tdmrep", "noai", "ai-txt", "content-usage", "content-signal",
                  "rsl", "payment-required", "iptc", "c2pa"]
#: Who we are for RSL licences: our user type and the ISO 3166-1 country we operate from
#: (None: unknown; a licence with a geo restriction then does not apply to us).
POLITE_OPERATOR_USER_TYPE = "commercial"
POLITE_OPERATOR_COUNTRY = None
#: Per-origin files (robots.txt, tdmrep.json) are re-fetched after this many seconds.
POLITE_SITE_CACHE_TTL = 86400.0
#: Bytes the cache of per-origin files may hold (estimated). Past it the least recently used
#: origins' files are dropped (and expired ones every minute); a dropped file is fetched again
#: when a URL of its origin is next decided. An origin with a typical robots.txt (and 404s for
#: tdmrep.json and ai.txt) takes about 1.7 KB (counted as 2.5 KB: the estimate is kept above
#: what is measured), so the default holds about 100,000 origins.
POLITE_SITE_CACHE_MAX_BYTES = 256 * 1024 * 1024
#: After a failed per-origin fetch (5xx, 429, network error) the origin stays refused, and
#: the file is fetched again after this many seconds, doubling per failure up to the TTL.
POLITE_SITE_RETRY_BACKOFF = 60.0
#: A URL refused because a per-origin file could not be fetched is decided again after the
#: backoff, up to this many times; the last refusal is final (the record says so).
POLITE_UNDECIDED_RETRIES = 2
#: Longest time (seconds) a run stays open when its only work left is waiting for those
#: retries (the spider idle). Past it, or at once when no retry falls due before it, the
#: waiting URLs are refused for good in this run (a final undecided record with
#: "deferred_to_next_run") and the run ends; the job's next run decides them first.
#: 0 = patient: wait as long as the backoff says.
POLITE_MAX_IDLE_WAIT = 60.0
#: Class of the per-origin file cache the runtime builds (a cluster worker's settings name the
#: shared one, crawler.cluster.store.SharedSiteCache).
POLITE_SITECACHE_CLASS = "crawler.crawl.sitecache.SiteCache"
#: Class of the opt-out registries the runtime builds from POLITE_REGISTRIES.
POLITE_REGISTRIES_CLASS = "crawler.crawl.registries.Registries"
#: Class of each HTTP registry client in it (cluster: crawler.cluster.store.SharedHttpRegistry,
#: answers shared by the job's workers).
POLITE_HTTP_REGISTRY_CLASS = "crawler.crawl.registries.HttpRegistry"
#: Class of the pay-per-crawl ledger (cluster: crawler.cluster.store.SharedLedger, the job's
#: budget in Redis).
POLITE_PAYMENT_LEDGER_CLASS = "crawler.policy.payment.LocalLedger"
#: Timeout for robots.txt and other per-origin fetches.
POLITE_PREFLIGHT_TIMEOUT = 30.0
#: Bytes of a per-origin file read at most (the rest is not downloaded).
POLITE_PREFLIGHT_MAXSIZE = 1_048_576
#: Redirect hops followed for per-origin files (RFC 9309: at least five).
POLITE_PREFLIGHT_MAX_REDIRECTS = 5
#: Continue an interrupted run / re-crawl a finished one in the same output_dir
#: (see crawler/crawl/resume.py). False: every run starts from scratch (the audit chain continues).
POLITE_RESUME = True
#: Also write request/response/metadata records to output_dir/corpus.warc.gz (warcio).
POLITE_WARC = False
#: fsync the audit log after every record (survives power loss, not only a killed process).
POLITE_AUDIT_FSYNC = False
#: A signed checkpoint of the audit log every this many records (0: only at the end of each
#: run), appended to ``<log stem>.checkpoints.jsonl`` (crawler/audit/checkpoint.py).
POLITE_AUDIT_CHECKPOINT_EVERY = 1000
#: RFC 3161 Time-Stamp Authority that timestamps each checkpoint (None: no timestamps).
POLITE_AUDIT_TSA_URL = None
#: Seconds a timestamp request may take (it runs beside the crawl, never holding it).
POLITE_AUDIT_TSA_TIMEOUT = 10.0
#: The crawler's Ed25519 key (``polite-crawl identity init``) that signs the checkpoints;
#: None: checkpoints are written unsigned.
POLITE_IDENTITY_KEY_FILE = None
#: Where the crawler's key directory is published (identity.signature_agent, https://); with
#: POLITE_IDENTITY_KEY_FILE, every request is signed (Web Bot Auth). None: requests unsigned.
POLITE_IDENTITY_SIGNATURE_AGENT = None
#: Seconds a request signature is valid (1..3600).
POLITE_SIGNATURE_VALIDITY = 60
#: Pay per crawl (``payment:``): the most one page may cost, e.g. "USD 0.01". None (the three
#: unset): payments off, a 402 is a refusal. Set, it needs a signing identity (the key file
#: and the signature agent): Cloudflare takes payment only from Web Bot Auth verified bots.
POLITE_PAYMENT_MAX_PRICE = None
#: The most the job may spend, across all origins and runs (e.g. "USD 5.00").
POLITE_PAYMENT_BUDGET = None
#: The most one origin may take (e.g. "USD 1.00"); None: the job's budget.
POLITE_PAYMENT_PER_ORIGIN_BUDGET = None
#: Where per-origin files are kept, named by SHA-256 (None: ``<output_dir>/evidence``).
POLITE_EVIDENCE_DIR = None
#: Longest Retry-After (seconds) honoured on 429/503; a longer one drops the retry.
POLITE_RETRY_AFTER_MAX = 600.0
#: Follow links: "same-origin" (default), "same-host", or "none".
POLITE_FOLLOW = "same-origin"
#: What the corpus collects (``collect:``): any of "html", "text", "pdf", "image"
#: (crawler/corpus/documents.py says how a response's kind is told). Links to other kinds are not
#: followed; a response of another kind (a seed, a redirect) is recorded as not collected and
#: nothing of it is stored. "pdf" needs the documents extra (pypdf). A job config's
#: ``collect:`` defaults to COLLECT_DEFAULT; in another Scrapy project (the add-on) the unset
#: setting (None) filters nothing: every response reaches the user's callbacks, each judged at
#: the document stage first (the reservations written inside a PDF, an image or an unknown
#: binary are read before a callback sees it).
POLITE_COLLECT = None
COLLECT_DEFAULT = ("html", "text")
#: The crawl's scope (``scope:``): ``{"include": [regex, ...], "exclude": [...],
#: "max_pages_per_origin": N}`` (crawler/policy/scope.py validates it; empty: every URL, no cap).
#: Narrows what is asked for, never what may be collected: not part of the policy hash.
POLITE_SCOPE: dict = {}
#: Sitemaps (``sitemaps:``): None (off) or the walk's limits ``{"max_depth": 3, "max_files":
#: 100, "max_urls": 250000, "max_bytes": 268435456, ...}`` (crawler.corpus.sitemaps.SitemapLimits
#: as a mapping; ``{}`` = the defaults). The corpus spider reads them.
POLITE_SITEMAPS = None
#: The corpus ``text`` of an HTML page: "main" (its main content, boilerplate removed, by
#: trafilatura: crawler/corpus/maintext.py) or "visible" (every visible text node of <body>).
POLITE_TEXT = "main"
#: Pages with more elements than this get their visible text instead of the main content
#: (``text_mode: visible-fallback``): trafilatura's time grows with the elements.
POLITE_TEXT_MAX_ELEMENTS = 50_000
#: Seconds a collected PDF's text extraction may take (on its own thread, never the reactor's);
#: past it the PDF is kept without text, with a note.
POLITE_PDF_TEXT_TIMEOUT = 60.0

#: Scrapy settings a polite crawl starts from (a config's ``settings:`` may override them).
SCRAPY_DEFAULTS = {
    "ROBOTSTXT_OBEY": False,  # our own robots path replaces Scrapy's (see addon.py)
    "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
    "CONCURRENT_REQUESTS": 16,
    "DOWNLOAD_DELAY": 1.0,
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 1.0,
    "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
    "COOKIES_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "INFO",
    "DOWNLOAD_MAXSIZE": 32 * 1024 * 1024,
    # items (per response) handled at once by the item pipelines: Scrapy starts this many
    # worker tasks for every callback's output (100 by default: ~15 % of a page's CPU time
    # here); the corpus spider yields one item per page and the pipelines are synchronous
    "CONCURRENT_ITEMS": 8,
}
#: Longest Crawl-delay / Request-rate interval honoured per origin (a site asking for more
#: is crawled at this interval; the audit log keeps the file).
POLITE_MAX_CRAWL_DELAY = 86400.0
