"""WARC output (the writer): every collected document as received, with its request, and the evidence.

:class:`CorpusWarcWriter` writes over a caller-owned binary file object (nothing is opened or
closed here), with the clock and record ids injectable so that output is byte-exact in tests.
It uses warcio's ``WARCWriter`` (WARC/1.1, one gzip member per record, SHA-256 block and payload
digests in lower-case Base16, as the IIPC's annotated WARC 1.1 recommends for SHA-256, so a
digest reads like the corpus's and the evidence's own SHA-256). Per collected document it
writes three records, in this order:

* ``request``: the method, URL and the headers we sent (``Host`` added when Scrapy left it
  to the downloader), ``WARC-Concurrent-To`` the response;
* ``response``: the status line, the headers and the body **as received**: a compressed body
  stays compressed, with its ``Content-Encoding`` (ContentIntegrityMiddleware keeps it before
  decoding), so ``WARC-Payload-Digest`` is over the bytes the server sent (WARC 1.1 §6.3.2:
  the payload is the entity-body with any transfer-encoding removed). The downloader
  de-chunks bodies and keeps the connection-control headers (``Transfer-Encoding``,
  ``Connection``, ``Keep-Alive``) to itself, so the stored message is framed by
  ``Content-Length``: the one received, or, for a body sent chunked or close-delimited, the
  stored length (listed in the metadata's ``added_headers``); a ``Transfer-Encoding`` header
  some downloader passes on is removed (``removed_headers``). Nothing else is changed. A body
  cut short (download stopped) is marked ``WARC-Truncated: length``;
* ``metadata`` (``application/json``, ``WARC-Concurrent-To`` the response): the allow
  decision's ``audit_seq``, ``audit_hash``, ``policy_sha256``; ``sha256`` (of the decoded
  body: the corpus's ``sha256``) and ``payload_sha256`` (of the stored payload),
  ``content_encoding``, ``added_headers``/``removed_headers``, ``payload`` ("as received",
  or "decoded by the crawler" when the raw body was not available); and every evidence file
  the decision relied on (each ``source_sha256`` of the audit record's ``checks``, with its
  ``source`` URL, ``signal``, ``status`` and the ``warc_record_id`` of its copy in this file).

Evidence (robots.txt, tdmrep.json, ai.txt, RSL licences; any status: a 404 page and the body of
a 503 are cited too) is written when the file is fetched (the :data:`~crawler.crawl.sitecache.
EVIDENCE_KEPT` signal), once per (SHA-256, URL, status) in a file, its payload exactly the
bytes the audit records cite:

* a ``response`` record with the real status, headers and fetch time (from the evidence
  sidecar) when those bytes are the body as received (no content-coding undone, not cut);
* otherwise a ``resource`` record (``Content-Type`` the server's, ``WARC-Truncated: length``
  when cut at ``POLITE_PREFLIGHT_MAXSIZE``) whose block is the cited bytes: its
  ``WARC-Block-Digest`` is their SHA-256 (no ``WARC-Payload-Digest``: a resource's payload is
  its block, WARC 1.1 §6.4.1), the real status and headers in its metadata note;

each followed by a ``metadata`` record (``"role": "evidence"``) naming the file, its status and
the exchange. No ``revisit`` records: every copy carries its own status and headers. Nothing
is made up: where the HTTP exchange is not known (a file another cluster worker fetched), the
record is a ``resource`` and the note says so. The HTTP reason phrase is the standard one for
the status code (Scrapy does not keep the one received).

The reader (tests, revalidation, ``audit verify``) is :mod:`crawler.corpus.warc_reader`.
Neither needs Scrapy: the crawl's glue is :class:`crawler.crawl.warc.WarcWriterPipeline`
(``POLITE_WARC = True``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from io import BytesIO
from typing import IO, Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

from crawler import __version__

WARC_FILENAME = "corpus.warc.gz"
WARC_VERSION = "WARC/1.1"
METADATA_TYPE = "application/json"
SOFTWARE = f"polite-crawler/{__version__}"
#: Content-Type of a resource record whose server sent none (RFC 9110 §8.3: a recipient may
#: treat such content as application/octet-stream)
UNKNOWN_TYPE = "application/octet-stream"

Headers = Mapping[Any, Any] | Iterable[tuple[Any, Any]]
Evidence = Mapping[str, bytes] | Callable[[str], bytes | None] | None
Captures = Callable[[str, str, int | None], Mapping[str, Any] | None] | None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def uuid_record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


class _HexDigester(Digester):
    """warcio's digester, written ``sha256:<lower-case hex>`` (Base16) instead of Base32."""

    def __str__(self) -> str:
        return f"{self.type_}:{self.digester.hexdigest()}"


class _Sha256WARCWriter(WARCWriter):
    """warcio's writer with SHA-256 digests in Base16, and no ``WARC-Payload-Digest`` where
    WARC 1.1 defines no payload (warcinfo, metadata) or the block is the payload (resource)."""

    NO_PAYLOAD_DIGEST_TYPES = ("warcinfo", "revisit", "metadata", "resource")

    @staticmethod
    def _create_digester() -> Digester:
        return _HexDigester("sha256")


@dataclass(frozen=True, slots=True)
class DocumentRecords:
    """The record ids written for one document."""

    request_id: str
    response_id: str
    metadata_id: str
    evidence_ids: tuple[str, ...] = ()


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
        self._archived: set[str] = set()                 # evidence sha256s in this file
        #: (sha256, source URL, HTTP status) -> record id
        self._written: dict[tuple[str, str, int | None], str] = {}

    # -- warcinfo ------------------------------------------------------------------------
    def write_warcinfo(self) -> str:
        """The warcinfo record (once): software, job, user agent, policy hash."""
        if self.warcinfo_id is not None:
            return self.warcinfo_id
        fields: dict[str, str] = {
            "software": self.software,
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
                          "warc-format/warc-1.1/",
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
        content_sha256: str | None = None,
        as_received: bool = True,
        complete: bool = True,
        evidence: Evidence = None,
        captures: Captures = None,
    ) -> DocumentRecords:
        """Request, response and metadata records for one collected document.

        ``body`` and ``response_headers`` are the response as received (a compressed body
        still compressed, its ``Content-Encoding`` among the headers); ``content_sha256`` the
        SHA-256 of the decoded body (the corpus's ``sha256``; default: of ``body``);
        ``as_received`` False when only the decoded body was available (the metadata says
        so); ``complete`` False for a body cut short (``WARC-Truncated: length``).

        ``audit`` is the allow record (``seq``, ``hash``, ``policy_sha256``, ``checks``; the
        item's ``audit_seq``/``audit_hash`` names work too). Evidence files are normally in the
        file already (written when fetched); one that is not is written first, its bytes from
        ``evidence`` (by SHA-256: a mapping, or a function returning None when not kept) and
        its HTTP exchange from ``captures(sha256, url, status)``.
        """
        warcinfo = self.write_warcinfo()
        protocol = _http_version(protocol)
        date = self._date(fetched_at)
        refs = evidence_refs(audit.get("checks") or ())
        evidence_ids: list[str] = []
        for ref in refs:
            rid = self._evidence_for(ref, evidence, captures)
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

        resp_extra: dict[str, str] = {}
        if ip_address:
            resp_extra["WARC-IP-Address"] = ip_address
        if not complete:
            resp_extra["WARC-Truncated"] = "length"
        stored, removed, added = stored_response_headers(response_headers, len(body),
                                                         complete=complete)
        http_resp = StatusAndHeaders(_status_line(status), stored, protocol=protocol)
        resp = self._writer.create_warc_record(
            url, "response", payload=BytesIO(body), length=len(body), http_headers=http_resp,
            warc_headers_dict={"WARC-Record-ID": response_id, **common, **resp_extra})

        payload_sha = hashlib.sha256(body).hexdigest()
        meta_doc: dict[str, Any] = {
            "role": "document",
            "audit_seq": audit.get("seq", audit.get("audit_seq")),
            "audit_hash": audit.get("hash", audit.get("audit_hash")),
            "policy_sha256": audit.get("policy_sha256", self.policy_sha256),
            "sha256": content_sha256 or payload_sha,
            "payload_sha256": payload_sha,
            "payload": "as received" if as_received else
                       "decoded by the crawler (the body as received was not available)",
            "evidence": refs,
        }
        coding = ", ".join(v for k, v in stored if k.lower() == "content-encoding")
        if coding:
            meta_doc["content_encoding"] = coding
        if removed:
            meta_doc["removed_headers"] = [list(h) for h in removed]
        if added:
            meta_doc["added_headers"] = [list(h) for h in added]
        meta = self._metadata(url, meta_doc, metadata_id, response_id, date)
        for record in (req, resp, meta):
            self._writer.write_record(record)
        return DocumentRecords(request_id, response_id, metadata_id, tuple(evidence_ids))

    # -- evidence ------------------------------------------------------------------------
    def write_evidence(self, *, url: str, sha256: str, body: bytes,
                       status: int | None = None, capture: Mapping[str, Any] | None = None,
                       kind: str | None = None, final_url: str | None = None,
                       complete: bool | None = None, signal: str | None = None,
                       channel: str | None = None) -> str | None:
        """Archive one evidence file (a ``response`` or ``resource`` record, then its note).

        ``url`` is the URL the audit records cite (``source``), ``body`` the bytes whose
        SHA-256 they cite, ``capture`` the HTTP exchange from the evidence sidecar (None when
        unknown; its status wins over ``status``). Returns the record id, or None when these
        bytes from this URL with this status are already in the file. Raises ValueError when
        ``body`` does not hash to ``sha256``.
        """
        warcinfo = self.write_warcinfo()
        if hashlib.sha256(body).hexdigest() != sha256:
            raise ValueError(f"evidence for {url}: body does not match sha256 {sha256} "
                             "(the evidence directory was changed?)")
        cap = dict(capture) if isinstance(capture, Mapping) else {}
        headers = _capture_headers(cap.get("headers")) if cap else None
        if isinstance(cap.get("status"), int):
            status = cap["status"]
        if (sha256, url, status) in self._written:
            return None
        if complete is None:
            complete = cap.get("complete") is not False
        target = str(cap.get("final_url") or final_url or url)
        date = self._date(cap.get("fetched_at") if isinstance(cap.get("fetched_at"), str)
                          else None)
        rid, meta_id = self._new_id(), self._new_id()
        warc_headers = {"WARC-Record-ID": rid, "WARC-Date": date, "WARC-Warcinfo-ID": warcinfo}
        ip = cap.get("ip_address")
        if isinstance(ip, str) and ip:
            warc_headers["WARC-IP-Address"] = ip
        note: dict[str, Any] = {
            "role": "evidence", "kind": kind or cap.get("kind"), "source": url,
            "sha256": sha256, "bytes": len(body), "status": status, "complete": complete,
        }
        if target != url:
            note["final_url"] = target
        if signal is not None:
            note["signal"] = signal
        if channel is not None:
            note["channel"] = channel
        if cap.get("fetched_at"):
            note["fetched_at"] = cap["fetched_at"]
        if (headers is not None and isinstance(status, int) and cap.get("decoded") is False
                and complete):
            # the cited bytes are the body as received: the exchange itself
            stored, removed, added = stored_response_headers(headers, len(body))
            http = StatusAndHeaders(_status_line(status), stored,
                                    protocol=_http_version(cap.get("protocol")))
            rec = self._writer.create_warc_record(
                target, "response", payload=BytesIO(body), length=len(body),
                http_headers=http, warc_headers_dict=warc_headers)
            note["record"] = "response"
            if removed:
                note["removed_headers"] = [list(h) for h in removed]
            if added:
                note["added_headers"] = [list(h) for h in added]
        else:
            if not complete:
                warc_headers["WARC-Truncated"] = "length"
            ctype = next((v for k, v in headers or () if k.lower() == "content-type"), None)
            rec = self._writer.create_warc_record(
                target, "resource", payload=BytesIO(body), length=len(body),
                warc_content_type=(ctype or "").strip() or UNKNOWN_TYPE,
                warc_headers_dict=warc_headers)
            note["record"] = "resource"
            note["headers"] = [list(h) for h in headers] if headers is not None else None
            note["decoded"] = cap.get("decoded")
            note["note"] = _resource_note(cap, headers, complete)
        self._written[(sha256, url, status)] = rid
        self._archived.add(sha256)
        meta = self._metadata(target, note, meta_id, rid, date)
        self._writer.write_record(rec)
        self._writer.write_record(meta)
        return rid

    def archived(self, sha256: str) -> bool:
        return sha256 in self._archived

    def record_for(self, sha256: str, url: str, status: int | None) -> str | None:
        """The record id of ``url``'s copy of ``sha256`` with ``status`` in this file."""
        return self._written.get((sha256, url, status))

    def _evidence_for(self, ref: dict[str, Any], evidence: Evidence,
                      captures: Captures) -> str | None:
        sha, url, status = ref["source_sha256"], ref.get("source"), ref.get("status")
        if not url:
            return None
        if (sha, url, status) in self._written:
            return self._written[(sha, url, status)]
        if evidence is None:
            return None
        body = evidence.get(sha) if isinstance(evidence, Mapping) else evidence(sha)
        if body is None:
            return None
        capture = captures(sha, url, status) if captures is not None else None
        return self.write_evidence(url=url, sha256=sha, body=body, status=status,
                                   capture=capture, signal=ref.get("signal"),
                                   channel=ref.get("channel"))

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
        return datetime_to_iso_date(when, use_micros=True)


def _resource_note(cap: Mapping[str, Any], headers: list[tuple[str, str]] | None,
                   complete: bool) -> str:
    why = []
    if headers is None:
        why.append("the HTTP exchange was not recorded with this file (fetched by another "
                   "cluster worker, or before evidence sidecars were kept): status from the "
                   "audit record, WARC-Date when it was archived")
    elif cap.get("decoded"):
        coding = ", ".join(v for k, v in headers if k.lower() == "content-encoding")
        why.append(f"the body after undoing its content-coding ({coding}), the bytes the "
                   "audit records cite; status and headers as received are above")
    elif cap.get("decoded") is None:
        why.append("not known to be the body as received")
    if not complete:
        why.append("cut at the per-origin size cap (POLITE_PREFLIGHT_MAXSIZE): the bytes "
                   "that were read and hashed")
    return "payload: " + "; ".join(why or ["the cited bytes"])


def _capture_headers(value: Any) -> list[tuple[str, str]] | None:
    """The sidecar's ``headers`` (``[[name, value], ...]``) as pairs; None when malformed."""
    if not isinstance(value, list):
        return None
    out: list[tuple[str, str]] = []
    for item in value:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not all(isinstance(x, str) for x in item)):
            return None
        out.append((item[0], item[1]))
    return out


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


def stored_response_headers(headers: Headers, length: int, *, complete: bool = True
                            ) -> tuple[list[tuple[str, str]], list[tuple[str, str]],
                                       list[tuple[str, str]]]:
    """(headers to store, headers removed, headers added) for a stored payload of ``length``
    bytes: the entity-body as received, de-chunked by the downloader.

    Scrapy's HTTP/1.1 downloader (Twisted) keeps the connection-control headers to itself
    (``Transfer-Encoding``, ``Connection``, ``Keep-Alive``, ...) and reports ``Content-Length``
    from the message framing, so a chunked or close-delimited body arrives without either.
    The stored message must describe the stored bytes: a ``Transfer-Encoding`` header (other
    downloaders may pass it on) is removed with any ``Content-Length`` sent beside it (RFC
    9112 §6.3: ignored then), and a complete payload without ``Content-Length`` gets one, its
    stored length. Every other header is kept as received, in the order reported.
    """
    pairs = _header_pairs(headers)
    removed = [(k, v) for k, v in pairs if k.lower() == "transfer-encoding"]
    if removed:
        removed = [(k, v) for k, v in pairs if k.lower() in ("transfer-encoding",
                                                              "content-length")]
        pairs = [(k, v) for k, v in pairs if k.lower() not in ("transfer-encoding",
                                                              "content-length")]
    added: list[tuple[str, str]] = []
    if complete and not any(k.lower() == "content-length" for k, _ in pairs):
        added.append(("Content-Length", str(length)))
    return pairs + added, removed, added


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
