"""The crawler information page: generated from the policy tables, opt-out examples that the
policy really refuses, a valid Atom change feed with entries only on change, deterministic."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest

from crawler.audit.record import SIGNALS
from crawler.config.job import JobConfig, parse_config
from crawler.optout.htmlmeta import parse_html_head
from crawler.policy.reservation import (
    FAILURE_POLICY,
    PURPOSES,
    SWITCHABLE_SIGNALS,
    TERM_PURPOSES,
    Policy,
    site_file,
)
from crawler.publish.about import ATOM_NS, AboutError, build_about
from crawler.publish.about_content import (
    FAILURE_ROWS_FOR,
    PURPOSE_TEXT,
    SIGNAL_INFO,
    about_content,
    binding_terms,
    contact_url,
    crawler_identity,
    opt_out_examples,
)

UA = "InfoBot/2.0 (+https://example.org/infobot)"
A = f"{{{ATOM_NS}}}"
T1 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
T3 = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)


def _job(**kw: object) -> JobConfig:
    base = JobConfig(path=None, job="info", user_agent=UA, seeds=("https://example.org/",),
                     honor_agents=("GPTBot",))
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


# -- generated from the policy ------------------------------------------------------------

def test_tables_cover_every_signal_and_failure_row() -> None:
    assert set(SIGNAL_INFO) == set(SIGNALS)       # every signal an audit record can name
    assert set(PURPOSE_TEXT) == set(PURPOSES)
    named = {n for names in FAILURE_ROWS_FOR.values() for n in names}
    assert {row[0] for row in FAILURE_POLICY} <= named   # a new kind of row fails this test


@pytest.mark.parametrize("purpose", PURPOSES)
def test_protocols_come_from_term_purposes(purpose: str) -> None:
    doc = about_content(_job(purpose=purpose))
    rows = {p["signal"]: p for p in doc["protocols"]}
    assert list(rows) == [*SWITCHABLE_SIGNALS, "registry", "network"]
    for signal, row in rows.items():
        terms = [t for (s, t) in TERM_PURPOSES if s == signal]
        binding = [t for t in terms if purpose in TERM_PURPOSES[(signal, t)]]
        assert [t.split(" ")[0] for t in row["binds"]] == binding
        assert [t.split(" ")[0] for t in row["not_binding"]] == [
            t for t in terms if t not in binding]
        assert row["failure_policy"] == [list(r) for r in FAILURE_POLICY
                                         if r[0] in FAILURE_ROWS_FOR.get(signal, ())]
    assert doc["failure_policy"] == [list(r) for r in FAILURE_POLICY]


def test_page_shows_identity_protocols_and_failure_policy(tmp_path: Path) -> None:
    page = build_about(_job(), tmp_path, now=T1)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>InfoBot: crawler information</title>" in text
    assert f"<code>{html.escape(UA)}</code>" in text
    assert '<a href="https://example.org/infobot">' in text
    assert '<link rel="alternate" type="application/atom+xml" href="changes.atom"' in text
    assert "<code>GPTBot</code>" in text
    for signal in (*SWITCHABLE_SIGNALS, "registry", "network"):
        assert f"<td>{html.escape(SIGNAL_INFO[signal][0])}</td>" in text
    for row in FAILURE_POLICY:
        assert "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" in text
    assert "User-agent: InfoBot\nDisallow: /" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//(?!example\.org/infobot)""", text), \
        "the page must be self-contained"
    doc = json.loads((tmp_path / "about.json").read_text())
    assert doc["crawler"] == {"name": "InfoBot", "product_token": "InfoBot", "user_agent": UA,
                              "contact": "https://example.org/infobot"}
    assert doc["updated"] == "2026-05-01T12:00:00Z"


def test_switched_off_signal_is_shown_as_not_honoured(tmp_path: Path) -> None:
    doc = about_content(_job(signals=tuple(s for s in SWITCHABLE_SIGNALS if s != "ai-txt")))
    row = next(p for p in doc["protocols"] if p["signal"] == "ai-txt")
    assert row["honoured"] is False
    assert "ai-txt" not in {e["signal"] for e in doc["opt_out"]}


def test_registries_are_named_never_keyed(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REG_KEY_FOR_TEST", "s3cret-value")
    job = parse_config({"job": "j", "user_agent": UA, "seeds": [], "registries": [
        {"type": "http", "url": "https://registry.example/api/v2/query/urls",
         "api_key_env": "REG_KEY_FOR_TEST"}]})
    build_about(job, tmp_path, now=T1)
    for name in ("about.json", "about.html", "changes.atom"):
        data = (tmp_path / name).read_text()
        assert "s3cret-value" not in data and "REG_KEY_FOR_TEST" not in data
    doc = json.loads((tmp_path / "about.json").read_text())
    assert doc["registries"] == [{"type": "http", "name": "registry.example"}]
    assert doc["opt_out"][-1]["signal"] == "registry"


def _denied(policy: Policy, signal: str, where: str, example: str) -> bool:
    """Feed one opt-out example through the real policy, the way the crawler meets it."""
    url = "https://example.com/page"
    if where.startswith("/robots.txt") and signal != "rsl":
        f = site_file("robots.txt", "https://example.com/robots.txt", status=200,
                      body=example.encode())
        return policy.before_fetch(url, {"robots.txt": f}).denied
    if signal == "tdmrep" and where.startswith("/.well-known"):
        f = site_file("tdmrep.json", "https://example.com/.well-known/tdmrep.json",
                      status=200, body=example.encode())
        return policy.before_fetch(url, {"tdmrep.json": f}).denied
    if signal == "ai-txt":
        f = site_file("ai.txt", "https://example.com/ai.txt", status=200, body=example.encode())
        return policy.before_fetch(url, {"ai.txt": f}).denied
    if signal == "rsl":
        line, licence = example.split("\n\n", 1)
        robots = site_file("robots.txt", "https://example.com/robots.txt", status=200,
                           body=f"User-agent: *\nAllow: /\n\n{line}\n".encode())
        (lic_url,) = policy.licence_urls({"robots.txt": robots})
        lic = site_file("rsl", lic_url, status=200, body=licence.encode())
        return policy.before_fetch(url, {"robots.txt": robots}, {lic_url: lic}).denied
    if signal == "payment-required":
        status = int(example.split()[1])
        price = re.search(r"crawler-price: (.*)", example)
        headers = {"crawler-price": [price.group(1)]} if price else {}
        return policy.at_response(url, status, headers).denied
    if signal == "iptc":  # an XMP packet, as the packet scan of an unknown file finds it
        from crawler.optout.embedded import read_embedded

        found = read_embedded(example.encode(), "application/octet-stream")
        return found.determined and policy.at_embedded(url, found).denied
    if signal == "c2pa":  # the assertion in a manifest signed with c2pa-python
        pytest.importorskip("c2pa")
        from crawler.optout.c2pa import read_c2pa
        from tests.optout.test_c2pa import make_chain, sign

        assertion = json.loads(example)
        body = sign(make_chain(), assertion["data"]["entries"], label=assertion["label"])
        found = read_c2pa(body, "image/jpeg")
        return found.determined and policy.at_embedded(url, found).denied
    # header and meta lines: every line on its own must refuse
    results = []
    for line in example.strip().splitlines():
        if line.startswith("<meta"):
            head = parse_html_head(f"<html><head>{line}</head></html>".encode())
            results.append(policy.at_document(url, head, None, None).denied)
        else:
            name, value = line.split(": ", 1)
            verdict, _ = policy.at_headers(url, {name.lower(): [value]}, None)
            results.append(verdict.denied)
    return bool(results) and all(results)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_opt_out_example_is_refused_by_the_policy(purpose: str) -> None:
    policy = Policy(token="InfoBot", user_agent=UA, purpose=purpose)
    examples = opt_out_examples("InfoBot", purpose, SWITCHABLE_SIGNALS)
    shown = {e["signal"] for e in examples}
    # a protocol gets an example exactly when one of its statements binds this purpose
    expected = {s for s in SWITCHABLE_SIGNALS
                if [t for t in binding_terms(s, purpose) if t != "noimageai"]}
    assert shown == expected
    for ex in examples:
        assert _denied(policy, ex["signal"], ex["where"], ex["example"]), ex


def test_contact_url() -> None:
    assert contact_url("Bot/1.0 (+https://e.org/bot)") == "https://e.org/bot"
    assert contact_url("Bot/1.0 (compatible; +http://e.org/b; x)") == "http://e.org/b"
    assert contact_url("Bot/1.0 (mailto:ops@e.org)") == "mailto:ops@e.org"
    assert contact_url("Bot/1.0 (ops@e.org)") == "mailto:ops@e.org"
    assert contact_url("Bot/1.0") is None


def test_identity_from_run_json_and_settings() -> None:
    run = {"user_agent": UA, "purpose": "search", "signals": ["robots", "tdmrep"],
           "honor_agents": ["CCBot"], "registries": ["file /srv/lists/optout.txt"]}
    ident = crawler_identity(run)
    assert ident["token"] == "InfoBot" and ident["signals"] == ["robots", "tdmrep"]
    assert ident["registries"] == [{"type": "file", "name": "optout.txt"}]
    from scrapy.settings import Settings

    settings = Settings({"POLITE_USER_AGENT": UA, "POLITE_PURPOSE": "ai-input",
                         "POLITE_SIGNALS": ["robots"], "POLITE_HONOR_AGENTS": []})
    ident = crawler_identity(settings)
    assert (ident["purpose"], ident["signals"], ident["token"]) == ("ai-input", ["robots"],
                                                                     "InfoBot")


# -- the feed ---------------------------------------------------------------------------------

def _feed(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == f"{A}feed"
    for tag in ("id", "title", "updated"):
        assert (root.findtext(f"{A}{tag}") or "").strip(), f"feed lacks {tag}"
    assert (root.findtext(f"{A}author/{A}name") or "").strip()
    assert root.find(f"{A}link[@rel='self']") is not None
    rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert rfc3339.match(root.findtext(f"{A}updated") or "")
    ids = []
    for entry in root.findall(f"{A}entry"):
        for tag in ("id", "title", "updated", "content"):
            assert (entry.findtext(f"{A}{tag}") or "").strip(), f"entry lacks {tag}"
        assert rfc3339.match(entry.findtext(f"{A}updated") or "")
        ids.append(entry.findtext(f"{A}id"))
    assert len(ids) == len(set(ids))
    return root


def _entries(root: ET.Element) -> list[tuple[str, str]]:
    return [(e.findtext(f"{A}updated") or "", e.findtext(f"{A}summary") or "")
            for e in root.findall(f"{A}entry")]


def test_feed_is_valid_atom_and_grows_only_on_change(tmp_path: Path) -> None:
    build_about(_job(), tmp_path, now=T1)
    first = {n: (tmp_path / n).read_bytes() for n in ("about.html", "about.json",
                                                      "changes.atom")}
    root = _feed(tmp_path / "changes.atom")
    assert _entries(root) == [("2026-05-01T12:00:00Z", "first published")]
    feed_id = root.findtext(f"{A}id")

    build_about(_job(), tmp_path, now=T2)          # nothing changed: nothing rewritten
    assert {n: (tmp_path / n).read_bytes() for n in first} == first

    build_about(_job(signals=tuple(s for s in SWITCHABLE_SIGNALS if s != "rsl"),
                     honor_agents=("GPTBot", "CCBot")), tmp_path, now=T3)
    root = _feed(tmp_path / "changes.atom")
    assert root.findtext(f"{A}id") == feed_id
    assert root.findtext(f"{A}updated") == "2026-07-01T12:00:00Z"
    assert _entries(root) == [
        ("2026-07-01T12:00:00Z", "signals: -rsl; honoured agents: +CCBot"),
        ("2026-05-01T12:00:00Z", "first published")]
    page = (tmp_path / "about.html").read_text()
    assert "2026-07-01T12:00:00Z: signals: -rsl; honoured agents: +CCBot" in page


@pytest.mark.parametrize(("change", "summary"), [
    ({"user_agent": "InfoBot/3.0 (+https://example.org/infobot)"}, "user agent changed"),
    ({"user_agent": "OtherBot/1.0 (+https://example.org/infobot)"},
     "product token: InfoBot -> OtherBot; user agent changed"),
    ({"user_agent": "InfoBot/2.0 (+https://example.net/bot)"},
     "user agent changed; contact changed"),
    ({"purpose": "search"}, "purpose: train-ai -> search"),
    ({"honor_agents": ()}, "honoured agents: -GPTBot"),
])
def test_change_summaries(tmp_path: Path, change: dict[str, object], summary: str) -> None:
    build_about(_job(), tmp_path, now=T1)
    build_about(_job(**change), tmp_path, now=T2)
    assert _entries(_feed(tmp_path / "changes.atom"))[0] == ("2026-06-01T12:00:00Z", summary)


def test_previous_dir_keeps_history_and_output_is_deterministic(tmp_path: Path) -> None:
    build_about(_job(), tmp_path / "published", now=T1)
    build_about(_job(purpose="search"), tmp_path / "new", now=T2,
                previous_dir=tmp_path / "published")
    root = _feed(tmp_path / "new" / "changes.atom")
    assert [s for _, s in _entries(root)] == ["purpose: train-ai -> search", "first published"]
    assert root.findtext(f"{A}id") == _feed(tmp_path / "published" / "changes.atom").findtext(
        f"{A}id")
    build_about(_job(), tmp_path / "again", now=T1)
    for name in ("about.html", "about.json", "changes.atom"):
        assert (tmp_path / "again" / name).read_bytes() == \
            (tmp_path / "published" / name).read_bytes()


def test_base_url_makes_feed_links_absolute(tmp_path: Path) -> None:
    build_about(_job(), tmp_path, now=T1, base_url="https://example.org/infobot/")
    root = _feed(tmp_path / "changes.atom")
    assert root.find(f"{A}link[@rel='self']").get("href") == \
        "https://example.org/infobot/changes.atom"  # type: ignore[union-attr]


def test_unreadable_previous_feed_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "changes.atom").write_text("<feed><entry>", encoding="utf-8")
    with pytest.raises(AboutError, match="cannot read the previous change feed"):
        build_about(_job(), tmp_path, now=T1)


# -- Web Bot Auth: key directory, its signatures, the agent card, serving them ------------------

def _directory_verifier(jwks_text: str):  # the independent verifier, fed only the directory
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms

    keys = {k["kid"]: Ed25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4)))
        for k in json.loads(jwks_text)["keys"]}

    class Keys(HTTPSignatureKeyResolver):
        def resolve_public_key(self, key_id: str):  # type: ignore[no-untyped-def]
            return keys.get(key_id)

    return HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=Keys())


class _Req:
    def __init__(self, url: str) -> None:
        self.method, self.url, self.headers = "GET", url, {}


class _Resp:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.request, self.status_code, self.headers = _Req(url), 200, headers


def test_directory_card_and_history_follow_rotation(tmp_path: Path) -> None:
    from http_message_signatures.exceptions import InvalidSignature

    from crawler.identity.keys import generate_key, load_key, published_keys, rotate_key
    from crawler.publish.about import AGENT_CARD, JWKS_HEADERS_PATH, JWKS_PATH, KEY_HISTORY

    key = tmp_path / "id.pem"
    first = generate_key(key)
    site = tmp_path / "site"
    job = _job(signature_agent="https://crawler.example")
    t1 = T1.timestamp()
    build_about(job, site, now=T1, keys=published_keys(key, now=t1), signers=[first],
                signature_agent=job.signature_agent)
    directory = (site / JWKS_PATH).read_text()
    assert [k["kid"] for k in json.loads(directory)["keys"]] == [first.keyid]
    headers = json.loads((site / JWKS_HEADERS_PATH).read_text())
    assert headers["Content-Type"] == "application/http-message-signatures-directory+json"
    url = f"https://crawler.example/{JWKS_PATH}"
    verifier = _directory_verifier(directory)
    verifier.max_clock_skew = datetime.now(timezone.utc) - T1  # signed at T1: check it as then
    (ok,) = verifier.verify(_Resp(url, headers), expect_tag="http-message-signatures-directory",
                            max_age=None)
    assert ok.parameters["keyid"] == first.keyid
    with pytest.raises(InvalidSignature):  # the directory served from another host
        verifier.verify(_Resp(f"https://elsewhere.example/{JWKS_PATH}", headers),
                        expect_tag="http-message-signatures-directory", max_age=None)
    card = json.loads((site / AGENT_CARD).read_text())
    assert card["client_id"] == f"https://crawler.example/{AGENT_CARD}"
    assert card["jwks_uri"] == url
    assert card["web_bot_auth"]["rfc9309-product-token"] == "InfoBot"
    assert card["contacts"] == ["https://example.org/infobot"]
    for name in (JWKS_PATH, JWKS_HEADERS_PATH, AGENT_CARD, KEY_HISTORY, "about.json"):
        assert '"d"' not in (site / name).read_text()  # public keys only

    # rotate: in the grace period both keys are published (and both sign the directory) ...
    second, _ = rotate_key(key, now=t1, grace=86400)
    old = load_key(tmp_path / f"id.pem.retired-{first.keyid}")
    build_about(job, site, now=datetime.fromtimestamp(t1 + 60, timezone.utc),
                keys=published_keys(key, now=t1 + 60), signers=[old, second],
                signature_agent=job.signature_agent)
    assert [k["kid"] for k in json.loads((site / JWKS_PATH).read_text())["keys"]] == \
        [first.keyid, second.keyid]
    assert json.loads((site / JWKS_HEADERS_PATH).read_text())["Signature-Input"].count(
        "binding") == 2
    # ... after it, only the new one; keys.json keeps both (old checkpoints stay checkable)
    build_about(job, site, now=T3, keys=published_keys(key, now=T3.timestamp()),
                signers=[second], signature_agent=job.signature_agent)
    assert [k["kid"] for k in json.loads((site / JWKS_PATH).read_text())["keys"]] == \
        [second.keyid]
    assert [k["kid"] for k in json.loads((site / KEY_HISTORY).read_text())["keys"]] == \
        [first.keyid, second.keyid]
    doc = json.loads((site / "about.json").read_text())
    assert doc["signing_keys"] == [first.keyid, second.keyid]


def test_serve_about_types_and_fresh_directory_signatures(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    from crawler.identity.keys import generate_key
    from crawler.publish.about import JWKS_HEADERS_PATH, JWKS_PATH
    from crawler.publish.about_server import serve_about

    ident = generate_key(tmp_path / "id.pem")
    site = tmp_path / "site"
    build_about(_job(signature_agent="https://crawler.example"), site, now=T1,
                keys=[ident.jwk], signers=[ident], signature_agent="https://crawler.example")
    server = serve_about(site, signers=[ident], validity=120,
                         authorities=["crawler.example"])
    try:
        assert server.server_address[0] == "127.0.0.1"  # loopback unless told otherwise

        def get(path: str, host: str | None = None):
            req = urllib.request.Request(f"{server.url}/{path}")
            if host:
                req.add_header("Host", host)
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.headers, resp.read()

        headers, body = get(JWKS_PATH)
        assert headers["Content-Type"] == "application/http-message-signatures-directory+json"
        authority = server.url.split("://")[1]
        (ok,) = _directory_verifier(body.decode()).verify(
            _Resp(f"http://{authority}/{JWKS_PATH}", dict(headers.items())),
            expect_tag="http-message-signatures-directory")
        assert ok.parameters["keyid"] == ident.keyid
        assert ok.parameters["expires"] - ok.parameters["created"] == 120
        headers, _ = get(JWKS_PATH, host="crawler.example")
        assert "Signature" in headers
        headers, _ = get(JWKS_PATH, host="forged.example")  # not ours: served, but unsigned
        assert "Signature" not in headers and "Signature-Input" not in headers
        assert get("")[0]["Content-Type"].startswith("text/html")
        assert get("changes.atom")[0]["Content-Type"] == "application/atom+xml"
        assert get("signature-agent-card")[0]["Content-Type"] == "application/json"
        for path in (JWKS_HEADERS_PATH, "../id.pem", "id.pem", ".well-known/"):
            with pytest.raises(urllib.error.HTTPError) as err:
                get(path)
            assert err.value.code == 404
            err.value.close()
    finally:
        server.stop()
