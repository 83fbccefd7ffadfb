"""crawler.optout.c2pa: C2PA / CAWG training-and-mining assertions read from a file's bytes.

Files are signed here with c2pa-python's own Builder (c2pa-rs), with a throw-away ES256 chain
made with ``cryptography`` (root CA + end-entity certificate with the emailProtection EKU,
which c2pa-rs accepts for signing).  One real file is ported from c2pa-python's test fixtures
(tests/data/c2pa/PROVENANCE.md).
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

c2pa = pytest.importorskip("c2pa")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from PIL import Image  # noqa: E402

import crawler.optout.c2pa as c2pa_reader  # noqa: E402
from crawler.extras import MissingExtra  # noqa: E402
from crawler.optout.c2pa import STORE_UUID, TERM_ROWS, find_c2pa, read_c2pa  # noqa: E402
from crawler.policy.reservation import PURPOSES  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "c2pa"
CREATED = {"label": "c2pa.actions", "data": {"actions": [{
    "action": "c2pa.created",
    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"}]}}


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                         decipher_only=False)


def make_chain() -> tuple[bytes, bytes]:
    """(leaf + root PEM, leaf private key PEM)."""
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(days=36500)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polite test root"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "polite-crawler")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(1)
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polite test signer"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "polite-crawler")])
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = leaf.public_bytes(serialization.Encoding.PEM) + \
        root.public_bytes(serialization.Encoding.PEM)
    return pem, key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())


@pytest.fixture(scope="module")
def chain() -> tuple[bytes, bytes]:
    return make_chain()


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


def sign(chain, entries: dict | None, fmt: str = "JPEG", *, label="c2pa.training-mining",
         ingredient: bytes | None = None, remote: str | None = None,
         data: dict | None = None) -> bytes:
    """A small image signed with c2pa-python (no thumbnail), with a training-mining assertion
    holding ``entries`` (none when None), optionally an ingredient file."""
    mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[fmt]
    assertions = [CREATED]
    if entries is not None:
        assertions.append({"label": label, "data": data or {"entries": entries}})
    manifest = {"claim_generator_info": [{"name": "polite-test", "version": "1"}],
                "title": "test", "assertions": assertions}
    certs, key = chain
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=certs, private_key=key, ta_url=None)
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest, ctx) as builder:
        if ingredient is not None:
            builder.add_ingredient(json.dumps({"title": "part.jpg", "relationship": "componentOf"}),
                                   "image/jpeg", io.BytesIO(ingredient))
        if remote is not None:
            builder.set_no_embed()
            builder.set_remote_url(remote)
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(image(fmt)), out)
    return out.getvalue()


@pytest.fixture
def no_library(monkeypatch):
    """Make any use of the library fail the test (proves the fast path never calls it)."""
    def refuse():
        raise AssertionError("the C2PA library was called")
    monkeypatch.setattr(c2pa_reader, "_library", refuse)


# ----------------------------------------------------------------------------- the mapping

def test_term_rows_bind_known_purposes_only():
    assert TERM_ROWS
    for (signal, term), purposes in TERM_ROWS.items():
        assert signal == "c2pa" and term.split(".")[0] in ("c2pa", "cawg")
        assert purposes and purposes <= set(PURPOSES)
    assert TERM_ROWS[("c2pa", "c2pa.ai_inference")] == {"ai-input"}
    assert "search" in TERM_ROWS[("c2pa", "cawg.data_mining")]
    assert "search" not in TERM_ROWS[("c2pa", "cawg.ai_generative_training")]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_not_allowed_ai_training(chain, fmt):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}}, fmt)
    result = read_c2pa(body, f"image/{fmt.lower()}")
    assert result.determined, result.problems
    (stmt,) = result.statements
    assert (stmt.signal, stmt.terms) == ("c2pa", (("c2pa.ai_training", False),))
    (value,) = result.values
    assert value.raw == "notAllowed" and value.term == "c2pa.ai_training"
    # the validation state is in the evidence: intact, signer not on a trust list we hold
    assert "active manifest; validation Valid" in value.block
    assert "signingCredential.untrusted" in value.block
    assert "validation Valid" in stmt.rule


def test_allowed_counts_from_a_valid_active_manifest(chain):
    body = sign(chain, {"c2pa.ai_training": {"use": "allowed"},
                        "c2pa.ai_inference": {"use": "notAllowed"}}, "PNG")
    result = read_c2pa(body, "image/png")
    assert result.determined
    assert result.statements[0].terms == (("c2pa.ai_inference", False),
                                          ("c2pa.ai_training", True))


def test_constrained_is_not_allowed_and_keeps_constraint_info(chain):
    body = sign(chain, {"c2pa.data_mining": {"use": "constrained",
                                             "constraint_info": "licence: mail rights@x"}})
    result = read_c2pa(body, "image/jpeg")
    assert result.statements[0].terms == (("c2pa.data_mining", False),)
    assert result.other_constraints == ("licence: mail rights@x",)
    assert "constraint_info: licence: mail rights@x" in result.values[0].raw


def test_cawg_form_and_unknown_use(chain):
    body = sign(chain, {"cawg.ai_generative_training": {"use": "notAllowed"},
                        "cawg.ai_inference": {"use": "maybe"},
                        "com.example.custom": {"use": "allowed"}},
                label="cawg.training-mining")
    result = read_c2pa(body, "image/jpeg")
    assert result.determined
    assert dict(result.statements[0].terms) == {"cawg.ai_generative_training": False,
                                                "cawg.ai_inference": False,
                                                "com.example.custom": True}
    assert any("'maybe'" in p and "read as notAllowed" in p for p in result.problems)


@pytest.mark.parametrize("data,terms,problem", [
    # CAWG 1.0's CDDL had no entries map: entries at the top level are read
    ({"cawg.ai_training": {"use": "notAllowed"}}, (("cawg.ai_training", False),),
     "top level"),
    # no entries at all: read as reserving data mining (conservative)
    ({"note": "no training"}, (("cawg.data_mining", False),), "no entries map"),
])
def test_assertion_without_entries_map(chain, data, terms, problem):
    body = sign(chain, {}, label="cawg.training-mining", data=data)
    result = read_c2pa(body, "image/jpeg")
    assert result.determined
    assert result.statements[0].terms == terms
    assert any(problem in p for p in result.problems)


def test_manifest_without_training_mining_states_nothing(chain):
    body = sign(chain, None)
    result = read_c2pa(body, "image/jpeg")
    assert result.determined and result.statements == () and result.values == ()
    assert result.blocks and "active manifest" in result.blocks[0]


def test_ingredient_reservation_binds_its_permission_does_not(chain):
    part = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"},
                        "c2pa.ai_inference": {"use": "allowed"}})
    body = sign(chain, None, ingredient=part)
    result = read_c2pa(body, "image/jpeg")
    assert result.determined
    assert result.statements[0].terms == (("c2pa.ai_training", False),)
    assert any("ingredient (componentOf, depth 1)" in v.block for v in result.values)
    assert any("allowed does not count (not the active manifest)" in p
               for p in result.problems)


def test_real_file_with_cawg_assertion():
    """c2pa-python's C_with_CAWG_data.jpg (see tests/data/c2pa/PROVENANCE.md)."""
    result = read_c2pa((DATA / "C_with_CAWG_data.jpg").read_bytes(), "image/jpeg")
    assert result.determined
    assert dict(result.statements[0].terms) == {"cawg.ai_generative_training": False,
                                                "cawg.ai_inference": False}


# ---------------------------------------------------------------------- validation failures

def _flip(body: bytes, offset: int) -> bytes:
    out = bytearray(body)
    out[offset] ^= 0xFF
    return bytes(out)


def _signature_offset(body: bytes) -> int:
    """An offset inside the COSE signature (the claim signature box's payload)."""
    at = body.find(b"c2pa.signature")
    assert at > 0
    return at + 200


def test_invalid_signature_keeps_reservations_drops_permissions(chain):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"},
                        "c2pa.ai_inference": {"use": "allowed"}})
    result = read_c2pa(_flip(body, _signature_offset(body)), "image/jpeg")
    assert result.determined, result.problems
    assert result.statements[0].terms == (("c2pa.ai_training", False),)
    assert "validation Invalid" in result.values[0].block
    assert any("validation state Invalid" in p for p in result.problems)


def test_cut_file_is_undetermined(chain):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    for cut in (body.find(STORE_UUID) + 100, len(body) // 2, len(body) - 10):
        result = read_c2pa(body[:cut], "image/jpeg")
        assert not result.determined and result.statements == ()
        assert result.problems[0].startswith("C2PA: ") and "undetermined" in result.problems[0]


@pytest.mark.parametrize("marker,expected", [
    (b"c2cl", "claim superbox not found"),          # the claim box's JUMBF label
    (b"c2as", "assertion store superbox not found"),
    (b"notAllowed", "assertion.cbor.invalid"),     # inside the assertion's CBOR
])
def test_flipped_bytes_in_the_store_are_undetermined(chain, marker, expected):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    at = body.find(marker, body.find(STORE_UUID) + len(STORE_UUID))
    assert at > 0
    result = read_c2pa(_flip(body, at + 2), "image/jpeg")
    assert not result.determined, result
    assert result.statements == ()
    assert expected in result.problems[-1] and "undetermined" in result.problems[-1]


def test_remote_manifest_reference_is_undetermined(chain, no_library):
    """Only an XMP dcterms:provenance link (Builder.set_no_embed): not fetched, undetermined,
    decided from the bytes alone."""
    body = sign(chain, {"c2pa.ai_training": {"use": "allowed"}},
                remote="http://127.0.0.1:9/manifests/1")
    assert STORE_UUID not in body and b"c2pa" not in body
    assert find_c2pa(body, "image/jpeg").kind == "remote"
    result = read_c2pa(body, "image/jpeg")
    assert not result.determined
    assert "remote manifest" in result.problems[0]
    assert "http://127.0.0.1:9/manifests/1" in result.problems[0]


def _with_xmp(jpeg: bytes, packet: bytes) -> bytes:
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@pytest.mark.parametrize("prop,kind", [
    (b'<dcterms:provenance rdf:resource="https://example.org/m.c2pa"/>', "hint"),
    (b'<dcterms:provenance rdf:resource="https://example.org/m/1"/>', "remote"),
    (b"<dcterms:provenance>https://example.org/m/1</dcterms:provenance>", "remote"),
    # Dublin Core's own use of the property (custody history): not a C2PA reference
    (b"<dcterms:provenance>Gift of the artist, 1920</dcterms:provenance>", "none"),
])
def test_dcterms_provenance_forms(prop, kind, no_library):
    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
              b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
              b' xmlns:dcterms="http://purl.org/dc/terms/">' + prop +
              b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    body = _with_xmp(image("JPEG"), packet)
    presence = find_c2pa(body, "image/jpeg")
    assert presence.kind == kind
    if kind == "remote":
        assert presence.url == "https://example.org/m/1"
        assert not read_c2pa(body, "image/jpeg").determined
    elif kind == "none":
        assert read_c2pa(body, "image/jpeg").determined


def test_remote_manifest_seen_by_the_library_is_undetermined(chain):
    body = sign(chain, {"c2pa.ai_training": {"use": "allowed"}},
                remote="http://127.0.0.1:9/manifest.c2pa")
    assert find_c2pa(body, "image/jpeg").kind == "hint"
    result = read_c2pa(body, "image/jpeg")
    assert not result.determined
    assert "127.0.0.1:9/manifest.c2pa" in result.problems[0], result.problems


def test_library_missing_with_a_manifest_is_undetermined(chain, monkeypatch):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})

    def missing():
        raise MissingExtra("documents", "reading C2PA manifests", "c2pa")
    monkeypatch.setattr(c2pa_reader, "_library", missing)
    result = read_c2pa(body, "image/jpeg")
    assert not result.determined
    assert "needs the [documents] extra" in result.problems[0]


def test_over_the_size_limit_is_undetermined(chain, monkeypatch):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    monkeypatch.setattr(c2pa_reader, "C2PA_BODY_LIMIT", len(body) - 1)
    result = read_c2pa(body, "image/jpeg")
    assert not result.determined and "limit" in result.problems[0]


@pytest.mark.parametrize("limit,value,problem", [
    ("MANIFEST_LIMIT", 1, "2 manifests in the store, over 1"),
    ("INGREDIENT_DEPTH_LIMIT", 0, "ingredient chain deeper than 0"),
])
def test_store_limits_are_undetermined(chain, monkeypatch, limit, value, problem):
    part = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    body = sign(chain, None, ingredient=part)
    assert read_c2pa(body, "image/jpeg").determined
    monkeypatch.setattr(c2pa_reader, limit, value)
    result = read_c2pa(body, "image/jpeg")
    assert not result.determined and problem in result.problems[0]


# --------------------------------------------------------------------------- the fast path

@pytest.mark.parametrize("body,ctype", [
    (image("JPEG"), "image/jpeg"),
    (image("PNG"), "image/png"),
    (image("WEBP"), "image/webp"),
    (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
     "application/pdf"),
    (b"<html><body>C2PA c2pa jumb: an article about Content Credentials</body></html>",
     "text/html"),
    (b"", None),
])
def test_no_manifest_never_calls_the_library(body, ctype, no_library):
    assert find_c2pa(body, ctype).kind == "none"
    result = read_c2pa(body, ctype)
    assert result.determined and result.statements == () and result.problems == ()


def test_hint_without_a_store_is_no_statement():
    """A marker that is not a store (here the word in a JPEG comment): the library looks,
    finds nothing, and the file states nothing."""
    body = image("JPEG")
    body = body[:2] + b"\xff\xfe\x00\x0cabout c2pa" + body[2:]
    assert find_c2pa(body, "image/jpeg").kind == "hint"
    result = read_c2pa(body, "image/jpeg")
    assert result.determined and result.statements == ()


def test_pdf_with_object_streams_is_a_hint():
    body = b"%PDF-1.7\n1 0 obj\n<< /Type /ObjStm /N 1 /First 4 >>\nstream\n...\nendstream"
    assert find_c2pa(body, "application/pdf").kind == "hint"


def test_module_imports_no_scrapy():
    code = ("import sys, crawler.optout.c2pa\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('scrapy', 'twisted', 'c2pa'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_flipped_byte_in_the_store_lifts_a_reservation(chain):
    """Flip one byte at a time across the whole manifest store: the file is either
    undetermined or still reserved for AI training -- never read as unreserved."""
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    start = body.find(b"\xff\xeb")                # the APP11 marker of the first segment
    end = body.find(b"\xff\xdb")                  # the first segment after the store
    assert 0 < start < end
    outcomes = set()
    for at in [*range(start, start + 64), *range(start + 64, end, (end - start) // 60)]:
        result = read_c2pa(_flip(body, at), "image/jpeg")
        reserved = any(s.term("c2pa.ai_training") is False for s in result.statements)
        assert not result.determined or reserved, (at, result)
        outcomes.add((result.determined, reserved))
    assert outcomes == {(False, False), (True, True)}


@pytest.mark.parametrize("ctype", ["image/png", "application/octet-stream", None,
                                   "image/jpeg; charset=binary"])
def test_mislabelled_or_unlabelled_file_is_read_by_its_bytes(chain, ctype):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    result = read_c2pa(body, ctype)
    assert result.determined, result.problems
    assert result.statements[0].terms == (("c2pa.ai_training", False),)


def test_a_closed_library_context_is_made_again(chain):
    body = sign(chain, {"c2pa.ai_training": {"use": "notAllowed"}})
    assert read_c2pa(body, "image/jpeg").determined
    c2pa_reader._CONTEXT[0].close()
    result = read_c2pa(body, "image/jpeg")
    assert result.determined and result.statements[0].terms == (("c2pa.ai_training", False),)
