"""WARC output: every collected document with its request, and the evidence it was allowed on.

:class:`CorpusWarcWriter` writes over a caller-owned binary file object (nothing is opened or
closed here), with the clock and record ids injectable so that output is byte-exact in tests.
It uses warcio's ``WARCWriter`` (one gzip member per record, SHA-256 digests). Per collected
document it writes three records, in this order:

* ``request``: the method, URL and the headers we sent (``Host`` added when Scrapy left it
  to the downloader), ``WARC-Concurrent-To`` the response;
* ``response``: the status line, headers and body as Scrapy delivered them. Scrapy hands over
  bodies already de-chunked and decompressed, so framing headers that no longer describe the
  stored body are kept under another name, as Common Crawl does: ``Transfer-Encoding`` becomes
  ``X-Crawler-Transfer-Encoding`` and a ``Content-Length`` that differs from the body becomes
  ``X-Crawler-Content-Length`` (the true length is written as ``Content-Length``);
* ``metadata`` (``application/json``, ``WARC-Concurrent-To`` the response): the allow
  decision's ``audit_seq``, ``audit_hash``, ``policy_sha256`` and every evidence file the
  decision relied on (each ``source_sha256`` in the audit record's ``checks``, with its
  ``source`` URL, ``signal`` and ``status``).

Per-origin evidence files (robots.txt, tdmrep.json, ai.txt, RSL licences) are archived the way
Common Crawl archives robots.txt: a ``response`` record for the file's URL, once per distinct
SHA-256, followed by a ``metadata`` record whose JSON has ``"role": "evidence"``. The same
bytes served at another URL (e.g. one robots.txt shared by many hosts) get a ``revisit``
record (identical payload digest) instead of a second copy. Only the body of an evidence file
is kept on disk (``output_dir/evidence/<sha256>``), so its status line comes from the audit
record, its only header is ``Content-Length`` and its ``WARC-Date`` is when it was
archived (the fetch time is not kept with it); the evidence metadata says so.

:class:`WarcWriterPipeline` is the Scrapy glue (``POLITE_WARC = True``), and
:func:`iter_warc_documents` a lazy reader for tests and revalidation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from io import BytesIO
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import NotConfigured
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

from crawler import __version__

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: The private item key the corpus spider fills for this pipeline (the corpus writer skips
#: keys starting with "_").
WARC_ITEM_KEY = "_warc"
WARC_FILENAME = "corpus.warc.gz"
WARC_VERSION = "WARC/1.0"
METADATA_TYPE = "application/json"
SOFTWARE = f"polite-crawler/{__version__}"
#: Allow records kept (from the ``decision_recorded`` signal) until their item arrives; an
#: allow that never becomes an item (a 404, a redirect) is forgotten oldest first.
PENDING_ALLOWS = 10_000

Headers = Mapping[Any, Any] | Iterable[tuple[Any, Any]]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def uuid_record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def sha256_hex_from_digest(value: str | None) -> str | None:
    """``sha256:BASE32`` (a WARC digest) as lower-case hex; None for other algorithms."""
    if not value or not value.lower().startswith("sha256:"):
        return None
    raw = value.split(":", 1)[1]
    try:
        if len(raw) == 64:
            return bytes.fromhex(raw).hex()
        return base64.b32decode(raw.upper()).hex()
    except ValueError:
        return None


class _Sha256WARCWriter(WARCWriter):
    """warcio's writer with SHA-256 block and payload digests (the corpus's own hash)."""

    @staticmethod
    def _create_digester() -> Digester:
        return Digester("sha256")


@dataclass(frozen=True, slots=True)
class DocumentRecords:
    """The record ids written for one document."""

    request_id: str
    response_id: str
    metadata_id: str
    evidence_ids: tuple[str, ...] = ()


@dataclass
class _Archived:
    record_id: str
    url: str
    date: str
    digest: str


class CorpusWarcWriter:
    """Writes warcinfo, document and evidence records to ``fileobj`` (never closes it).

    ``clock`` returns an aware datetime (UTC now by default); ``record_id`` returns a
    ``<urn:...>`` id (uuid4 by default). The warcinfo record is written before the first other
    record (or by :meth:`write_warcinfo`).
    """

    def __init__(
        self,
        fileobj: IO[bytes],
        *,
        job: str,
        user_agent: str,
        policy_sha256: str,
        info: Mapping[str, str] | None = None,
        filename: str | None = WARC_FILENAME,
        software: str = SOFTWARE,
        gzip: bool = True,
        clock: Callable[[], datetime] = utc_now,
        record_id: Callable[[], str] = uuid_record_id,
    ) -> None:
        self._writer = _Sha256WARCWriter(fileobj, gzip=gzip, warc_version=WARC_VERSION)
        self.job = job
        self.user_agent = user_agent
        self.policy_sha256 = policy_sha256
        self.info = dict(info or {})
        self.filename = filename
        self.software = software
        self._clock = clock
        self._new_id = record_id
        self.warcinfo_id: str | None = None
        self._archived: dict[str, _Archived] = {}   # evidence sha256 -> first response
        self._written: dict[tuple[str, str], str] = {}  # (sha256, url) -> record id

    # -- warcinfo ------------------------------------------------------------------------
    def write_warcinfo(self) -> str:
        """The warcinfo record (once): software, job, user agent, policy hash."""
        if self.warcinfo_id is not None:
            return self.warcinfo_id
        fields: dict[str, str] = {
            "software": self.software,
            "format": "WARC File Format 1.0",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
                          "warc-format/warc-1.0/",
            "isPartOf": self.job,
            "http-header-user-agent": self.user_agent,
            "policy-sha256": self.policy_sha256,
        }
        fields.update(self.info)
        body = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v).encode("utf-8")
        rid = self._new_id()
        headers = {"WARC-Record-ID": rid, "WARC-Date": self._date()}
        if self.filename:
            headers["WARC-Filename"] = self.filename
        rec = self._writer.create_warc_record(
            "", "warcinfo", payload=BytesIO(body), length=len(body),
            warc_content_type="application/warc-fields", warc_headers_dict=headers)
        self._writer.write_record(rec)
        self.warcinfo_id = rid
        return rid

    # -- documents -----------------------------------------------------------------------
    def write_document(
        self,
        *,
        url: str,
        status: int,
        response_headers: Headers,
        body: bytes,
        request_headers: Headers = (),
        audit: Mapping[str, Any],
        method: str = "GET",
        protocol: str = "HTTP/1.1",
        fetched_at: datetime | str | None = None,
        ip_address: str | None = None,
        evidence: Mapping[str, bytes] | Callable[[str], bytes | None] | None = None,
    ) -> DocumentRecords:
        """Request, response and metadata records for one collected document.

        ``audit`` is the allow record (``seq``, ``hash``, ``policy_sha256``, ``checks``; the
        item's ``audit_seq``/``audit_hash`` names work too). ``evidence`` gives the bytes of an
        evidence file by SHA-256 (a mapping or a function returning None when not kept); each
        file not yet archived is written before the document's records.
        """
        warcinfo = self.write_warcinfo()
        protocol = _http_version(protocol)
        date = self._date(fetched_at)
        refs = evidence_refs(audit.get("checks") or ())
        evidence_ids: list[str] = []
        for ref in refs:
            rid = self._evidence_for(ref, evidence)
            if rid is not None:
                ref["warc_record_id"] = rid
                evidence_ids.append(rid)
        response_id, request_id, metadata_id = self._new_id(), self._new_id(), self._new_id()
        common = {"WARC-Date": date, "WARC-Warcinfo-ID": warcinfo}

        req_headers = _header_pairs(request_headers)
        parts = urlsplit(url)
        if not any(k.lower() == "host" for k, _ in req_headers):
            req_headers.insert(0, ("Host", parts.netloc))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        http_req = StatusAndHeaders(f"{method} {target} {protocol}", req_headers,
                                    is_http_request=True)
        req = self._writer.create_warc_record(
            url, "request", payload=BytesIO(b""), length=0, http_headers=http_req,
            warc_headers_dict={"WARC-Record-ID": request_id, **common,
                               "WARC-Concurrent-To": response_id})

        resp_extra = {"WARC-IP-Address": ip_address} if ip_address else {}
        http_resp = StatusAndHeaders(_status_line(status),
                                     _stored_response_headers(response_headers, len(body)),
                                     protocol=protocol)
        resp = self._writer.create_warc_record(
            url, "response", payload=BytesIO(body), length=len(body), http_headers=http_resp,
            warc_headers_dict={"WARC-Record-ID": response_id, **common, **resp_extra})

        meta_doc = {
            "role": "document",
            "audit_seq": audit.get("seq", audit.get("audit_seq")),
            "audit_hash": audit.get("hash", audit.get("audit_hash")),
            "policy_sha256": audit.get("policy_sha256", self.policy_sha256),
            "sha256": hashlib.sha256(body).hexdigest(),
            "evidence": refs,
        }
        meta = self._metadata(url, meta_doc, metadata_id, response_id, date)
        for record in (req, resp, meta):
            self._writer.write_record(record)
        return DocumentRecords(request_id, response_id, metadata_id, tuple(evidence_ids))

    # -- evidence ------------------------------------------------------------------------
    def write_evidence(self, *, url: str, sha256: str, body: bytes, status: int | None = 200,
                       signal: str | None = None, channel: str | None = None) -> str | None:
        """Archive one evidence file (a response record, then its metadata note).

        The first copy of these bytes is a ``response`` record, the same bytes at another URL
        a ``revisit`` of it. Returns the record id, or None when this URL's copy of these bytes
        is already in the file.
        """
        warcinfo = self.write_warcinfo()
        if hashlib.sha256(body).hexdigest() != sha256:
            raise ValueError(f"evidence for {url}: body does not match sha256 {sha256} "
                             "(the evidence directory was changed?)")
        if (sha256, url) in self._written:
            return None
        first = self._archived.get(sha256)
        date = self._date()
        rid, meta_id = self._new_id(), self._new_id()
        common = {"WARC-Record-ID": rid, "WARC-Date": date, "WARC-Warcinfo-ID": warcinfo}
        http = StatusAndHeaders(_status_line(status or 200),
                                [("Content-Length", str(len(body)))], protocol="HTTP/1.1")
        note: dict[str, Any] = {
            "role": "evidence", "signal": signal, "channel": channel, "source": url,
            "sha256": sha256, "status": status,
            "note": "evidence file as archived by the crawl (body only): the status line "
                    "comes from the audit record, the HTTP headers were not kept",
        }
        if first is None:
            rec = self._writer.create_warc_record(url, "response", payload=BytesIO(body),
                                                  length=len(body), http_headers=http,
                                                  warc_headers_dict=common)
            digest = rec.rec_headers.get_header("WARC-Payload-Digest")
            self._archived[sha256] = _Archived(rid, url, date, digest)
        else:
            rec = self._writer.create_revisit_record(
                url, first.digest, first.url, first.date, http_headers=http,
                warc_headers_dict={**common, "WARC-Refers-To": first.record_id})
            note["revisit_of"] = first.record_id
        self._written[(sha256, url)] = rid
        meta = self._metadata(url, note, meta_id, rid, date)
        self._writer.write_record(rec)
        self._writer.write_record(meta)
        return rid

    def archived(self, sha256: str) -> bool:
        return sha256 in self._archived

    def _evidence_for(self, ref: dict[str, Any], evidence: Any) -> str | None:
        sha, url, status = ref["source_sha256"], ref.get("source"), ref.get("status")
        if not url or (status is not None and not 200 <= status < 300):
            return None  # only 2xx files are kept (sitecache), and an error body is not one
        if (sha, url) in self._written:
            return self._written[(sha, url)]
        if evidence is None:
            return None
        body = evidence.get(sha) if isinstance(evidence, Mapping) else evidence(sha)
        if body is None:
            return None
        return self.write_evidence(url=url, sha256=sha, body=body, status=status,
                                   signal=ref.get("signal"), channel=ref.get("channel"))

    # -- helpers -------------------------------------------------------------------------
    def _metadata(self, url: str, doc: Mapping[str, Any], rid: str, concurrent_to: str,
                  date: str) -> Any:
        body = (json.dumps(doc, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        return self._writer.create_warc_record(
            url, "metadata", payload=BytesIO(body), length=len(body),
            warc_content_type=METADATA_TYPE,
            warc_headers_dict={"WARC-Record-ID": rid, "WARC-Date": date,
                               "WARC-Warcinfo-ID": self.warcinfo_id or "",
                               "WARC-Concurrent-To": concurrent_to})

    def _date(self, when: datetime | str | None = None) -> str:
        if isinstance(when, str):
            when = _parse_time(when)
        if when is None:
            when = self._clock()
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        return datetime_to_iso_date(when)


def evidence_refs(checks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every evidence file a decision relied on: each distinct (``source_sha256``,
    ``source``) of the audit record's ``checks``, in order, with its signal and status."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str | None]] = set()
    for check in checks:
        sha = check.get("source_sha256")
        if not sha:
            continue
        key = (sha, check.get("source"))
        if key in seen:
            continue
        seen.add(key)
        ref: dict[str, Any] = {"source_sha256": sha, "source": check.get("source"),
                               "signal": check.get("signal")}
        if check.get("channel") is not None:
            ref["channel"] = check["channel"]
        if check.get("status") is not None:
            ref["status"] = check["status"]
        out.append(ref)
    return out


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    """``{name: [values]}`` (str or bytes, a value or a list), or pairs, as ordered pairs."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str]] = []
    for name, values in items:
        if isinstance(values, (str, bytes, bytearray)) or not isinstance(values, Iterable):
            values = [values]
        for value in values:
            out.append((_text(name), _text(value)))
    return out


def _stored_response_headers(headers: Headers, length: int) -> list[tuple[str, str]]:
    """The response headers with framing that no longer describes the stored body renamed."""
    out: list[tuple[str, str]] = []
    fix_length = False
    for name, value in _header_pairs(headers):
        lower = name.lower()
        if lower == "transfer-encoding":
            out.append(("X-Crawler-Transfer-Encoding", value))
            fix_length = True
        elif lower == "content-length" and value.strip() != str(length):
            out.append(("X-Crawler-Content-Length", value))
            fix_length = True
        else:
            out.append((name, value))
    if fix_length and not any(k.lower() == "content-length" for k, _ in out):
        out.append(("Content-Length", str(length)))
    return out


def _http_version(protocol: str | None) -> str:
    """Scrapy's ``response.protocol`` ("HTTP/1.1", "h2", None) as an HTTP-version."""
    if not protocol:
        return "HTTP/1.1"
    if protocol.lower() in ("h2", "http/2", "http/2.0"):
        return "HTTP/2"
    return protocol if protocol.upper().startswith("HTTP/") else "HTTP/1.1"


def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"{status} {reason}".rstrip()


# ---------------------------------------------------------------------------------------
# Scrapy glue


class WarcWriterPipeline:
    """Writes ``<output_dir>/corpus.warc.gz`` (appended to, one gzip member per record).

    Enabled by ``POLITE_WARC = True`` (``output.warc: true`` in a job config); runs before the
    corpus writer (priority 700 < 800) and never changes or drops an item. An item is written
    only when it carries the provenance of an allow decision (``audit_seq``) and the
    :data:`WARC_ITEM_KEY` payload ``{"request_headers", "response_headers", "body"}`` (optional:
    ``method``, ``protocol``, ``ip_address``, ``checks``). The allow record's ``checks`` come
    from ``_warc["checks"]`` when given, else from the ``decision_recorded`` signal.
    """

    def __init__(self, crawler: Crawler) -> None:
        if not crawler.settings.getbool("POLITE_WARC", False):
            raise NotConfigured("POLITE_WARC is off")
        from crawler.runtime import get_runtime
        from crawler.signals import decision_recorded

        runtime = get_runtime(crawler)
        self.crawler = crawler
        self.policy = runtime.policy
        self.job = str(crawler.settings.get("POLITE_JOB", "default"))
        self.output_dir = Path(runtime.output_dir)
        self.path = self.output_dir / str(crawler.settings.get("POLITE_WARC_FILE")
                                          or WARC_FILENAME)
        self.evidence_dir = self.output_dir / "evidence"
        self._fh: IO[bytes] | None = None
        self._writer: CorpusWarcWriter | None = None
        self._allows: OrderedDict[int, Mapping[str, Any]] = OrderedDict()
        crawler.signals.connect(self._on_decision, signal=decision_recorded)
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcWriterPipeline:
        return cls(crawler)

    def _on_decision(self, record: Mapping[str, Any], request: Any = None,
                     **kwargs: Any) -> None:
        if record.get("decision") != "allow":
            return
        self._allows[record["seq"]] = record
        while len(self._allows) > PENDING_ALLOWS:
            self._allows.popitem(last=False)

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
                      "description": "documents collected where no reservation applied; "
                                     "metadata records link each to its audit record"})
        return self._writer

    def _evidence(self, sha256: str) -> bytes | None:
        try:
            return (self.evidence_dir / sha256).read_bytes()
        except OSError:
            return None

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
        self._open().write_document(
            url=data["url"], status=int(data.get("status") or 200),
            response_headers=payload.get("response_headers") or {},
            body=payload["body"], request_headers=payload.get("request_headers") or {},
            audit=audit, method=payload.get("method", "GET"),
            protocol=payload.get("protocol") or "HTTP/1.1",
            fetched_at=data.get("fetched_at"), ip_address=payload.get("ip_address"),
            evidence=self._evidence)
        if self._fh is not None:
            self._fh.flush()
        stats.inc_value("polite/warc/documents")
        return item

    def close(self, spider: Any = None, reason: str = "") -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._writer = None


# ---------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True, slots=True)
class WarcEntry:
    """One record of a WARC, as :func:`iter_warc_documents` yields it.

    ``payload``: for ``request``/``response``/``revisit`` the SHA-256 (hex) of the payload
    (for a document response, the corpus's ``sha256``); for ``metadata`` the parsed JSON (or
    ``{"text": ...}``); for ``warcinfo`` its fields as a dict.
    """

    url: str
    record_type: str
    headers: dict[str, str]            # HTTP headers (request/response/revisit), else {}
    payload: Any
    record_id: str
    concurrent_to: str | None = None
    status: int | None = None          # HTTP status of a response/revisit
    warc_headers: dict[str, str] = field(default_factory=dict)


def iter_warc_documents(path: str | Path, *, types: Iterable[str] | None = None
                        ) -> Iterator[WarcEntry]:
    """Lazily read a (gzipped or plain) WARC, one :class:`WarcEntry` per record.

    ``types`` limits the record types yielded (e.g. ``{"response", "metadata"}``).
    """
    wanted = set(types) if types is not None else None
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            rtype = rec.rec_type
            if wanted is not None and rtype not in wanted:
                continue
            wh = {k: v for k, v in rec.rec_headers.headers}
            http = dict(rec.http_headers.headers) if rec.http_headers else {}
            status = None
            payload: Any
            if rtype in ("request", "response", "revisit"):
                if rtype == "response":
                    status = _int(rec.http_headers.get_statuscode()) if rec.http_headers else None
                    payload = hashlib.sha256(rec.content_stream().read()).hexdigest()
                elif rtype == "revisit":
                    status = _int(rec.http_headers.get_statuscode()) if rec.http_headers else None
                    payload = sha256_hex_from_digest(wh.get("WARC-Payload-Digest"))
                else:
                    payload = hashlib.sha256(rec.content_stream().read()).hexdigest()
            elif rtype == "warcinfo":
                text = rec.content_stream().read().decode("utf-8", "replace")
                payload = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
            else:
                raw = rec.content_stream().read()
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {"text": raw.decode("utf-8", "replace")}
            yield WarcEntry(
                url=wh.get("WARC-Target-URI", ""), record_type=rtype, headers=http,
                payload=payload, record_id=wh.get("WARC-Record-ID", ""),
                concurrent_to=wh.get("WARC-Concurrent-To"), status=status, warc_headers=wh)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
