"""XMP packets: where each container keeps them, and a safe reading of their RDF.

Sans-IO: :func:`find_xmp` takes a file's bytes and its container kind (:func:`container_of`)
and returns an :class:`XmpScan` -- the packets found, each with the block it came from -- and
whether every place a packet may live was read (``complete``).  :func:`parse_xmp` turns one
packet into :class:`XmpProperty` values (namespace URI, local name, every string value with
its RDF path).  Nothing here raises on remote bytes; every structural failure is a problem
string, and a failure that could hide a packet makes the scan incomplete.

Where XMP lives (XMP Specification Part 3, "Storage in files", Adobe, and the container
specs it cites; section numbers are not quoted here because they moved between editions):

* JPEG -- an APP1 segment whose payload starts ``http://ns.adobe.com/xap/1.0/\\0`` (the main
  packet, at most 65,502 bytes) and, when the main packet names an
  ``xmpNote:HasExtendedXMP`` GUID, APP1 segments starting ``http://ns.adobe.com/xmp/extension/\\0``
  + 32-byte GUID + 4-byte full length + 4-byte offset + a portion (portions in any order).
  Adobe's XMP Toolkit "Quit[s] reading at the first SOS marker or at EOI"
  (XMPFiles/source/FileHandlers/JPEG_Handler.cpp, ``CacheFileData``); so does this reader:
  bytes after the first SOS are never read (a file cut in the scan data is harmless), a file
  cut before it is incomplete.
* PNG -- an ``iTXt`` chunk with keyword ``XML:com.adobe.xmp`` (Part 3: uncompressed; a
  compressed one is read too), and -- not in the spec, written by some tools -- ``tEXt`` /
  ``zTXt`` chunks with that keyword and ImageMagick's ``Raw profile type xmp`` (hex).  Text
  chunks may follow the image data (PNG 3rd ed. §5.6), so every chunk up to IEND is walked
  (headers only: 8 bytes per chunk); a file cut before IEND is incomplete.
* WebP -- the RIFF ``XMP `` chunk (WebP container spec, "Extended file format"); a cut RIFF
  is incomplete (the XMP chunk comes last).
* GIF -- an application extension ``XMP DataXMP`` whose data is the raw packet followed by
  the 258-byte "magic trailer" (Part 3, GIF); blocks are walked to the trailer (0x3B);
  a cut file is incomplete (the extension may follow the image data).
* TIFF (and TIFF-based raw formats) -- tag 700 ``XMLPacket`` (BYTE or UNDEFINED) in IFD0
  (Part 3); every IFD of the chain is read, both byte orders; BigTIFF is not read
  (incomplete).  An IFD we are pointed to but cannot read makes the scan incomplete.
* PDF -- the ``/Metadata`` stream of the document catalog (ISO 32000-1 §14.3.2), reached
  through the cross-reference data named by the last ``startxref`` (incremental updates: the
  newest section wins, ``/Prev`` chains, ``/XRefStm`` of hybrid files, object streams);
  unfiltered or ``/FlateDecode`` (other filters, encrypted metadata: incomplete).  No
  ``startxref`` in the last 4096 bytes, or objects after it (an update without its trailer),
  means the file is cut: incomplete.  When the ``startxref`` is there but the cross-reference
  data cannot be read, objects are recovered by scanning for ``N G obj`` -- unless the file
  has object streams, or the trailers name different catalogs, or the catalog or metadata
  object has versions with different contents: then which one is current cannot be known
  (incomplete).  A file cut exactly at the end of an earlier revision *is* that earlier
  revision; only the transport (Content-Length, strict decoding) can tell it was cut.
  Component metadata (pages, images) is not read: it describes the component, not the file.
* Anything else that is not text (video, PostScript, PSD, unknown binaries): the packet
  wrapper scan of Part 1 ("XMP packet wrapper": scanning for packets in files whose format
  is unknown), which is
  the only place a ``<?xpacket`` found outside a known block counts.  A packet without its
  end wrapper, a UTF-16/32 wrapper, or ``x:xmpmeta``/``rdf:RDF`` without any wrapper is
  incomplete; so is a compressed archive (ZIP, gzip, 7z, xz, bzip2, zstd, RAR), whose
  members' metadata a byte scan cannot see.  Text (``text/*``, XML, JSON, unlabelled text)
  is not scanned: an article quoting a packet states nothing about itself.

The RDF is parsed with lxml with entity resolution, DTD loading and network access off; a
packet with a DOCTYPE, over :data:`XMP_PACKET_LIMIT`, or that does not parse is a problem and
makes the reading undetermined (never "no reservation").
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

__all__ = [
    "XMP_PACKET_LIMIT",
    "XMP_TOTAL_LIMIT",
    "XmpPacket",
    "XmpProperty",
    "XmpDocument",
    "XmpScan",
    "container_of",
    "find_xmp",
    "parse_xmp",
]

#: Largest single XMP packet parsed (a larger one is undetermined, not "no reservation").
XMP_PACKET_LIMIT = 1 << 20
#: Largest sum of packet bytes (Extended XMP included) and of inflated bytes read per file.
XMP_TOTAL_LIMIT = 4 << 20
#: Most IFDs / PDF cross-reference sections / objects followed before giving up.
CHAIN_LIMIT = 64

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_NOTE = "http://ns.adobe.com/xmp/note/"
JPEG_XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
PNG_IM_KEYWORD = b"Raw profile type xmp"
GIF_XMP_APP = b"XMP DataXMP"
GIF_MAGIC_TRAILER = b"\x01" + bytes(range(0xFF, -1, -1)) + b"\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CONTAINERS = ("jpeg", "png", "webp", "gif", "tiff", "pdf", "epub", "scan", "none")


@dataclass(frozen=True, slots=True)
class XmpPacket:
    """One XMP packet and where it was found (``block``: "JPEG APP1 at byte 2")."""

    block: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class XmpScan:
    """Every packet of a file, and whether every place one may live was read."""

    container: str
    packets: tuple[XmpPacket, ...]
    complete: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class XmpProperty:
    """One top-level XMP property: ``values`` are (string, RDF path) pairs, in document order."""

    namespace: str
    name: str
    prefix: str | None
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class XmpDocument:
    """A parsed packet: ``ok`` is False when it could not be read (see ``problems``)."""

    ok: bool
    properties: tuple[XmpProperty, ...] = ()
    problems: tuple[str, ...] = ()

    def get(self, namespaces: frozenset[str] | set[str], name: str) -> list[XmpProperty]:
        return [p for p in self.properties if p.namespace in namespaces and p.name == name]


# ------------------------------------------------------------------------------------ kinds

def container_of(body: bytes, content_type: str | None) -> str:
    """The container kind, from the magic bytes first and the label second.

    ``scan`` = an unknown non-text format (the packet-wrapper scan applies), ``none`` = a type
    that carries no XMP we read (text, HTML, JSON ...).
    """
    head = body[:16]
    if 0 < len(body) < 16:
        # A prefix too short to carry its whole signature (a cut file): still that container.
        for sig, kind in ((b"\xff\xd8\xff", "jpeg"), (PNG_SIGNATURE, "png"), (b"RIFF", "webp"),
                          (b"GIF8", "gif"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
                          (b"%PDF-", "pdf"), (b"PK\x03\x04", "epub")):
            if sig.startswith(body) or body.startswith(sig):
                return kind
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if b"%PDF-" in body[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04") and body[30:58] == b"mimetypeapplication/epub+zip":
        return "epub"
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/epub+zip" and head.startswith(b"PK"):
        return "epub"
    if mime.startswith("text/") or mime.endswith(("+xml", "/xml", "json", "+json")) or \
            mime in ("application/xhtml+xml", "application/javascript"):
        return "none"
    if not mime:
        # Unlabelled and not one of ours: text-looking bodies are for the HTML/text readers.
        sample = body[:1024]
        if sample and not re.search(rb"[\x00-\x08\x0e-\x1f]", sample):
            return "none"
    return "scan"


def find_xmp(body: bytes, container: str) -> XmpScan:
    """Every XMP packet of ``body`` read as ``container`` (one of :data:`CONTAINERS`)."""
    reader = _READERS.get(container)
    if reader is None:
        return XmpScan(container, (), True)
    state = _State()
    try:
        reader(body, state)
    except _Incomplete as exc:
        state.fail(str(exc))
    except (struct.error, IndexError, ValueError, zlib.error) as exc:  # defensive
        state.fail(f"{container}: unreadable structure ({type(exc).__name__}: {exc})")
    return XmpScan(container, tuple(state.packets), state.complete, tuple(state.problems))


class _Incomplete(Exception):
    """A place a packet may live could not be read."""


class _State:
    def __init__(self) -> None:
        self.packets: list[XmpPacket] = []
        self.problems: list[str] = []
        self.complete = True
        self.total = 0

    def fail(self, problem: str) -> None:
        self.complete = False
        self.problems.append(problem)

    def add(self, block: str, data: bytes) -> None:
        self.total += len(data)
        if self.total > XMP_TOTAL_LIMIT:
            raise _Incomplete(f"{block}: XMP data over {XMP_TOTAL_LIMIT} bytes in one file: "
                              "not read (undetermined)")
        self.packets.append(XmpPacket(block, data))


def _inflate(data: bytes, what: str, limit: int = XMP_PACKET_LIMIT) -> bytes:
    """zlib-inflate at most ``limit`` bytes; over it, corrupt or cut = _Incomplete."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _Incomplete(f"{what}: corrupt zlib stream ({exc})") from None
    if len(out) > limit:
        raise _Incomplete(f"{what}: inflates to more than {limit} bytes: not read "
                          "(undetermined)")
    if not d.eof:
        raise _Incomplete(f"{what}: zlib stream cut (no end marker)")
    return out


# ------------------------------------------------------------------------------------- JPEG

def _read_jpeg(body: bytes, st: _State) -> None:
    pos, n = 2, len(body)
    extended: dict[bytes, tuple[int, dict[int, bytes]]] = {}
    main_seen = False
    while True:
        # Fill bytes (0xFF) may precede a marker (ITU T.81 B.1.1.2).
        while pos < n and body[pos] == 0xFF and pos + 1 < n and body[pos + 1] == 0xFF:
            pos += 1
        if pos + 2 > n:
            raise _Incomplete(f"JPEG: file ends at byte {n} before the image data (SOS): "
                              "metadata segments may be missing")
        if body[pos] != 0xFF:
            raise _Incomplete(f"JPEG: no marker at byte {pos} (corrupt segment structure)")
        marker = body[pos + 1]
        if marker == 0xD9:           # EOI before any scan: nothing more
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if pos + 4 > n:
            raise _Incomplete(f"JPEG: segment header cut at byte {pos}")
        (length,) = struct.unpack_from(">H", body, pos + 2)
        if length < 2:
            raise _Incomplete(f"JPEG: segment length {length} at byte {pos} is invalid")
        end = pos + 2 + length
        if end > n:
            raise _Incomplete(f"JPEG: segment 0xFF{marker:02X} at byte {pos} declares "
                              f"{length} bytes, file ends at {n} (cut)")
        if marker == 0xDA:           # SOS: XMP Part 3 / the XMP Toolkit stop here.
            break
        if marker == 0xE1:
            payload = body[pos + 4:end]
            if payload.startswith(JPEG_XMP_SIG):
                block = f"JPEG APP1 at byte {pos}"
                if main_seen:
                    st.problems.append(f"{block}: a second main XMP segment (read as well)")
                main_seen = True
                st.add(block, payload[len(JPEG_XMP_SIG):])
            elif payload.startswith(JPEG_EXT_SIG):
                rest = payload[len(JPEG_EXT_SIG):]
                if len(rest) < 40:
                    st.problems.append(f"JPEG APP1 at byte {pos}: Extended XMP header cut")
                else:
                    guid = rest[:32]
                    full, offset = struct.unpack_from(">II", rest, 32)
                    total, parts = extended.setdefault(guid, (full, {}))
                    parts[offset] = rest[40:]
        pos = end
    _jpeg_extended(st, extended)


def _jpeg_extended(st: _State, extended: dict[bytes, tuple[int, dict[int, bytes]]]) -> None:
    """Join the Extended XMP named by the main packet's ``xmpNote:HasExtendedXMP``."""
    wanted: set[bytes] = set()
    for packet in st.packets:
        # The main packet is at most 64 KiB: parsing it here is cheap (and only done when
        # the file has Extended XMP segments or the packet mentions them).
        if not extended and b"HasExtendedXMP" not in packet.data:
            continue
        for prop in parse_xmp(packet.data, packet.block).get({XMP_NOTE}, "HasExtendedXMP"):
            for value, _ in prop.values:
                if re.fullmatch(r"\s*[0-9A-Fa-f]{32}\s*", value):
                    wanted.add(value.strip().upper().encode())
    for guid in sorted(set(g.upper() for g in extended) - wanted):
        st.problems.append(f"JPEG Extended XMP {guid.decode()}: not named by the main packet's "
                           "xmpNote:HasExtendedXMP: ignored (XMP Part 3)")
    for guid in sorted(wanted):
        match = [(k, v) for k, v in extended.items() if k.upper() == guid]
        name = guid.decode()
        if not match:
            raise _Incomplete(f"JPEG: the main XMP names Extended XMP {name}, which is not in "
                              "the file (undetermined)")
        full, parts = match[0][1]
        if full > XMP_TOTAL_LIMIT:
            raise _Incomplete(f"JPEG Extended XMP {name}: {full} bytes, over "
                              f"{XMP_TOTAL_LIMIT}: not read (undetermined)")
        data = bytearray()
        for offset in sorted(parts):
            if offset != len(data):
                raise _Incomplete(f"JPEG Extended XMP {name}: portion at offset {offset} does "
                                  f"not follow byte {len(data)} (portions missing)")
            data += parts[offset]
        if len(data) != full:
            raise _Incomplete(f"JPEG Extended XMP {name}: {len(data)} of {full} bytes present")
        if hashlib.md5(bytes(data)).hexdigest().upper().encode() != guid:  # noqa: S324
            st.problems.append(f"JPEG Extended XMP {name}: MD5 digest does not match the GUID "
                               "(read all the same)")
        st.add(f"JPEG Extended XMP {name}", bytes(data))


# -------------------------------------------------------------------------------------- PNG

def _read_png(body: bytes, st: _State) -> None:
    pos, n = 8, len(body)
    while True:
        if pos + 8 > n:
            raise _Incomplete(f"PNG: file ends at byte {n} before IEND (cut): text chunks "
                              "after it may be missing")
        length, ctype = struct.unpack_from(">I4s", body, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise _Incomplete(f"PNG: chunk {ctype!r} at byte {pos} declares {length} bytes, "
                              f"file ends at {n} (cut)")
        if ctype == b"IEND":
            return
        if ctype in (b"iTXt", b"tEXt", b"zTXt"):
            data = body[pos + 8:pos + 8 + length]
            keyword = data.split(b"\x00", 1)[0]
            if keyword in (PNG_XMP_KEYWORD, PNG_IM_KEYWORD):
                block = f"PNG {ctype.decode()} {keyword.decode()} at byte {pos}"
                (crc,) = struct.unpack_from(">I", body, pos + 8 + length)
                if zlib.crc32(body[pos + 4:pos + 8 + length]) != crc:
                    raise _Incomplete(f"{block}: CRC mismatch (corrupt chunk)")
                st.add(block, _png_text(ctype, keyword, data, block))
        pos = end


def _png_text(ctype: bytes, keyword: bytes, data: bytes, block: str) -> bytes:
    rest = data[len(keyword) + 1:]
    if ctype == b"iTXt":
        if len(rest) < 2:
            raise _Incomplete(f"{block}: iTXt header cut")
        flag, method = rest[0], rest[1]
        parts = rest[2:].split(b"\x00", 2)
        if len(parts) < 3:
            raise _Incomplete(f"{block}: iTXt language/translated keyword not terminated")
        text = parts[2]
        if flag:
            if method != 0:
                raise _Incomplete(f"{block}: unknown compression method {method}")
            text = _inflate(text, block)
    elif ctype == b"zTXt":
        if not rest or rest[0] != 0:
            raise _Incomplete(f"{block}: unknown zTXt compression method")
        text = _inflate(rest[1:], block)
    else:
        text = rest
    if keyword == PNG_IM_KEYWORD:
        # ImageMagick: "\nxmp\n    <decimal length>\n<hex lines>"
        m = re.match(rb"\s*\S*\s+(\d+)\s+", text)
        if not m:
            raise _Incomplete(f"{block}: raw profile header unreadable")
        hexdigits = re.sub(rb"\s+", b"", text[m.end():])
        try:
            text = bytes.fromhex(hexdigits.decode("ascii"))
        except ValueError:
            raise _Incomplete(f"{block}: raw profile is not hexadecimal") from None
        if len(text) != int(m.group(1)):
            raise _Incomplete(f"{block}: raw profile holds {len(text)} of {m.group(1)} bytes")
    return text


# ------------------------------------------------------------------------------------- WebP

def _read_webp(body: bytes, st: _State) -> None:
    n = len(body)
    (riff_size,) = struct.unpack_from("<I", body, 4)
    if riff_size + 8 > n:
        raise _Incomplete(f"WebP: RIFF declares {riff_size + 8} bytes, file has {n} (cut)")
    end_all, pos = riff_size + 8, 12
    flags = None
    while pos < end_all:
        if pos + 8 > end_all:
            raise _Incomplete(f"WebP: chunk header cut at byte {pos}")
        fourcc, size = struct.unpack_from("<4sI", body, pos)
        end = pos + 8 + size
        if end > end_all:
            raise _Incomplete(f"WebP: chunk {fourcc!r} at byte {pos} runs past the RIFF end")
        if fourcc == b"VP8X" and size >= 1:
            flags = body[pos + 8]
        elif fourcc == b"XMP ":
            st.add(f"WebP XMP chunk at byte {pos}", body[pos + 8:end])
        pos = end + (size & 1)
    if flags is not None and flags & 0x04 and not st.packets:
        raise _Incomplete("WebP: VP8X says the file has XMP, but no XMP chunk was found")


# -------------------------------------------------------------------------------------- GIF

def _read_gif(body: bytes, st: _State) -> None:
    n = len(body)
    if n < 13:
        raise _Incomplete("GIF: header cut")
    packed = body[10]
    pos = 13 + (3 * (2 << (packed & 7)) if packed & 0x80 else 0)
    while True:
        if pos >= n:
            raise _Incomplete(f"GIF: file ends at byte {n} before the trailer (cut): an XMP "
                              "extension may follow")
        intro = body[pos]
        if intro == 0x3B:
            return
        if intro == 0x21:
            if pos + 2 > n:
                raise _Incomplete(f"GIF: extension cut at byte {pos}")
            label = body[pos + 1]
            start = pos + 2
            if label == 0xFF and body[start:start + 12] == b"\x0b" + GIF_XMP_APP:
                data_start = start + 12
                tail = body.find(GIF_MAGIC_TRAILER, data_start)
                if tail < 0:
                    raise _Incomplete(f"GIF XMP extension at byte {pos}: magic trailer not "
                                      "found (cut or corrupt)")
                st.add(f"GIF XMP application extension at byte {pos}", body[data_start:tail])
                pos = _skip_subblocks(body, data_start)
            else:
                pos = _skip_subblocks(body, start)
        elif intro == 0x2C:
            if pos + 10 > n:
                raise _Incomplete(f"GIF: image descriptor cut at byte {pos}")
            packed = body[pos + 9]
            pos += 10 + (3 * (2 << (packed & 7)) if packed & 0x80 else 0)
            pos = _skip_subblocks(body, pos + 1)       # LZW minimum code size, then data
        else:
            raise _Incomplete(f"GIF: unknown block 0x{intro:02X} at byte {pos} (corrupt)")


def _skip_subblocks(body: bytes, pos: int) -> int:
    n = len(body)
    while True:
        if pos >= n:
            raise _Incomplete(f"GIF: data sub-blocks cut at byte {pos}")
        size = body[pos]
        pos += 1 + size
        if size == 0:
            return pos


# ------------------------------------------------------------------------------------- TIFF

def _read_tiff(body: bytes, st: _State) -> None:
    n = len(body)
    if body[2:4] in (b"+\x00", b"\x00+"):
        raise _Incomplete("TIFF: BigTIFF is not read (undetermined)")
    order = "<" if body[:2] == b"II" else ">"
    if n < 8:
        raise _Incomplete("TIFF: header cut")
    (offset,) = struct.unpack_from(order + "I", body, 4)
    seen: set[int] = set()
    index = 0
    while offset:
        if offset in seen:
            st.problems.append(f"TIFF: IFD chain loops back to byte {offset} (stopped)")
            return
        if len(seen) >= CHAIN_LIMIT:
            raise _Incomplete(f"TIFF: more than {CHAIN_LIMIT} IFDs (not all read)")
        seen.add(offset)
        if offset + 2 > n:
            raise _Incomplete(f"TIFF: IFD{index} at byte {offset} is past the end ({n}, cut)")
        (count,) = struct.unpack_from(order + "H", body, offset)
        table_end = offset + 2 + 12 * count
        if table_end + 4 > n:
            raise _Incomplete(f"TIFF: IFD{index} at byte {offset} ({count} entries) is cut")
        for i in range(count):
            tag, typ, cnt = struct.unpack_from(order + "HHI", body, offset + 2 + 12 * i)
            if tag != 700:
                continue
            block = f"TIFF IFD{index} tag 700 (XMLPacket)"
            if typ not in (1, 7):
                st.problems.append(f"{block}: type {typ}, not BYTE or UNDEFINED (read anyway)")
            size = cnt * {3: 2, 4: 4}.get(typ, 1)
            if size <= 4:
                data = body[offset + 2 + 12 * i + 8:offset + 2 + 12 * i + 8 + size]
            else:
                (at,) = struct.unpack_from(order + "I", body, offset + 2 + 12 * i + 8)
                if at + size > n:
                    raise _Incomplete(f"{block}: {size} bytes at byte {at}, file ends at {n} "
                                      "(cut)")
                if size > XMP_PACKET_LIMIT:
                    raise _Incomplete(f"{block}: {size} bytes, over {XMP_PACKET_LIMIT}: not "
                                      "read (undetermined)")
                data = body[at:at + size]
            st.add(block, data)
        (offset,) = struct.unpack_from(order + "I", body, table_end)
        index += 1


# --------------------------------------------------------------------------------- scanning

_XPACKET_BEGIN = re.compile(rb"<\?xpacket\s+begin\s*=")
_XPACKET_END = re.compile(rb"<\?xpacket\s+end\s*=\s*['\"][rw]['\"]\s*\?>")
# UTF-16/32 packets (Part 1 allows them): the begin marker in those encodings.
_WIDE_BEGINS = tuple("<?xpacket begin=".encode(enc) for enc in
                     ("utf-16-be", "utf-16-le", "utf-32-be", "utf-32-le"))


_ARCHIVES = ((b"PK\x03\x04", "ZIP"), (b"\x1f\x8b", "gzip"), (b"7z\xbc\xaf\x27\x1c", "7z"),
             (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"), (b"\x28\xb5\x2f\xfd", "zstd"),
             (b"Rar!\x1a\x07", "RAR"))


def _read_scan(body: bytes, st: _State) -> None:
    """XMP Part 1 packet scanning: only for formats we do not read structurally."""
    for magic, name in _ARCHIVES:
        if body.startswith(magic):
            # A packet in a compressed member is invisible to a byte scan.
            raise _Incomplete(f"scan: {name} archive: the metadata of its members is not read "
                              "(undetermined)")
    for wide in _WIDE_BEGINS:
        if wide in body:
            raise _Incomplete("scan: a UTF-16/UTF-32 XMP packet wrapper is present; it is not "
                              "scanned (undetermined)")
    for m in _XPACKET_BEGIN.finditer(body):
        end = _XPACKET_END.search(body, m.end())
        if end is None:
            raise _Incomplete(f"scan: XMP packet at byte {m.start()} has no end wrapper (cut)")
        if end.end() - m.start() > XMP_PACKET_LIMIT:
            raise _Incomplete(f"scan: XMP packet at byte {m.start()} is over "
                              f"{XMP_PACKET_LIMIT} bytes: not read (undetermined)")
        st.add(f"packet scan at byte {m.start()}", body[m.start():end.end()])
    if not st.packets and re.search(rb"<x:xmpmeta|<rdf:RDF", body):
        # A packet without its wrapper cannot be delimited reliably.
        raise _Incomplete("scan: XMP (x:xmpmeta/rdf:RDF) without a packet wrapper: not "
                          "delimited, not read (undetermined)")


# -------------------------------------------------------------------------------------- PDF

class _PdfBroken(Exception):
    """The cross-reference route failed; recovery by scanning may still work."""


@dataclass(frozen=True, slots=True)
class _Ref:
    num: int
    gen: int


class _Name(str):
    """A PDF name (``/Type``), #-escapes decoded; compared without the slash."""


_PDF_WS = b" \t\r\n\f\x00"
_PDF_DELIM = b"()<>[]{}/%"
_NUM = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)")
_REF = re.compile(rb"(\d+)\s+(\d+)\s+R(?![^ \t\r\n\f\x00()<>\[\]{}/%])")
_OBJ_HEAD = re.compile(rb"(\d+)\s+(\d+)\s+obj(?![^ \t\r\n\f\x00()<>\[\]{}/%])")
_NAME = re.compile(rb"/([^ \t\r\n\f\x00()<>\[\]{}/%]*)")
_PDF_OBJECT_LIMIT = 1 << 16   # tokens per object
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?: \r| \n|\r\n)")


class _PdfLexer:
    """Just enough of ISO 32000-1 §7.3 to read trailers, catalogs and stream dictionaries."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos, self.budget = data, pos, _PDF_OBJECT_LIMIT

    def skip(self) -> None:
        d, n = self.data, len(self.data)
        while self.pos < n:
            c = d[self.pos]
            if c in _PDF_WS:
                self.pos += 1
            elif c == 0x25:  # % comment to end of line
                while self.pos < n and d[self.pos] not in b"\r\n":
                    self.pos += 1
            else:
                return

    def value(self, depth: int = 0):  # noqa: ANN201 - PDF objects are dynamically typed
        self.budget -= 1
        if self.budget < 0 or depth > 32:
            raise _PdfBroken("PDF object too deep or too long")
        self.skip()
        d, p = self.data, self.pos
        if p >= len(d):
            raise _PdfBroken("PDF object cut at end of file")
        c = d[p:p + 1]
        if d.startswith(b"<<", p):
            self.pos += 2
            out: dict[str, object] = {}
            while True:
                self.skip()
                if d.startswith(b">>", self.pos):
                    self.pos += 2
                    return out
                key = self.value(depth + 1)
                if not isinstance(key, _Name):
                    raise _PdfBroken(f"PDF dictionary key at byte {self.pos} is not a name")
                out[key] = self.value(depth + 1)
        if c == b"[":
            self.pos += 1
            items = []
            while True:
                self.skip()
                if d.startswith(b"]", self.pos):
                    self.pos += 1
                    return items
                items.append(self.value(depth + 1))
        if c == b"/":
            m = _NAME.match(d, p)
            self.pos = m.end()
            raw = m.group(1)
            name = re.sub(rb"#([0-9A-Fa-f]{2})", lambda x: bytes([int(x.group(1), 16)]), raw)
            return _Name(name.decode("latin-1"))
        if c == b"(":
            return self._literal()
        if c == b"<":
            end = d.find(b">", p)
            if end < 0:
                raise _PdfBroken("PDF hex string not closed")
            self.pos = end + 1
            hexd = re.sub(rb"\s+", b"", d[p + 1:end])
            return bytes.fromhex((hexd + b"0" * (len(hexd) & 1)).decode("latin-1"))
        m = _REF.match(d, p)
        if m:
            self.pos = m.end()
            return _Ref(int(m.group(1)), int(m.group(2)))
        m = _NUM.match(d, p)
        if m:
            self.pos = m.end()
            text = m.group(0)
            return float(text) if b"." in text else int(text)
        for word, val in ((b"true", True), (b"false", False), (b"null", None)):
            if d.startswith(word, p):
                self.pos += len(word)
                return val
        raise _PdfBroken(f"PDF: unreadable token at byte {p}")

    def _literal(self) -> bytes:
        d, p, depth, out = self.data, self.pos + 1, 1, bytearray()
        while p < len(d):
            c = d[p]
            if c == 0x5C:        # backslash: keep the escaped byte (values here are opaque)
                out += d[p:p + 2]
                p += 2
                continue
            if c == 0x28:
                depth += 1
            elif c == 0x29:
                depth -= 1
                if depth == 0:
                    self.pos = p + 1
                    return bytes(out)
            out.append(c)
            p += 1
        raise _PdfBroken("PDF literal string not closed")


class _PdfReader:
    def __init__(self, body: bytes, st: _State) -> None:
        self.body, self.st = body, st
        # Lookups (object number -> (kind, ...) or None), newest section first; kind "f"
        # (free) ends the search.
        self.sections: list = []
        self.trailer: dict = {}
        self.objstm_cache: dict[int, list[tuple[int, int]]] = {}

    # -- cross-reference data
    def load_xref(self) -> None:
        body = self.body
        at = body.rfind(b"startxref", max(0, len(body) - 4096))
        if at < 0:
            # No trailer at the end: the file is cut (or not a whole PDF). An update with a
            # newer catalog may be what is missing, so recovery cannot help.
            raise _Incomplete("PDF: no startxref in the last 4096 bytes (cut or incomplete "
                              "file): undetermined")
        m = re.match(rb"startxref\s+(\d+)", body[at:at + 40])
        if not m:
            raise _PdfBroken("PDF: startxref has no offset")
        tail = body[at + m.end():]
        if _OBJ_HEAD.search(tail) or b"trailer" in tail or b"xref" in tail:
            # Objects after the last trailer: an incremental update whose cross-reference
            # section and trailer are missing -- a file cut inside an update.
            raise _Incomplete("PDF: objects after the last startxref (an incremental update "
                              "without its trailer: cut?): undetermined")
        offset: int | None = int(m.group(1))
        seen: set[int] = set()
        first = True
        while offset is not None:
            if offset in seen or len(seen) >= CHAIN_LIMIT:
                raise _PdfBroken(f"PDF: cross-reference chain loops or is over {CHAIN_LIMIT} "
                                 "sections")
            seen.add(offset)
            trailer = self._section(offset)
            if first:
                self.trailer, first = trailer, False
            xrefstm = trailer.get("XRefStm")
            if isinstance(xrefstm, int) and xrefstm not in seen:
                seen.add(xrefstm)
                self._section(xrefstm)
            prev = trailer.get("Prev")
            offset = prev if isinstance(prev, int) else None

    def _section(self, offset: int) -> dict:
        body = self.body
        if offset >= len(body):
            raise _PdfBroken(f"PDF: cross-reference offset {offset} is past the end (cut?)")
        lex = _PdfLexer(body, offset)
        lex.skip()
        if body.startswith(b"xref", lex.pos):
            return self._table(lex.pos + 4)
        return self._xref_stream(offset)

    def _table(self, pos: int) -> dict:
        """A classic table; entries are read when looked up (20 bytes each, §7.5.4)."""
        body = self.body
        head = re.compile(rb"\s*(\d+)\s+(\d+)[ \t]*\r?\n?")
        subsections: list[tuple[int, int, int]] = []
        loose: dict[int, tuple] = {}
        while True:
            m = head.match(body, pos)
            if not m:
                break
            start, count = int(m.group(1)), int(m.group(2))
            pos = m.end()
            if count > len(body) // 18:
                raise _PdfBroken("PDF: cross-reference subsection larger than the file")
            if count == 0:
                continue
            last = pos + 20 * (count - 1)
            if _XREF_ENTRY.fullmatch(body, pos, pos + 20) and \
                    _XREF_ENTRY.fullmatch(body, last, last + 20):
                subsections.append((start, count, pos))
                pos += 20 * count
                continue
            # Entries not 20 bytes wide (a writer's mistake): read them one by one.
            self.st.problems.append(f"PDF: cross-reference entries at byte {pos} are not 20 "
                                    "bytes wide (read leniently)")
            entry = re.compile(rb"\s*(\d{1,10})\s+(\d{1,5})\s+([nf])")
            for num in range(start, start + count):
                e = entry.match(body, pos)
                if not e:
                    raise _PdfBroken(f"PDF: cross-reference entry unreadable at byte {pos}")
                pos = e.end()
                loose[num] = ("n", int(e.group(1))) if e.group(3) == b"n" else ("f",)
        lex = _PdfLexer(body, pos)
        lex.skip()
        if not body.startswith(b"trailer", lex.pos):
            raise _PdfBroken(f"PDF: no trailer after the cross-reference table at byte {pos}")
        lex.pos += 7
        trailer = lex.value()
        if not isinstance(trailer, dict):
            raise _PdfBroken("PDF: trailer is not a dictionary")

        def lookup(num: int) -> tuple | None:
            for start, count, at in reversed(subsections):
                if start <= num < start + count:
                    e = _XREF_ENTRY.fullmatch(body, at + 20 * (num - start),
                                              at + 20 * (num - start) + 20)
                    if not e:
                        raise _PdfBroken(f"PDF: cross-reference entry for object {num} "
                                         "unreadable")
                    return ("n", int(e.group(1))) if e.group(3) == b"n" else ("f",)
            return loose.get(num)

        self.sections.append(lookup)
        return trailer

    def _xref_stream(self, offset: int) -> dict:
        d, data = self._object_at(offset, None)
        if not isinstance(d, dict) or d.get("Type") != "XRef" or data is None:
            raise _PdfBroken(f"PDF: no xref table or XRef stream at byte {offset}")
        raw = self._decode(d, data, f"XRef stream at byte {offset}")
        w = d.get("W")
        if not (isinstance(w, list) and len(w) == 3 and all(isinstance(x, int) and 0 <= x <= 8
                                                            for x in w)):
            raise _PdfBroken("PDF: XRef stream /W unreadable")
        index = d.get("Index", [0, d.get("Size", 0)])
        if not (isinstance(index, list) and len(index) % 2 == 0 and
                all(isinstance(x, int) and x >= 0 for x in index)):
            raise _PdfBroken("PDF: XRef stream /Index unreadable")
        width = sum(w)
        rows = sum(index[1::2])
        if width == 0 or rows * width > len(raw):
            raise _PdfBroken("PDF: XRef stream shorter than its /Index says")
        ranges, row = [], 0
        for i in range(0, len(index), 2):
            ranges.append((index[i], index[i + 1], row))
            row += index[i + 1]

        def lookup(num: int) -> tuple | None:
            for start, count, first_row in ranges:
                if start <= num < start + count:
                    p = (first_row + num - start) * width
                    fields = []
                    for size in w:
                        fields.append(int.from_bytes(raw[p:p + size], "big"))
                        p += size
                    kind = fields[0] if w[0] else 1
                    if kind == 0:
                        return ("f",)
                    if kind == 1:
                        return ("n", fields[1])
                    if kind == 2:
                        return ("c", fields[1], fields[2])
                    return None     # unknown entry types: "null reference" (ISO 32000-1)
            return None

        self.sections.append(lookup)
        return d

    def where(self, num: int) -> tuple | None:
        for section in self.sections:
            entry = section(num)
            if entry is not None:
                return entry
        return None

    # -- objects
    def _object_at(self, offset: int, want: _Ref | None) -> tuple[object, bytes | None]:
        body = self.body
        m = _OBJ_HEAD.match(body, offset)
        if not m:
            lex = _PdfLexer(body, offset)
            lex.skip()
            m = _OBJ_HEAD.match(body, lex.pos)
        if not m:
            raise _PdfBroken(f"PDF: no object at byte {offset}")
        if want is not None and int(m.group(1)) != want.num:
            raise _PdfBroken(f"PDF: byte {offset} holds object {m.group(1).decode()}, not "
                             f"{want.num} (cross-reference offsets wrong)")
        lex = _PdfLexer(body, m.end())
        value = lex.value()
        lex.skip()
        if isinstance(value, dict) and body.startswith(b"stream", lex.pos):
            start = lex.pos + 6
            if body.startswith(b"\r\n", start):
                start += 2
            elif body.startswith(b"\n", start):
                start += 1
            return value, self._stream_data(value, start, offset)
        return value, None

    def _stream_data(self, d: dict, start: int, offset: int) -> bytes:
        body = self.body
        length = d.get("Length")
        if isinstance(length, _Ref):
            length = self.resolve(length)
        if isinstance(length, int) and 0 <= length and start + length <= len(body) and \
                re.match(rb"\s*endstream", body[start + length:start + length + 20]):
            return body[start:start + length]
        end = body.find(b"endstream", start)
        if end < 0:
            raise _Incomplete(f"PDF: stream of the object at byte {offset} is cut (no "
                              "endstream)")
        self.st.problems.append(f"PDF: stream at byte {offset}: /Length {length!r} does not "
                                "end at endstream; read up to the endstream keyword")
        data = body[start:end]
        return data[:-2] if data.endswith(b"\r\n") else data.rstrip(b"\r\n")

    def resolve(self, ref: object, depth: int = 0) -> object:
        if not isinstance(ref, _Ref):
            return ref
        return self.load(ref, depth)[0]

    def load(self, ref: _Ref, depth: int = 0) -> tuple[object, bytes | None]:
        if depth > 8:
            raise _PdfBroken("PDF: reference chain too deep")
        where = self.where(ref.num)
        if where is None or where[0] == "f":
            raise _PdfBroken(f"PDF: object {ref.num} is not in the cross-reference data")
        if where[0] == "n":
            return self._object_at(where[1], ref)
        return self._from_objstm(where[1], where[2], ref), None

    def _from_objstm(self, stm_num: int, index: int, ref: _Ref) -> object:
        d, data = self.load(_Ref(stm_num, 0))
        if not isinstance(d, dict) or data is None:
            raise _PdfBroken(f"PDF: object stream {stm_num} unreadable")
        raw = self._decode(d, data, f"object stream {stm_num}")
        first, n = d.get("First"), d.get("N")
        if not isinstance(first, int) or not isinstance(n, int):
            raise _PdfBroken(f"PDF: object stream {stm_num} lacks /N or /First")
        lex = _PdfLexer(raw, 0)
        pairs = []
        for _ in range(n):
            num, off = lex.value(), lex.value()
            pairs.append((num, off))
        if index >= len(pairs) or pairs[index][0] != ref.num:
            raise _PdfBroken(f"PDF: object {ref.num} not at index {index} of object stream "
                             f"{stm_num}")
        return _PdfLexer(raw, first + pairs[index][1]).value()

    def _decode(self, d: dict, data: bytes, what: str) -> bytes:
        filters = d.get("Filter")
        filters = [] if filters is None else filters if isinstance(filters, list) else [filters]
        parms = d.get("DecodeParms")
        for f in filters:
            if f not in ("FlateDecode", "Fl"):
                raise _Incomplete(f"PDF {what}: filter /{f} is not read (undetermined)")
            data = _inflate(data, f"PDF {what}", XMP_TOTAL_LIMIT)
        if isinstance(parms, list):
            parms = parms[0] if parms else None
        if isinstance(parms, dict) and isinstance(parms.get("Predictor"), int) and \
                parms["Predictor"] >= 10:
            data = _png_unpredict(data, parms.get("Columns", 1), what)
        elif isinstance(parms, dict) and parms.get("Predictor", 1) not in (1, None):
            raise _Incomplete(f"PDF {what}: predictor {parms.get('Predictor')} not read")
        return data

    # -- the catalog's metadata
    def metadata(self) -> tuple[str, bytes] | None:
        root = self.trailer.get("Root")
        if not isinstance(root, _Ref):
            raise _PdfBroken("PDF: trailer has no /Root reference")
        catalog = self.resolve(root)
        return self._catalog_metadata(catalog, root)

    def _catalog_metadata(self, catalog: object, root: _Ref) -> tuple[str, bytes] | None:
        if not isinstance(catalog, dict):
            raise _PdfBroken(f"PDF: catalog object {root.num} is not a dictionary")
        if catalog.get("Type") != "Catalog":
            self.st.problems.append(f"PDF: object {root.num} named by /Root has no /Type "
                                    "/Catalog (read as the catalog)")
        meta = catalog.get("Metadata")
        if meta is None:
            return None
        if not isinstance(meta, _Ref):
            raise _Incomplete("PDF: catalog /Metadata is not a reference to a stream")
        d, data = self.load(meta)
        return self._metadata_stream(meta, d, data)

    def _metadata_stream(self, meta: _Ref, d: object, data: bytes | None) -> tuple[str, bytes]:
        if not isinstance(d, dict) or data is None:
            raise _Incomplete(f"PDF: /Metadata object {meta.num} is not a stream")
        if d.get("Subtype") not in ("XML", None) or d.get("Type") not in ("Metadata", None):
            self.st.problems.append(f"PDF: /Metadata object {meta.num} is typed "
                                    f"{d.get('Type')}/{d.get('Subtype')} (read anyway)")
        block = f"PDF catalog /Metadata stream (object {meta.num} {meta.gen})"
        try:
            data = self._decode(d, data, block)
        except _Incomplete as exc:
            if "Encrypt" in self.trailer:
                raise _Incomplete(f"{block}: encrypted (the file has /Encrypt) or corrupt: "
                                  f"not read (undetermined); {exc}") from None
            raise
        if "Encrypt" in self.trailer and not re.match(rb"(\xef\xbb\xbf)?\s*<", data):
            raise _Incomplete(f"{block}: encrypted (the file has /Encrypt): not read "
                              "(undetermined)")
        return block, data

    # -- recovery
    def recover(self) -> tuple[str, bytes] | None:
        """No usable cross-reference data: find the objects by scanning, fail when ambiguous."""
        body = self.body
        if b"/ObjStm" in body:
            raise _Incomplete("PDF: cross-reference data unreadable and the file has object "
                              "streams (a newer catalog may be inside one): undetermined")
        defs: dict[int, list[int]] = {}
        for m in _OBJ_HEAD.finditer(body):
            defs.setdefault(int(m.group(1)), []).append(m.start())
        latest = {num: ("n", offs[-1]) for num, offs in defs.items()}
        self.sections = [latest.get]
        roots = {(m.group(1), m.group(2)) for m in
                 re.finditer(rb"/Root\s+(\d+)\s+(\d+)\s+R", body)}
        if len(roots) > 1:
            raise _Incomplete("PDF: cross-reference data unreadable and the trailers name "
                              f"{len(roots)} different catalogs: which is current cannot be "
                              "known (undetermined)")
        if roots:
            num, gen = roots.pop()
            root = _Ref(int(num), int(gen))
        else:
            cats = [n for n, offs in defs.items()
                    if re.match(rb"\d+\s+\d+\s+obj\s*<<.{0,4000}?/Type\s*/Catalog",
                                body[offs[-1]:offs[-1] + 4100], re.S)]
            if not cats:
                raise _Incomplete("PDF: cross-reference data unreadable and no catalog "
                                  "found outside object streams (undetermined)")
            if len(cats) > 1:
                raise _Incomplete("PDF: cross-reference data unreadable and several catalog "
                                  "objects: which is current cannot be known (undetermined)")
            root = _Ref(cats[0], 0)
        if root.num not in defs:
            raise _Incomplete(f"PDF: catalog object {root.num} not found (it may be in an "
                              "object stream): undetermined")
        self._same_everywhere(defs, root.num, "catalog")
        catalog, _ = self._object_at(defs[root.num][-1], root)
        if not isinstance(catalog, dict):
            raise _Incomplete(f"PDF: catalog object {root.num} unreadable")
        meta = catalog.get("Metadata")
        if isinstance(meta, _Ref):
            if meta.num not in defs:
                raise _Incomplete(f"PDF: /Metadata object {meta.num} not found: undetermined")
            self._same_everywhere(defs, meta.num, "metadata stream")
        return self._catalog_metadata(catalog, root)

    def _same_everywhere(self, defs: dict[int, list[int]], num: int, what: str) -> None:
        offs = defs[num]
        if len(offs) < 2:
            return
        texts = set()
        for off in offs:
            end = self.body.find(b"endobj", off)
            texts.add(self.body[off:end if end >= 0 else off + 65536])
        if len(texts) > 1:
            raise _Incomplete(f"PDF: cross-reference data unreadable and the {what} (object "
                              f"{num}) has {len(offs)} different versions: which is current "
                              "cannot be known (undetermined)")


def _png_unpredict(data: bytes, columns: object, what: str) -> bytes:
    if not isinstance(columns, int) or columns <= 0:
        raise _Incomplete(f"PDF {what}: predictor /Columns unreadable")
    row, out, prev = columns + 1, bytearray(), bytearray(columns)
    for i in range(0, len(data) - len(data) % row, row):
        kind, line = data[i], bytearray(data[i + 1:i + row])
        if kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind != 0:
            up = prev
            for j in range(columns):
                left = line[j - 1] if j else 0
                ul = up[j - 1] if j else 0
                if kind == 1:
                    line[j] = (line[j] + left) & 0xFF
                elif kind == 3:
                    line[j] = (line[j] + ((left + up[j]) >> 1)) & 0xFF
                elif kind == 4:
                    p = left + up[j] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[j]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up[j] if pb <= pc else ul
                    line[j] = (line[j] + pred) & 0xFF
                else:
                    raise _Incomplete(f"PDF {what}: unknown PNG predictor row type {kind}")
        out += line
        prev = line
    return bytes(out)


def _read_pdf(body: bytes, st: _State) -> None:
    reader = _PdfReader(body, st)
    try:
        reader.load_xref()
        found = reader.metadata()
    except _PdfBroken as exc:
        st.problems.append(f"{exc}; objects recovered by scanning")
        reader = _PdfReader(body, st)
        try:
            found = reader.recover()
        except _PdfBroken as exc2:
            raise _Incomplete(f"PDF: {exc2} (undetermined)") from None
    if found is not None:
        block, data = found
        if len(data) > XMP_PACKET_LIMIT:
            raise _Incomplete(f"{block}: {len(data)} bytes, over {XMP_PACKET_LIMIT}: not read "
                              "(undetermined)")
        st.add(block, data)


_READERS = {
    "jpeg": _read_jpeg,
    "png": _read_png,
    "webp": _read_webp,
    "gif": _read_gif,
    "tiff": _read_tiff,
    "pdf": _read_pdf,
    "scan": _read_scan,
}


# -------------------------------------------------------------------------------------- RDF

def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True, recover=False)


def parse_xmp(data: bytes, block: str = "XMP") -> XmpDocument:
    """The top-level properties of one packet, or ``ok=False`` with the reason."""
    if len(data) > XMP_PACKET_LIMIT:
        return XmpDocument(False, problems=(f"{block}: packet of {len(data)} bytes is over "
                                            f"{XMP_PACKET_LIMIT}: not read (undetermined)",))
    # Trailing NULs pad some writers' packets; in UTF-16/32 they are part of the text.
    wide = b"\x00" in data[:64]
    stripped = data.rstrip(b" \t\r\n") if wide else data.rstrip(b"\x00 \t\r\n")
    if re.search(rb"<!DOCTYPE|<!ENTITY", stripped, re.I):
        return XmpDocument(False, problems=(f"{block}: DTD or entity declaration in XMP: "
                                            "not read (undetermined)",))
    try:
        root = etree.fromstring(stripped, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        return XmpDocument(False, problems=(f"{block}: not well-formed XML ({exc}): "
                                            "undetermined",))
    if root.getroottree().docinfo.internalDTD is not None:
        return XmpDocument(False, problems=(f"{block}: DTD in XMP: not read (undetermined)",))
    rdfs = [root] if root.tag == f"{{{RDF}}}RDF" else list(root.iter(f"{{{RDF}}}RDF"))
    if not rdfs:
        return XmpDocument(False, problems=(f"{block}: no rdf:RDF element: undetermined",))
    props: list[XmpProperty] = []
    problems: list[str] = []
    for rdf in rdfs:
        for desc in rdf:
            if not isinstance(desc.tag, str):
                continue
            if desc.tag != f"{{{RDF}}}Description":
                problems.append(f"{block}: typed node {desc.tag} under rdf:RDF (read as a "
                                "description)")
            props.extend(_description(desc, block))
    return XmpDocument(True, tuple(props), tuple(problems))


def _qname(tag: str, prefix: str | None) -> tuple[str, str, str]:
    ns, _, local = tag[1:].partition("}")
    return ns, local, f"{prefix}:{local}" if prefix else local


def _description(desc: etree._Element, block: str) -> Iterator[XmpProperty]:
    base = "rdf:Description"
    for attr, value in desc.attrib.items():
        if not attr.startswith("{") or attr.startswith(f"{{{RDF}}}") or \
                attr.startswith("{http://www.w3.org/XML/1998/namespace}"):
            continue
        prefix = _prefix_for(desc, attr)
        ns, local, q = _qname(attr, prefix)
        yield XmpProperty(ns, local, prefix, ((value, f"{base}/@{q}"),))
    for child in desc:
        if not isinstance(child.tag, str):
            continue
        ns, local, q = _qname(child.tag, child.prefix)
        values = tuple(_values(child, f"{base}/{q}"))
        yield XmpProperty(ns, local, child.prefix, values)


def _prefix_for(el: etree._Element, clark: str) -> str | None:
    ns = clark[1:].partition("}")[0]
    for prefix, uri in el.nsmap.items():
        if uri == ns:
            return prefix
    return None


def _values(el: etree._Element, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string value of a property element, whatever its RDF form."""
    if depth > 8:
        return
    resource = el.get(f"{{{RDF}}}resource")
    if resource is not None:
        yield resource, f"{path}/@rdf:resource"
    value_attr = el.get(f"{{{RDF}}}value")
    if value_attr is not None:
        yield value_attr, f"{path}/@rdf:value"
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        text = el.text or ""
        if resource is None and value_attr is None and (text.strip() or
                                                       el.get(f"{{{RDF}}}parseType") is None):
            yield text, path
        return
    if (el.text or "").strip():
        # Text beside child elements is not valid RDF/XML; read it all the same (the reading
        # that can only add reservations).
        yield el.text, path
    for child in children:
        ns, local, _ = _qname(child.tag, child.prefix)
        if ns == RDF and local in ("Bag", "Seq", "Alt"):
            for j, li in enumerate((c for c in child if isinstance(c.tag, str)), 1):
                yield from _values(li, f"{path}/rdf:{local}/rdf:li[{j}]", depth + 1)
        elif ns == RDF and local == "value":
            yield from _values(child, f"{path}/rdf:value", depth + 1)
        elif ns == RDF and local == "Description":
            yield from _values(child, f"{path}/rdf:Description", depth + 1)
