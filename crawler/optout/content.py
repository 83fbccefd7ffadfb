"""Strict decoding of fetched bodies: content-codings and byte order marks (sans-IO).

A reservation can only be read from bytes that were received and decoded completely. Scrapy's
``HttpCompressionMiddleware`` is deliberately lenient -- a cut or corrupt gzip, deflate, brotli
or zstd stream yields "as much data as possible" and an unknown coding is passed through
undecoded -- which is right for a scraper and wrong for a compliance check: a robots.txt whose
compressed stream was cut inside ``Allow: /public/page.html`` inflates to a shorter file ending
in ``Allow: /``, which then allows the whole site.

:func:`decode_content` therefore decodes every coding of ``Content-Encoding`` (RFC 9110 §8.4:
listed in the order applied, so undone last to first) and says exactly what it got:

* ``complete``: the whole representation was received and every stream ended where its format
  says it ends (gzip trailer with a matching CRC-32 and length, the end of a zlib/deflate
  stream, brotli's last meta-block, every zstd frame);
* ``error``: the body cannot be decoded at all -- an unknown or unsupported coding, a corrupt
  stream, a stream that stops short although the transfer was complete. The caller treats the
  resource as unreadable (fail closed), never as empty;
* a body cut by the caller (``received_all=False``, e.g. a download stopped at a size cap) is
  decoded as far as it goes: ``body`` is a prefix, ``complete`` is False;
* ``max_size`` bounds the decoded size (a decompression bomb is cut there, ``complete`` False).

:func:`utf8_from_bom` turns a body that starts with a UTF-16 or UTF-32 byte order mark into
UTF-8 (robots.txt, ai.txt and tdmrep.json are UTF-8 by their specs; some servers write them in
UTF-16 all the same), so that the text is read rather than parsed as garbage.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DecodedBody", "SUPPORTED_CODINGS", "decode_content", "parse_codings",
           "utf8_from_bom"]

SUPPORTED_CODINGS = ("gzip", "x-gzip", "deflate", "br", "zstd")
_IDENTITY = {"", "identity"}
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class DecodedBody:
    body: bytes                 # the decoded bytes (a prefix when not complete)
    complete: bool              # every byte received and every stream ended cleanly
    error: str | None = None    # the body cannot be decoded: treat it as unreadable
    problems: tuple[str, ...] = ()
    codings: tuple[str, ...] = ()   # the codings that were undone, in the order applied
    over_limit: bool = False    # the decoded body was longer than ``max_size`` (cut there)

    @property
    def ok(self) -> bool:
        return self.error is None


class _Undecodable(Exception):
    pass


class _Truncated(Exception):
    """The input ended before the stream did (the output so far is in ``args[0]``)."""


def parse_codings(values: Sequence[bytes | str]) -> list[str]:
    """The content-codings of one or more ``Content-Encoding`` field values, in order applied
    (lower-cased; ``identity`` and empty members dropped)."""
    out: list[str] = []
    for value in values:
        text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
        out += [c.strip().lower() for c in text.split(",")
                if c.strip().lower() not in _IDENTITY]
    return out


def decode_content(raw: bytes, content_encoding: Sequence[bytes | str] = (), *,
                   received_all: bool = True, max_size: int = 0) -> DecodedBody:
    """Undo ``content_encoding`` on ``raw`` strictly; never raises for bytes input.

    ``received_all``: False when the transfer was stopped early (only a prefix of the encoded
    body is in ``raw``). ``max_size`` (0 = no limit) bounds every decoded stage.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
    data = bytes(raw)
    codings = parse_codings(content_encoding)
    problems: list[str] = []
    complete = received_all
    over = False
    if not received_all:
        problems.append(f"transfer stopped after {len(data)} bytes: only a prefix was read")
    for coding in reversed(codings):
        if coding not in SUPPORTED_CODINGS:
            return DecodedBody(b"", False, f"unknown content-coding {coding!r}: body not "
                               "decodable", tuple(problems), tuple(codings))
        try:
            data, cut = _decode_one(data, coding, max_size)
        except _Truncated as exc:
            if complete:  # the server said it was done, the stream says it was not
                return DecodedBody(b"", False, f"{coding} stream ends before its end marker "
                                   "(corrupt or truncated by the server)", tuple(problems),
                                   tuple(codings))
            data, cut = exc.args[0], False
        except _Undecodable as exc:
            return DecodedBody(b"", False, f"corrupt {coding} stream ({exc})",
                               tuple(problems), tuple(codings))
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not look like a body
            return DecodedBody(b"", False, f"{coding} decoding failed ({type(exc).__name__}: "
                               f"{exc})", tuple(problems), tuple(codings))
        if cut:
            complete, over = False, True
            problems.append(f"decoded {coding} body over the {max_size}-byte limit: cut there")
    if max_size and len(data) > max_size:
        data = data[:max_size]
        complete, over = False, True
        problems.append(f"body over the {max_size}-byte limit: cut there")
    return DecodedBody(data, complete, None, tuple(problems), tuple(codings), over)


def _decode_one(data: bytes, coding: str, max_size: int) -> tuple[bytes, bool]:
    """``(decoded, cut_at_max_size)``; raises _Truncated / _Undecodable."""
    if coding in ("gzip", "x-gzip"):
        return _zlib_members(data, 16 + zlib.MAX_WBITS, max_size, "gzip")
    if coding == "deflate":
        # RFC 9110 §8.4.1.2: "deflate" is a zlib stream; some servers send raw deflate.
        if len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0:
            return _zlib_members(data, zlib.MAX_WBITS, max_size, "deflate", single=True)
        return _zlib_members(data, -zlib.MAX_WBITS, max_size, "deflate", single=True)
    if coding == "br":
        return _brotli(data, max_size)
    if coding == "zstd":
        return _zstd(data, max_size)
    raise _Undecodable(f"unsupported coding {coding}")  # pragma: no cover


class _Sink:
    def __init__(self, max_size: int) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.max_size = max_size

    def add(self, chunk: bytes) -> bool:
        """Append; True when the limit was reached (the output is cut at it)."""
        if self.max_size and self.size + len(chunk) > self.max_size:
            self.parts.append(chunk[: self.max_size - self.size])
            self.size = self.max_size
            return True
        self.parts.append(chunk)
        self.size += len(chunk)
        return False

    def value(self) -> bytes:
        return b"".join(self.parts)


def _zlib_members(data: bytes, wbits: int, max_size: int, name: str, *,
                  single: bool = False) -> tuple[bytes, bool]:
    sink = _Sink(max_size)
    rest = data
    if not rest:
        raise _Truncated(b"")
    while True:
        d = zlib.decompressobj(wbits)
        buf = rest
        try:
            while True:
                chunk = d.decompress(buf, _CHUNK)
                if sink.add(chunk):
                    return sink.value(), True
                buf = d.unconsumed_tail
                if d.eof or not buf:
                    break
            if not d.eof:
                tail = d.flush()
                if sink.add(tail):
                    return sink.value(), True
        except zlib.error as exc:
            raise _Undecodable(str(exc)) from None
        if not d.eof:
            raise _Truncated(sink.value())
        rest = d.unused_data
        if single or not rest.strip(b"\x00"):
            if rest.strip(b"\x00"):
                raise _Undecodable(f"{len(rest)} bytes after the end of the {name} stream")
            return sink.value(), False
        if rest[:2] != b"\x1f\x8b":
            raise _Undecodable(f"{len(rest)} bytes of garbage after the {name} stream")


def _brotli(data: bytes, max_size: int) -> tuple[bytes, bool]:
    try:
        import brotli
    except ImportError:  # pragma: no cover - Scrapy depends on brotli or brotlicffi
        try:
            import brotlicffi as brotli  # type: ignore[no-redef]
        except ImportError:
            raise _Undecodable("no brotli decoder installed") from None
    sink = _Sink(max_size)
    d = brotli.Decompressor()
    try:
        chunk = d.process(data, output_buffer_limit=_CHUNK)
        while True:
            if sink.add(chunk):
                return sink.value(), True
            if d.is_finished():
                break
            chunk = d.process(b"", output_buffer_limit=_CHUNK)
            if not chunk:
                break
    except TypeError:  # an older brotli without output_buffer_limit
        chunk = d.process(data)
        if sink.add(chunk):
            return sink.value(), True
    except brotli.error as exc:
        raise _Undecodable(str(exc)) from None
    if not d.is_finished():
        raise _Truncated(sink.value())
    return sink.value(), False


def _zstd(data: bytes, max_size: int) -> tuple[bytes, bool]:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
    except ImportError:
        try:
            from backports import zstd  # type: ignore[no-redef]
        except ImportError:  # pragma: no cover - Scrapy depends on backports.zstd
            raise _Undecodable("no zstd decoder installed") from None
    sink = _Sink(max_size)
    rest = data
    if not rest:
        raise _Truncated(b"")
    while True:
        d = zstd.ZstdDecompressor()
        buf = rest
        try:
            while True:
                chunk = d.decompress(buf, _CHUNK)
                if sink.add(chunk):
                    return sink.value(), True
                buf = b""
                if d.eof or (d.needs_input and not chunk):
                    break
        except zstd.ZstdError as exc:
            raise _Undecodable(str(exc)) from None
        if not d.eof:
            raise _Truncated(sink.value())
        rest = d.unused_data
        if not rest:
            return sink.value(), False


_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32BE"),
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32LE"),
    (b"\xfe\xff", "utf-16-be", "UTF-16BE"),
    (b"\xff\xfe", "utf-16-le", "UTF-16LE"),
)


def utf8_from_bom(body: bytes) -> tuple[bytes, str | None]:
    """``body`` as UTF-8 when it starts with a UTF-16 or UTF-32 byte order mark.

    Returns ``(bytes, problem)``; ``problem`` is None when nothing was converted. Bytes that are
    not valid in the declared encoding become U+FFFD (the problem says so). A UTF-8 BOM is left
    for the parsers, which skip it.
    """
    for bom, codec, label in _BOMS:
        if body.startswith(bom):
            payload = body[len(bom):]
            try:
                text = payload.decode(codec)
                note = ""
            except UnicodeDecodeError:
                text = payload.decode(codec, "replace")
                note = "; invalid sequences replaced"
            return text.encode("utf-8"), f"file is {label} (byte order mark); read as " \
                f"{label} and converted to UTF-8{note}"
    return body, None
