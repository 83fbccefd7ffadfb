"""WARC input: a lazy reader of the WARC files :mod:`crawler.corpus.warc` writes.

:func:`iter_warc_documents` yields one :class:`WarcEntry` per record (its payload's SHA-256 as
stored, a metadata record's JSON, a warcinfo's fields), for tests, revalidation and ``audit
verify``; :func:`sha256_hex_from_digest` reads a WARC digest (``sha256:`` in Base16 or Base32)
as hex. No Scrapy: it reads a local file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator


def sha256_hex_from_digest(value: str | None) -> str | None:
    """``sha256:HEX`` or ``sha256:BASE32`` (a WARC digest) as lower-case hex; None for other
    algorithms or a value that is neither."""
    if not value or not value.lower().startswith("sha256:"):
        return None
    raw = value.split(":", 1)[1].strip()
    try:
        if len(raw) == 64:
            return bytes.fromhex(raw).hex()
        return base64.b32decode(raw.upper()).hex()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class WarcEntry:
    """One record of a WARC, as :func:`iter_warc_documents` yields it.

    ``payload``: for ``request``/``response``/``resource`` the SHA-256 (hex) of the payload as
    stored (for a document response, the bytes as received: still compressed when they were;
    the decoded body's SHA-256 is the metadata's ``sha256``; for an evidence record, the
    SHA-256 the audit records cite); for ``revisit`` its ``WARC-Payload-Digest`` as hex; for
    ``metadata`` the parsed JSON (or ``{"text": ...}``); for ``warcinfo`` its fields.
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
            if rtype in ("response", "revisit") and rec.http_headers:
                status = _int(rec.http_headers.get_statuscode())
            if rtype in ("request", "response", "resource"):
                payload = _sha256_of(rec.raw_stream)   # as stored: no content-coding undone
            elif rtype == "revisit":
                payload = sha256_hex_from_digest(wh.get("WARC-Payload-Digest"))
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


def _sha256_of(stream: Any) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 16), b""):
        h.update(block)
    return h.hexdigest()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
