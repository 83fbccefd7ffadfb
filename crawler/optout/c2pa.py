"""C2PA training-and-mining assertions: a file's Content Credentials, read before storing.

Sans-IO: :func:`read_c2pa` takes a document's (decoded) body bytes and its Content-Type and
returns an :class:`~crawler.optout.embedded.EmbeddedResult` (the type
:func:`~crawler.optout.embedded.read_embedded` returns), signal ``c2pa``: the statements found,
every entry with the manifest it came from and that manifest's validation state, and
``determined`` -- False when the file carries a C2PA manifest store (or a reference to one)
that could not be read to the end (fail closed: the caller refuses the file).

What is read
------------
* C2PA Technical Specification 1.4 (2023), "Training and Data Mining" assertion, label
  ``c2pa.training-mining``: ``{"entries": {KEY: {"use": "allowed" | "notAllowed" |
  "constrained", "constraint_info": TEXT}}}`` with the predefined keys ``c2pa.ai_training``,
  ``c2pa.ai_generative_training``, ``c2pa.data_mining``, ``c2pa.ai_inference``.  C2PA 2.0
  moved the assertion out of the C2PA specification; writers still emit it (c2patool's
  ``do_not_train.json`` fixture), so it is read.
* Its successor, CAWG "Training and Data Mining Assertion" 1.1 (Creator Assertions Working
  Group, DIF, approved 6 May 2025; github.com/decentralized-identity/
  cawg-training-and-data-mining-assertion, ``assertion-definition.adoc``): label
  ``cawg.training-mining``, the same map with keys ``cawg.data_mining``, ``cawg.ai_inference``,
  ``cawg.ai_generative_training``, ``cawg.ai_training``; custom keys are allowed (kept as
  evidence, they bind nothing); the text field is spelled ``constraints_info`` there
  (``constraint_info`` in C2PA 1.4): both are read.  "In the absence of additional
  information, ``constrained`` shall be treated as equivalent to ``notAllowed``" (CAWG 1.1
  §3.1) -- which is what we do: we cannot meet constraints we cannot read.
* Labels with a version (``.v2``) or an instance suffix (``__1``) are the same assertion
  (C2PA 2.x §6.2 "Labels", §"Multiple instances").

Reading is done by the maintained library (c2pa-python, ``import c2pa``, the ``documents``
extra; it wraps c2pa-rs): it parses the JUMBF manifest store, validates claim signatures and
hashes and returns the store as JSON.  It is given a Context with every network use off
(``verify.remote_manifest_fetch``, ``verify.ocsp_fetch``, ``core.allowed_network_hosts = []``)
and no trust anchors, so a manifest is at best ``Valid`` (signature and hashes intact, signer
not on a trust list we hold), never fetched, never ``Trusted`` unless trust is configured.

Which manifests speak
---------------------
Every manifest of the store is read: the active manifest (it describes this file) and the
manifests of its ingredients (parentOf, componentOf, inputTo: works this file was made
from or contains), and any other manifest the store holds.  A ``notAllowed`` / ``constrained``
in *any* of them binds (conservative: the reserved work is in, or behind, this file); an
``allowed`` counts only from the active manifest, and only when its validation state is
``Valid`` or ``Trusted`` (an ``Invalid`` manifest -- signature or hash mismatch -- is no
evidence of permission; a reservation needs no valid signature to be a reservation).  A
``use`` that is not one of the three values reads as ``notAllowed`` (conservative), with a
problem.

Decisions as data
-----------------
An entry becomes the term named by its key (``c2pa.ai_training``, ``cawg.ai_training`` ...)
of the signal ``c2pa``, ``False`` for notAllowed / constrained, ``True`` for a counted allowed.
Which purposes a term binds is :data:`TERM_ROWS` (rows for ``crawler.policy.reservation.TERM_PURPOSES``;
this module does not import it).

Presence, fast (the hot path)
-----------------------------
The library is called only when the bytes show a C2PA store or a reference to one
(:func:`find_c2pa`); a file without one costs a few ``bytes.find`` passes (see the README for
the measured times).  Markers, from where c2pa-rs writes a store:

* the JUMBF description box UUID of a C2PA manifest store, ``63327061-0011-0010-8000-
  00AA00389B71`` (its first four bytes are ASCII ``c2pa``): present whole in every container
  that stores the JUMBF uncompressed -- JPEG APP11 (first JPEG XT segment), PNG ``caBX``,
  RIFF (WebP, WAV, AVI) ``C2PA`` chunk, ISO BMFF ``uuid`` box, TIFF/DNG tag 0xCD41, GIF
  ``C2PA_GIF`` application extension (first sub-block), MP3 ID3 ``GEOB``, PDF embedded file
  stream when unfiltered -- or, its UUID damaged, a ``jumd`` box labelled ``c2pa``.  This
  is a *store*: if the library then finds none, something is wrong (damaged, misplaced, or
  the store of an embedded component, such as a signed JPEG inside a PDF) -- undetermined.
* weaker hints, where the store may be encoded or compressed: the strings ``c2pa`` /
  ``C2PA`` (PDF ``/AFRelationship /C2PA_Manifest``, ``application#2Fc2pa``, SVG
  ``c2pa:manifest``, MP3 ``application/x-c2pa-manifest-store``), ``jumb`` (a JPEG XL
  ``brob`` box names its type in clear), ``/ObjStm`` in a PDF (the file specification may be
  in a compressed object stream).  The library decides: no manifest = no statement.
* a remote-manifest reference: XMP ``dcterms:provenance`` with a URL value (C2PA 2.x
  §"External manifests"; a text value is Dublin Core's custody history, not C2PA).
  We do not fetch it (no I/O here; the library's fetch is off): a file that only points to a
  manifest is **undetermined**, the URL kept in the problem.

Text (HTML, JSON, plain text; not SVG) is not scanned: an article about C2PA states nothing
about itself.

Failures (fail closed): a store over :data:`C2PA_BODY_LIMIT` bytes of file; the library not
installed; the library failing (cut file, flipped bytes in the store, unsupported container
with a store in it); a store with more than :data:`MANIFEST_LIMIT` manifests or an ingredient
chain deeper than :data:`INGREDIENT_DEPTH_LIMIT`; a failure code saying part of the store could
not be decoded (:data:`UNREADABLE_CODES`) -- each is ``determined=False`` with a problem.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .embedded import EmbeddedResult, EmbeddedValue
from .model import Statement
from .xmp import container_of, find_xmp

__all__ = [
    "C2PA_BODY_LIMIT",
    "C2PA_SETTINGS",
    "INGREDIENT_DEPTH_LIMIT",
    "MANIFEST_LIMIT",
    "STORE_UUID",
    "TERM_ROWS",
    "UNREADABLE_CODES",
    "C2paPresence",
    "find_c2pa",
    "read_c2pa",
]

SIGNAL = "c2pa"
CHANNEL = "c2pa-manifest"

#: The JUMBF description-box type UUID of a C2PA manifest store (C2PA 2.x, "Manifest Store"
#: JUMBF box: the ASCII "c2pa" followed by the ISO/IEC 19566-5 suffix).
STORE_UUID = bytes.fromhex("6332706100110010800000aa00389b71")
#: Largest file whose store we hand to the library; a larger one with a store is undetermined.
C2PA_BODY_LIMIT = 64 << 20
#: Most manifests read from one store (active + ingredients); more = undetermined.
MANIFEST_LIMIT = 64
#: Deepest ingredient chain followed from the active manifest; deeper = undetermined.
INGREDIENT_DEPTH_LIMIT = 16
#: The library's settings: no network, no trust list (see the module docstring).
C2PA_SETTINGS: Mapping[str, Any] = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "core": {"allowed_network_hosts": []},
}
#: Validation failure codes (C2PA 2.x "Validation", its status codes) saying part of the
#: store could not be decoded or is missing: a reservation may be in that part.
UNREADABLE_CODES = frozenset({
    "claim.missing", "claim.multiple", "claim.cbor.invalid", "claim.malformed",
    "claim.hardBindings.missing", "assertion.missing", "assertion.multipleHardBindings",
    "assertion.cbor.invalid", "assertion.json.invalid", "assertion.undeclared",
    "assertion.inaccessible", "manifest.inaccessible", "manifest.missing",
    "manifest.multipleParents", "manifest.compressed.invalid", "general.error",
})

_ALL = frozenset({"train-ai", "train-genai", "search", "ai-input"})
_TRAIN = frozenset({"train-ai", "train-genai"})
_INPUT = frozenset({"ai-input"})

#: Rows for ``crawler.policy.reservation.TERM_PURPOSES``: (signal, term) -> the purposes a "no" binds.
TERM_ROWS: Mapping[tuple[str, str], frozenset[str]] = {
    # Training of non-generative models (CAWG 1.1 wording; C2PA 1.4 "AI/ML training"): both
    # training purposes -- a train-ai corpus may feed any model, and a generative one is
    # trained on features too (conservative; the same reading as content-usage train-ai).
    ("c2pa", "c2pa.ai_training"): _TRAIN,
    ("c2pa", "cawg.ai_training"): _TRAIN,
    # Training of generative models: both training purposes (as IPTC genai training).
    ("c2pa", "c2pa.ai_generative_training"): _TRAIN,
    ("c2pa", "cawg.ai_generative_training"): _TRAIN,
    # "Patterns, trends, and correlations" extracted from the content: data mining as such,
    # which every purpose we collect for involves, search indexing included (as TDMRep).
    ("c2pa", "c2pa.data_mining"): _ALL,
    ("c2pa", "cawg.data_mining"): _ALL,
    # Input to a trained model to infer a result: ai-input (RAG, grounding, answers).
    ("c2pa", "c2pa.ai_inference"): _INPUT,
    ("c2pa", "cawg.ai_inference"): _INPUT,
}

_LABEL = re.compile(r"^(c2pa|cawg)\.training-mining(?:\.v\d+)?(?:__\d+)?$")
_USES = {"allowed": "allowed", "notallowed": "notAllowed", "constrained": "constrained"}
_RAW_LIMIT = 300
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_STORE_LABEL = re.compile(rb"jumd[\s\S]{17}c2pa\x00")
#: ``dcterms:provenance`` with a URL (attribute, element or rdf:resource form); a text value
#: ("Gift of the artist") is Dublin Core's own use, not a C2PA reference.
_PROVENANCE = re.compile(rb"provenance[^<]{0,200}?(https?://[^\"'<>\s]{1,2000})")


@dataclass(frozen=True, slots=True)
class C2paPresence:
    """What the bytes show: ``kind`` is ``none``, ``hint`` (a marker that may or may not be a
    store), ``store`` (a C2PA manifest store's JUMBF header, at byte ``offset``) or
    ``remote`` (only a reference to a manifest elsewhere, ``url``)."""

    kind: str
    offset: int = -1
    url: str | None = None
    marker: str | None = None


def find_c2pa(body: bytes, content_type: str | None) -> C2paPresence:
    """Where, if anywhere, ``body`` carries C2PA (see "Presence" in the module docstring).

    Cost: one ``find`` of ``c2pa`` over the file, and the XMP packets
    (:func:`crawler.optout.xmp.find_xmp`: headers only, inflated where compressed) searched
    for ``dcterms:provenance``; PDFs and unknown formats are also searched for ``C2PA``,
    ``jumb`` and ``/ObjStm``, and unknown formats for the XMP namespace as a whole.
    """
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    container = container_of(body, content_type)
    if container == "none" and not (mime == "image/svg+xml" or b"<svg" in body[:4096]):
        return C2paPresence("none")
    at = body.find(b"c2pa")
    if at >= 0:
        store = body.find(STORE_UUID, at)
        if store >= 0:
            return C2paPresence("store", store, marker="JUMBF c2pa manifest store box")
        # the store's description box with its label but a damaged type UUID
        label = _STORE_LABEL.search(body)
        if label:
            return C2paPresence("store", label.start(), marker="JUMBF box labelled c2pa")
        return C2paPresence("hint", at, marker="c2pa")
    if container not in ("jpeg", "png", "webp", "gif", "tiff"):
        for marker in (b"C2PA", b"jumb", b"/ObjStm" if container == "pdf" else None):
            at = body.find(marker) if marker else -1
            if at >= 0:
                return C2paPresence("hint", at, marker=marker.decode())
    packets = [body] if container in ("scan", "none") else \
        [p.data for p in find_xmp(body, container).packets]
    for xmp in packets:
        at = xmp.find(b"purl.org/dc/terms/")
        match = _PROVENANCE.search(xmp) if at >= 0 and b"provenance" in xmp else None
        if match:
            url = match.group(1).decode("ascii", "replace")[:_RAW_LIMIT]
            return C2paPresence("remote", at, url=url, marker="XMP dcterms:provenance")
    return C2paPresence("none")


# ------------------------------------------------------------------------------- the library

_CONTEXT: list[Any] = []


def _library() -> Any:
    from crawler.extras import require

    return require("c2pa", "documents", "reading C2PA manifests")


def _context(c2pa: Any) -> Any:
    """One Context with :data:`C2PA_SETTINGS`, made again when no longer valid (a forked
    worker inherits a handle the library has detached)."""
    if not _CONTEXT or not getattr(_CONTEXT[0], "is_valid", False):
        _CONTEXT[:] = [c2pa.Context.from_dict(dict(C2PA_SETTINGS))]
    return _CONTEXT[0]


def _undetermined(container: str, why: str, values: tuple[EmbeddedValue, ...] = (),
                  blocks: tuple[str, ...] = ()) -> EmbeddedResult:
    return EmbeddedResult(container, False, values=values, blocks=blocks,
                          problems=(f"C2PA: {why} (undetermined)",))


def _store_json(body: bytes, mime: str, presence: C2paPresence) -> tuple[dict | None, str]:
    """(the store as a dict, "") or (None, why not) -- None and "" when there is no store."""
    try:
        c2pa = _library()
    except ImportError as exc:            # MissingExtra: the one-line install hint
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 -- a broken install (native library not loadable)
        return None, f"the C2PA library cannot be loaded ({type(exc).__name__}: {exc})"
    fmt = mime if _MIME.match(mime) else None
    try:
        reader = c2pa.Reader(fmt, io.BytesIO(body), None, context=_context(c2pa))
    except c2pa.C2paError.ManifestNotFound:
        if presence.kind == "hint":
            return None, ""
        return None, (f"the {presence.marker} at byte {presence.offset} is not a manifest "
                      "store of this file the library can find (damaged, misplaced, or "
                      "the store of an embedded component)")
    except c2pa.C2paError.RemoteManifest as exc:
        return None, f"the manifest is remote and is not fetched ({exc})"
    except c2pa.C2paError as exc:
        return None, f"the library cannot read the store ({type(exc).__name__}: {exc})"
    except Exception as exc:  # noqa: BLE001 -- a foreign library must not raise on remote bytes
        return None, f"the library failed ({type(exc).__name__}: {exc})"
    try:
        with reader:
            if not reader.is_embedded():
                return None, f"the manifest is remote ({reader.get_remote_url()}): not fetched"
            text = reader.json()
    except Exception as exc:  # noqa: BLE001 -- as above
        return None, f"the library cannot read the store ({type(exc).__name__}: {exc})"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"the library's JSON does not parse ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("manifests"), dict):
        return None, "the library's JSON has no manifests"
    return data, ""


# ------------------------------------------------------------------------------------ entry

def read_c2pa(body: bytes, content_type: str | None) -> EmbeddedResult:
    """The C2PA training-and-mining statements of one file (see the module docstring)."""
    presence = find_c2pa(body, content_type)
    container = container_of(body, content_type)
    if presence.kind == "none":
        return EmbeddedResult(container, True)
    if presence.kind == "remote":
        return _undetermined(container, (
            f"the file names a remote manifest ({presence.marker}: {presence.url}), "
            "which is not fetched"))
    if len(body) > C2PA_BODY_LIMIT:
        return _undetermined(container, (
            f"{presence.marker} at byte {presence.offset} in a file of {len(body)} bytes, "
            f"over the {C2PA_BODY_LIMIT}-byte limit: not read"))
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    data, why = _store_json(body, mime, presence)
    if data is None:
        if not why:
            return EmbeddedResult(container, True)
        return _undetermined(container, why)
    return _read_store(container, data)


def _codes(items: Any) -> list[tuple[str, str]]:
    out = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("code"), str):
            out.append((item["code"], str(item.get("url") or "")))
    return out


def _roles(data: dict, active: str | None) -> tuple[dict[str, str], str | None]:
    """manifest label -> its role ("active", "ingredient (parentOf, depth 1)", "in store"),
    and why the walk could not finish (None when it did)."""
    manifests: dict = data["manifests"]
    roles: dict[str, str] = {}
    if active in manifests:
        roles[active] = "active manifest"
    frontier = [active] if active in manifests else []
    depth = 0
    while frontier:
        depth += 1
        nxt = []
        for label in frontier:
            manifest = manifests[label]
            for ing in (manifest.get("ingredients") or ()) if isinstance(manifest, dict) else ():
                if not isinstance(ing, dict):
                    continue
                child = ing.get("active_manifest")
                if isinstance(child, str) and child in manifests and child not in roles:
                    if depth > INGREDIENT_DEPTH_LIMIT:
                        return roles, (f"ingredient chain deeper than "
                                       f"{INGREDIENT_DEPTH_LIMIT}: not followed")
                    roles[child] = (f"ingredient ({ing.get('relationship') or 'unknown'}, "
                                    f"depth {depth})")
                    nxt.append(child)
        frontier = nxt
    for label in manifests:
        roles.setdefault(label, "in the store, not referenced by the active manifest")
    return roles, None


def _read_store(container: str, data: dict) -> EmbeddedResult:
    manifests: dict = data["manifests"]
    active = data.get("active_manifest")
    if len(manifests) > MANIFEST_LIMIT:
        return _undetermined(container, f"{len(manifests)} manifests in the store, over "
                             f"{MANIFEST_LIMIT}: not read")
    state = str(data.get("validation_state") or "unknown")
    results = data.get("validation_results") or {}
    active_codes = _codes((results.get("activeManifest") or {}).get("failure"))
    ingredient_codes: list[tuple[str, str]] = []
    for delta in results.get("ingredientDeltas") or ():
        if isinstance(delta, dict):
            ingredient_codes += _codes((delta.get("validationDeltas") or {}).get("failure"))
    store_codes = _codes(data.get("validation_status"))
    roles, walk_problem = _roles(data, active if isinstance(active, str) else None)
    blocks = tuple(f"C2PA manifest {label} ({roles.get(label, 'not walked')})"
                   for label in manifests)
    problems: list[str] = []
    if not isinstance(active, str) or active not in manifests:
        problems.append("the store names no active manifest it holds")
    if walk_problem:
        return _undetermined(container, walk_problem, blocks=blocks)
    unreadable = sorted({f"{c} ({u})" if u else c
                         for c, u in active_codes + ingredient_codes + store_codes
                         if c in UNREADABLE_CODES})
    values: list[EmbeddedValue] = []
    constraints: list[str] = []
    terms: dict[str, bool] = {}
    rules: list[str] = []
    for label, manifest in manifests.items():
        if not isinstance(manifest, dict):
            problems.append(f"manifest {label} is not an object")
            continue
        is_active = label == active
        codes = active_codes if is_active else ingredient_codes
        failures = sorted({c for c, _ in codes})
        manifest_state = state if is_active else f"{state} (store)"
        block = (f"C2PA manifest {label} ({roles[label]}; validation {manifest_state}"
                 + (f"; failures: {', '.join(failures)}" if failures else "") + ")")
        counts_allowed = is_active and state in ("Valid", "Trusted")
        for assertion in manifest.get("assertions") or ():
            if not isinstance(assertion, dict):
                continue
            alabel = str(assertion.get("label") or "")
            if not _LABEL.match(alabel):
                continue
            data_ = assertion.get("data")
            entries = data_.get("entries") if isinstance(data_, dict) else None
            if entries is None and isinstance(data_, dict):
                # CAWG 1.0's CDDL omitted the entries map (CAWG 1.1 §3.2 "IMPORTANT"):
                # entries written at the top level are read as entries.
                entries = {k: v for k, v in data_.items()
                           if isinstance(v, dict) and "use" in v} or None
                if entries:
                    problems.append(f"{block}: {alabel} has its entries at the top level "
                                    "(CAWG 1.0 form): read as entries")
            if not isinstance(entries, dict):
                problems.append(f"{block}: {alabel} has no entries map: read as reserving "
                                "everything (conservative)")
                entries = {f"{alabel.split('.', 1)[0]}.data_mining": {
                    "use": "notAllowed", "constraint_info": "(no entries map in the assertion: "
                    f"{json.dumps(data_)[:200]})"}}
            for key, entry in entries.items():
                key = str(key)
                raw_use = entry.get("use") if isinstance(entry, dict) else entry
                use = _USES.get(str(raw_use).strip().lower()) if raw_use is not None else None
                info = None
                if isinstance(entry, dict):
                    info = entry.get("constraint_info", entry.get("constraints_info"))
                raw = str(raw_use)[:_RAW_LIMIT]
                if info is not None:
                    text = str(info)[:_RAW_LIMIT]
                    constraints.append(text)
                    raw += f"; constraint_info: {text}"
                values.append(EmbeddedValue(SIGNAL, block, f"{alabel}/{key}",
                                            "cawg" if alabel.startswith("cawg.") else "c2pa",
                                            f"assertions[{alabel}].data.entries[{key}].use",
                                            raw, key))
                if use is None:
                    problems.append(f"{block}: {alabel} {key} use {raw_use!r} is not allowed, "
                                    "notAllowed or constrained: read as notAllowed "
                                    "(conservative)")
                if use == "allowed":
                    if not counts_allowed:
                        why = ("not the active manifest" if not is_active
                               else f"validation state {state}")
                        problems.append(f"{block}: {alabel} {key} allowed does not count "
                                        f"({why})")
                        continue
                    terms.setdefault(key, True)
                else:
                    terms[key] = False
                rules.append(f"C2PA {alabel} {key} = {raw} ({label}, {roles[label]}, "
                             f"validation {manifest_state})")
    if unreadable:
        return EmbeddedResult(container, False, (), None, tuple(values), tuple(constraints),
                              blocks, tuple(problems) + (
                                  "C2PA: part of the store could not be decoded ("
                                  + "; ".join(unreadable) + ") (undetermined)",))
    statements: tuple[Statement, ...] = ()
    if terms:
        if state not in ("Valid", "Trusted"):
            problems.append(f"the manifest store is {state} "
                            f"({', '.join(sorted({c for c, _ in active_codes})) or 'no codes'})"
                            ": its reservations count, its permissions do not")
        statements = (Statement(SIGNAL, CHANNEL, tuple(sorted(terms.items())),
                                "; ".join(rules), problems=tuple(problems)),)
    return EmbeddedResult(container, True, statements, None, tuple(values),
                          tuple(constraints), blocks, tuple(problems))
