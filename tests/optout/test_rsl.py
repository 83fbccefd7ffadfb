"""RSL 1.0 licence documents (crawler.optout.rsl): digest vectors, XML safety, discovery."""

from __future__ import annotations

import builtins
import dataclasses
import io
import random
from pathlib import Path

import pytest

from crawler.optout import rsl
from crawler.optout.model import Statement
from crawler.optout.robots import parse_robots
from crawler.optout.rsl import (
    RSL_NAMESPACE,
    RSL_SIZE_LIMIT,
    RslDocument,
    RslPayment,
    license_urls_from_link_header,
    license_urls_from_robots,
    parse_rsl,
    statement_for,
)

BASE = "https://ex.com/license.xml"


def doc(contents: str, *, root: str = f'<rsl xmlns="{RSL_NAMESPACE}">') -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{root}\n{contents}\n</rsl>\n'.encode()


def parse(contents: str, **kwargs: str) -> RslDocument:
    return parse_rsl(doc(contents, **kwargs), base_url=BASE)


def terms(document: RslDocument, url: str, **kwargs: object) -> dict[str, bool] | None:
    statement = statement_for(document, url, source=BASE, **kwargs)  # type: ignore[arg-type]
    return None if statement is None else dict(statement.terms)


ALL_FALSE = {"ai-train": False, "ai-input": False, "ai-index": False, "search": False}
ALL_TRUE = {"ai-train": True, "ai-input": True, "ai-index": True, "search": True}


# --- protocols.md §5.5 -------------------------------------------------------------------


def test_vector_1_robots_license_prohibits_training_everywhere() -> None:
    robots = parse_robots(b"License: https://ex.com/license.xml\n\nUser-agent: *\nAllow: /\n")
    assert license_urls_from_robots(robots, "https://ex.com/robots.txt") == (
        ("https://ex.com/license.xml", ()),
    )
    d = parse('<content url="/"><license><prohibits type="usage">ai-train</prohibits>'
              "</license></content>")
    assert d.valid and d.problems == ()
    for url in ("https://ex.com/", "https://ex.com/a/b.html?x=1"):
        statement = statement_for(d, url, source=BASE)
        assert statement == Statement(
            signal="rsl", channel="file", terms=(("ai-train", False),),
            rule='RSL <content url="/"> prohibits usage ai-train (line 3)', source=BASE,
        )


VECTOR_2 = """\
<content url="/news/*" server="https://ls.ex.com"><license><permits type="usage">ai-train</permits>
<payment type="training"><amount currency="USD">10.00</amount></payment></license></content>"""


def test_vector_2_licence_server_and_payment() -> None:
    d = parse(VECTOR_2)
    (content,) = d.contents
    assert content.server == "https://ls.ex.com"
    assert content.payments == (RslPayment("training", "10.00", "USD"),)
    assert content.permits == {"usage": frozenset({"ai-train"})}
    statement = statement_for(d, "https://ex.com/news/a", source=BASE)
    assert statement is not None
    # Training is allowed only after obtaining a token: we hold none, so not now.
    assert statement.term("ai-train") is False
    assert "licence from https://ls.ex.com required" in statement.rule
    assert "training 10.00 USD" in statement.rule and "we hold none" in statement.rule
    # The other usages are not among the permitted ones: not licensed.
    assert dict(statement.terms) == ALL_FALSE
    # "/about -> not covered by this <content>".
    assert statement_for(d, "https://ex.com/about", source=BASE) is None


def test_vector_3_all_free() -> None:
    d = parse('<content url="/open/"><license><permits type="usage">all</permits>'
              '<payment type="free"/></license></content>')
    assert terms(d, "https://ex.com/open/x") == ALL_TRUE
    statement = statement_for(d, "https://ex.com/open/x", source=BASE)
    assert statement is not None
    assert statement.rule == (
        'RSL <content url="/open/"> permits usage all (ai-train, ai-input, ai-index, search) '
        "free (line 3)"
    )
    assert terms(d, "https://ex.com/closed/x") is None


VECTOR_4 = """<content url="/"><license>
  <permits type="usage">ai-train search</permits>
  <permits type="user">non-commercial education</permits>
</license></content>"""


def test_vector_4_user_type() -> None:
    d = parse(VECTOR_4)
    statement = statement_for(d, "https://ex.com/a", source=BASE)  # default: commercial
    assert statement is not None
    assert dict(statement.terms) == ALL_FALSE
    assert "permits user education non-commercial, not commercial" in statement.rule
    assert terms(d, "https://ex.com/a", user_type="education") == {
        "ai-train": True, "ai-input": False, "ai-index": False, "search": True,
    }


def test_vector_5_geo() -> None:
    d = parse('<content url="/"><license><permits type="usage">all</permits>'
              '<prohibits type="geo">US</prohibits></license></content>')
    assert terms(d, "https://ex.com/a", country="US") == ALL_FALSE
    assert terms(d, "https://ex.com/a", country="us") == ALL_FALSE
    assert terms(d, "https://ex.com/a", country="DE") == ALL_TRUE
    # Unknown country: we cannot show that we are outside the US.
    statement = statement_for(d, "https://ex.com/a", source=BASE)
    assert statement is not None and dict(statement.terms) == ALL_FALSE
    assert "country is unknown" in statement.rule


def test_geo_permits_list() -> None:
    d = parse('<content url="/"><license><permits type="usage">search</permits>'
              '<permits type="geo">DE, FR</permits></license></content>')
    assert terms(d, "https://ex.com/a", country="FR")["search"] is True  # type: ignore[index]
    assert terms(d, "https://ex.com/a", country="US") == ALL_FALSE


def test_vector_6_relative_license_line() -> None:
    robots = parse_robots(b"License: /license.xml\nUser-agent: *\nDisallow:\n")
    ((url, problems),) = license_urls_from_robots(robots, "https://ex.com/robots.txt")
    assert url == "https://ex.com/license.xml"
    assert len(problems) == 1 and "not absolute" in problems[0] and "line 1" in problems[0]


def test_vector_7_link_header_on_image() -> None:
    header = '<https://ex.com/l.xml>; rel="license"; type="application/rsl+xml"'
    assert license_urls_from_link_header([header], "https://ex.com/img/a.jpg") == (
        "https://ex.com/l.xml",
    )


# --- selection and evaluation --------------------------------------------------------------


def test_longest_match_wins() -> None:
    d = parse(
        '<content url="/"><license><prohibits type="usage">all</prohibits></license></content>\n'
        '<content url="/news/*"><license><permits type="usage">search ai-index</permits>'
        "</license></content>\n"
        '<content url="/news/free/"><license><permits type="usage">all</permits>'
        "</license></content>"
    )
    assert terms(d, "https://ex.com/about") == ALL_FALSE
    assert terms(d, "https://ex.com/news/x") == {
        "ai-train": False, "ai-input": False, "ai-index": True, "search": True,
    }
    assert terms(d, "https://ex.com/news/free/x") == ALL_TRUE


def test_tie_goes_to_first_content() -> None:
    d = parse(
        '<content url="/a"><license><permits type="usage">search</permits></license></content>'
        '<content url="/a"><license><prohibits type="usage">search</prohibits></license>'
        "</content>"
    )
    assert terms(d, "https://ex.com/a") == {
        "ai-train": False, "ai-input": False, "ai-index": False, "search": True,
    }


def test_empty_url_covers_everything_at_lowest_precedence() -> None:
    d = parse(
        '<content url=""><license><prohibits type="usage">ai-train</prohibits></license>'
        '</content><content url="/x"><license><permits type="usage">ai-train</permits>'
        "</license></content>"
    )
    assert d.contents[0].url_pattern is None
    assert terms(d, "https://any.host/page") == {"ai-train": False}
    assert terms(d, "https://any.host/x") == {
        "ai-train": True, "ai-input": False, "ai-index": False, "search": False,
    }


def test_missing_url_attribute_noted() -> None:
    d = parse('<content><license><prohibits type="usage">ai-train</prohibits></license>'
              "</content>")
    assert any("without url" in p for p in d.problems)
    assert terms(d, "https://ex.com/z") == {"ai-train": False}


@pytest.mark.parametrize(
    ("content_url", "target", "covered"),
    [
        ("https://ex.com/news/*", "https://ex.com/news/a", True),
        ("https://ex.com/news/*", "https://ex.com/about", False),
        ("https://ex.com/news/*", "https://other.com/news/a", False),
        ("https://ex.com/news/*", "http://ex.com/news/a", False),
        ("https://EX.com:443/news/", "https://ex.com/news/a", True),
        ("https://ex.com:8443/", "https://ex.com/a", False),
        ("https://ex.com", "https://ex.com/anything", True),
        ("https://ex.com/a?b=1", "https://ex.com/a?b=1&c", True),
        ("/images/*.jpg$", "https://ex.com/images/x.jpg", True),
        ("/images/*.jpg$", "https://ex.com/images/x.jpg?s=1", False),
        ("*.pdf", "https://ex.com/docs/a.pdf", True),
        ("news/", "https://ex.com/news/", False),  # not a path: matches nothing
    ],
)
def test_content_url_matching(content_url: str, target: str, covered: bool) -> None:
    d = parse(f'<content url="{content_url}"><license><prohibits type="usage">ai-train'
              "</prohibits></license></content>")
    assert (terms(d, target) is not None) is covered


def test_ai_all_expansion_and_prohibition_beats_permission() -> None:
    d = parse('<content url="/"><license><permits type="usage">all</permits>'
              '<prohibits type="usage">ai-all</prohibits></license></content>')
    statement = statement_for(d, "https://ex.com/", source=BASE)
    assert statement is not None
    assert dict(statement.terms) == {
        "ai-train": False, "ai-input": False, "ai-index": False, "search": True,
    }
    assert "prohibits usage ai-all (ai-train, ai-input, ai-index)" in statement.rule
    assert "permits usage all (search) free" in statement.rule


def test_only_prohibits_leaves_other_terms_unknown() -> None:
    d = parse('<content url="/"><license><prohibits type="usage">ai-input</prohibits>'
              "</license></content>")
    assert terms(d, "https://ex.com/") == {"ai-input": False}


def test_no_terms_decided_gives_no_statement() -> None:
    d = parse('<content url="/"><license><legal type="warranty">ownership</legal></license>'
              "</content>")
    assert d.valid
    assert terms(d, "https://ex.com/") is None


def test_server_without_permits_requires_licence_for_everything() -> None:
    d = parse('<content url="/" server="https://ls.ex.com"><license>'
              '<legal type="disclaimer">as-is</legal></license></content>')
    statement = statement_for(d, "https://ex.com/", source=BASE)
    assert statement is not None and dict(statement.terms) == ALL_FALSE
    assert "licence from https://ls.ex.com required; we hold none" in statement.rule


def test_server_without_license_element() -> None:
    d = parse('<content url="/" server="/ls"/>')
    assert d.contents[0].server == "https://ex.com/ls"
    assert any("server" in p for p in d.problems)
    assert terms(d, "https://ex.com/") == ALL_FALSE


def test_server_makes_even_free_permission_a_licence() -> None:
    # "if this attribute is present, clients must obtain a license for this asset, even when
    # the license is free."
    d = parse('<content url="/" server="https://ls.ex.com"><license>'
              '<permits type="usage">search</permits><payment type="free"/></license></content>')
    assert terms(d, "https://ex.com/")["search"] is False  # type: ignore[index]


@pytest.mark.parametrize(
    ("payment", "free"),
    [
        ('<payment type="free"/>', True),
        ('<payment type="attribution"/>', True),
        ("<payment/>", True),
        ('<payment><amount currency="USD">0.00</amount></payment>', True),
        ('<payment><amount currency="USD">1.50</amount></payment>', False),
        ('<payment type="crawl"><amount currency="USD">0.015</amount></payment>', False),
        ('<payment type="subscription"><standard>https://ex.com/rates</standard></payment>',
         False),
        ('<payment type="contribution"/>', False),
        ("", True),
    ],
)
def test_payment_types(payment: str, free: bool) -> None:
    d = parse(f'<content url="/"><license><permits type="usage">ai-input</permits>{payment}'
              "</license></content>")
    assert terms(d, "https://ex.com/")["ai-input"] is free  # type: ignore[index]


def test_payment_without_permits_requires_licence() -> None:
    d = parse('<content url="/"><license><payment type="crawl"><amount currency="USD">0.01'
              "</amount></payment></license></content>")
    statement = statement_for(d, "https://ex.com/", source=BASE)
    assert statement is not None and dict(statement.terms) == ALL_FALSE
    assert "licence required (payment: crawl 0.01 USD); we hold none" in statement.rule


def test_alternative_licences() -> None:
    d = parse(
        '<content url="/">'
        '<license><permits type="usage">search</permits><payment type="free"/></license>'
        '<license><permits type="usage">ai-train</permits><payment type="training">'
        '<amount currency="EUR">5</amount></payment></license>'
        '<license><permits type="usage">ai-input</permits>'
        '<permits type="user">non-commercial</permits></license>'
        "</content>"
    )
    (content,) = d.contents
    assert len(content.licenses) == 3
    assert content.permits["usage"] == {"search", "ai-train", "ai-input"}
    assert terms(d, "https://ex.com/") == {
        "ai-train": False, "ai-input": False, "ai-index": False, "search": True,
    }
    assert terms(d, "https://ex.com/", user_type="non-commercial")["ai-input"] is True  # type: ignore[index]


def test_licence_for_other_users_makes_undecided_terms_not_licensed() -> None:
    d = parse(
        '<content url="/">'
        '<license><permits type="usage">ai-train</permits>'
        '<permits type="user">non-commercial</permits></license>'
        '<license><prohibits type="usage">ai-input</prohibits></license>'
        "</content>"
    )
    statement = statement_for(d, "https://ex.com/", source=BASE)
    assert statement is not None and dict(statement.terms) == ALL_FALSE
    assert "prohibits usage ai-input" in statement.rule
    assert "permits user non-commercial, not commercial: not licensed" in statement.rule
    assert terms(d, "https://ex.com/", user_type="non-commercial") == {
        "ai-train": True, "ai-input": False, "ai-index": False, "search": False,
    }


def test_prohibition_in_any_licence_wins() -> None:
    d = parse(
        '<content url="/"><license><permits type="usage">all</permits></license>'
        '<license><prohibits type="usage">ai-train</prohibits></license></content>'
    )
    assert terms(d, "https://ex.com/")["ai-train"] is False  # type: ignore[index]


def test_user_prohibits() -> None:
    d = parse('<content url="/"><license><permits type="usage">all</permits>'
              '<prohibits type="user">commercial</prohibits></license></content>')
    assert terms(d, "https://ex.com/") == ALL_FALSE
    assert terms(d, "https://ex.com/", user_type="personal") == ALL_TRUE


def test_statement_channel_can_be_replaced() -> None:
    d = parse('<content url="/"><license><prohibits type="usage">all</prohibits></license>'
              "</content>")
    statement = statement_for(d, "https://ex.com/", source=BASE)
    assert statement is not None and statement.channel == "file"
    assert dataclasses.replace(statement, channel="link").channel == "link"


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ai-train search",
        "ai-train,search",
        "ai-train, search",
        " \n\tai-train\n  search\n",
        "AI-Train SEARCH",
        "ai-train,,search,",
    ],
)
def test_comma_and_space_separated_values(text: str) -> None:
    d = parse(f'<content url="/"><license><permits type="usage">{text}</permits></license>'
              "</content>")
    assert d.contents[0].permits["usage"] == {"ai-train", "search"}
    assert not d.problems


def test_legacy_and_unknown_values_noted() -> None:
    d = parse('<content url="/"><license><prohibits type="usage">train-ai, ai-use, dance'
              '</prohibits><permits type="user">robots</permits></license></content>')
    assert d.contents[0].prohibits["usage"] == {"ai-train", "ai-input", "dance"}
    assert any("pre-1.0 usage 'train-ai'" in p for p in d.problems)
    assert any("unknown usage 'dance'" in p for p in d.problems)
    assert any("unknown user type 'robots'" in p for p in d.problems)


def test_permits_without_type_read_as_usage() -> None:
    d = parse('<content url="/"><license><prohibits>ai-train</prohibits></license></content>')
    assert d.contents[0].prohibits == {"usage": frozenset({"ai-train"})}
    assert any("without type" in p for p in d.problems)


def test_geo_codes_upper_cased() -> None:
    d = parse('<content url="/"><license><prohibits type="geo">us, cn</prohibits></license>'
              "</content>")
    assert d.contents[0].prohibits["geo"] == {"US", "CN"}


def test_full_document_from_the_guide() -> None:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<rsl xmlns="{RSL_NAMESPACE}">
  <content url="/news/*" lastmod="2026-03-27T15:00:00Z">
    <schema>https://publisher.example.com/schema/news.jsonld</schema>
    <terms>https://publisher.example.com/licensing-terms</terms>
    <copyright type="organization" contactEmail="l@publisher.example.com">Example</copyright>
    <license>
      <permits type="usage">search</permits>
      <permits type="user">commercial non-commercial education government personal</permits>
      <legal type="warranty">ownership authority</legal>
      <legal type="disclaimer">as-is no-liability</legal>
    </license>
  </content>
</rsl>""".encode()
    d = parse_rsl(body, base_url=BASE)
    assert d.valid and not d.problems
    assert terms(d, "https://publisher.example.com/news/x") == {
        "ai-train": False, "ai-input": False, "ai-index": False, "search": True,
    }


# --- namespaces ----------------------------------------------------------------------------

BODY = '<content url="/"><license><prohibits type="usage">ai-train</prohibits></license></content>'


def test_missing_namespace_is_read_with_a_problem() -> None:
    d = parse(BODY, root="<rsl>")
    assert d.valid and d.namespace == ""
    assert "no namespace" in d.problems[0]
    assert terms(d, "https://ex.com/") == {"ai-train": False}


def test_other_namespace_is_read_with_a_problem() -> None:
    d = parse(BODY, root='<rsl xmlns="https://rslstandard.org/rsl/draft">')
    assert d.valid and "https://rslstandard.org/rsl/draft" in d.problems[0]
    assert terms(d, "https://ex.com/") == {"ai-train": False}


def test_prefixed_namespace() -> None:
    body = (f'<r:rsl xmlns:r="{RSL_NAMESPACE}"><r:content url="/"><r:license>'
            '<r:prohibits type="usage">ai-train</r:prohibits></r:license></r:content></r:rsl>')
    d = parse_rsl(body.encode(), base_url=BASE)
    assert d.valid and not d.problems
    assert terms(d, "https://ex.com/") == {"ai-train": False}


def test_foreign_namespace_elements_ignored() -> None:
    d = parse('<content url="/" xmlns:x="urn:x"><license>'
              '<x:prohibits type="usage">all</x:prohibits>'
              '<permits type="usage">search</permits>'
              '<x:wrap><prohibits type="usage">search</prohibits></x:wrap>'
              "</license><x:license><prohibits type=\"usage\">all</prohibits></x:license>"
              "</content>")
    assert terms(d, "https://ex.com/") == {
        "ai-train": False, "ai-input": False, "ai-index": False, "search": True,
    }


def test_misplaced_elements_ignored() -> None:
    d = parse('<license><prohibits type="usage">all</prohibits></license>'
              '<wrapper><content url="/"><license><prohibits type="usage">all</prohibits>'
              "</license></content></wrapper>"
              '<content url="/"><permits type="usage">all</permits>'
              "<license><content url=\"/x\"/></license></content>")
    assert len(d.contents) == 1
    assert d.contents[0].licenses[0].permits == {}
    assert terms(d, "https://ex.com/") is None


def test_wrong_root_is_invalid() -> None:
    d = parse_rsl(b'<rss xmlns:rsl="https://rslstandard.org/rsl"><channel/></rss>',
                  base_url=BASE)
    assert not d.valid and d.contents == ()
    assert "not <rsl>" in d.problems[-1]


def test_no_content_is_valid_but_noted() -> None:
    d = parse("")
    assert d.valid and d.contents == ()
    assert any("no <content>" in p for p in d.problems)


# --- XML safety ----------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>
<permits type="usage">&lol9;</permits></license></content></rsl>"""


def xxe(target: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE rsl [<!ENTITY xxe SYSTEM "{target}">]>\n'
            f'<rsl xmlns="{RSL_NAMESPACE}"><content url="/"><license>'
            '<permits type="usage">&xxe;</permits></license></content></rsl>').encode()


def param_entity(target: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE rsl [<!ENTITY % p SYSTEM "{target}"> %p;]>\n'
            f'<rsl xmlns="{RSL_NAMESPACE}"/>').encode()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("ai-train search TOP-SECRET-MARKER", encoding="utf-8")
    return path


@pytest.fixture
def no_file_access(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"file access attempted: {args!r}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)


def bombs(secret: Path) -> dict[str, bytes]:
    return {
        "billion laughs": BILLION_LAUGHS,
        "xxe passwd": xxe("file:///etc/passwd"),
        "xxe local file": xxe(secret.as_uri()),
        "xxe http": xxe("http://127.0.0.1:9/evil"),
        "parameter entity": param_entity(secret.as_uri()),
        "doctype only": f'<!DOCTYPE rsl SYSTEM "{secret.as_uri()}"><rsl/>'.encode(),
        "lower-case doctype": b"<!doctype rsl><rsl/>",
        "utf-16 doctype": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]>'
                          "<rsl/>".encode("utf-16"),
    }


@pytest.mark.parametrize(
    "name",
    ["billion laughs", "xxe passwd", "xxe local file", "xxe http", "parameter entity",
     "doctype only", "lower-case doctype", "utf-16 doctype"],
)
def test_dtd_refused_before_parsing(name: str, secret_file: Path, no_file_access: None) -> None:
    body = bombs(secret_file)[name]
    d = parse_rsl(body, base_url=BASE)
    assert not d.valid and d.contents == ()
    assert any("refused" in p for p in d.problems)
    assert "TOP-SECRET" not in repr(d)
    assert statement_for(d, "https://ex.com/", source=BASE) is None


@pytest.mark.parametrize(
    "name",
    ["billion laughs", "xxe passwd", "xxe local file", "xxe http", "parameter entity",
     "doctype only", "utf-16 doctype"],
)
def test_expat_handlers_refuse_dtd_even_without_the_byte_check(
    name: str, secret_file: Path, no_file_access: None
) -> None:
    # Second line of defence: the parser itself aborts on any DTD content.
    problems: list[str] = []
    assert rsl._read_xml(bombs(secret_file)[name], problems) is None
    assert len(problems) == 1 and "refused" in problems[0]
    assert "TOP-SECRET" not in problems[0]


def test_undefined_entity_is_malformed() -> None:
    d = parse('<content url="/"><license><permits type="usage">&foo;</permits></license>'
              "</content>")
    assert not d.valid and "malformed XML" in d.problems[-1]


def test_character_references_are_fine() -> None:
    d = parse('<content url="/&#x6E;ews"><license><prohibits type="usage">ai&#45;train'
              "</prohibits></license></content>")
    assert d.valid and d.contents[0].url_raw == "/news"
    assert terms(d, "https://ex.com/news/1") == {"ai-train": False}


# --- malformed and oversized documents -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"not xml at all",
        b"<html><body><p>Hello<br></body></html>",
        doc(BODY)[:-20],
        b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/"></rsl>',
        b"<?xml version='1.0' encoding='x-no-such-encoding'?><rsl/>",
        b'<r:rsl xmlns="https://rslstandard.org/rsl"/>',  # unbound prefix
        b"\xff\xfe\x00garbage",
        b"<rsl>\xff\xfe</rsl>",
    ],
)
def test_malformed_documents_are_invalid(body: bytes) -> None:
    d = parse_rsl(body, base_url=BASE)
    assert not d.valid and d.contents == () and d.problems
    assert statement_for(d, "https://ex.com/", source=BASE) is None


def test_two_megabyte_document_is_not_parsed() -> None:
    padding = "<!-- " + "x" * (2 * 1024 * 1024) + " -->"
    body = doc(BODY + padding)
    assert len(body) > 2_000_000
    d = parse_rsl(body, base_url=BASE)
    assert not d.valid and d.size == len(body)
    assert "exceeds" in d.problems[0]


def test_size_limit_boundary() -> None:
    body = doc(BODY)
    padded = body + b" " * (RSL_SIZE_LIMIT - len(body))
    assert parse_rsl(padded, base_url=BASE).valid
    assert not parse_rsl(padded + b" ", base_url=BASE).valid


def test_deep_nesting_does_not_crash() -> None:
    inner = "<x>" * 20_000 + "</x>" * 20_000
    d = parse(f'<content url="/">{inner}<license><prohibits type="usage">all</prohibits>'
              "</license></content>")
    assert d.valid and terms(d, "https://ex.com/") == ALL_FALSE


def test_many_problems_capped() -> None:
    values = " ".join(f"v{i}" for i in range(300))
    d = parse(f'<content url="/"><license><permits type="usage">{values}</permits></license>'
              "</content>")
    assert len(d.problems) == rsl.MAX_PROBLEMS + 1
    assert "more problems" in d.problems[-1]


@pytest.mark.parametrize("seed", range(60))
def test_garbage_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [b"<rsl>", b"</rsl>", b"<content url='/'>", b"</content>", b"<license>",
              b"</license>", b"<permits type='usage'>", b"</permits>", b"all", b"&amp;",
              b"<payment>", b"<amount>", b"</amount>", b"</payment>", b"\xff", b"<", b">",
              b'xmlns="https://rslstandard.org/rsl"', b"<?xml?>", b"&#0;", b"]]>"]
    body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
    if seed % 3 == 0:
        body = rng.randbytes(rng.randrange(0, 300))
    d = parse_rsl(body, base_url=BASE)
    assert isinstance(d.problems, tuple)
    result = statement_for(d, "https://ex.com/a", source=BASE)
    assert result is None or isinstance(result, Statement)


def test_programmer_errors_raise() -> None:
    with pytest.raises(TypeError):
        parse_rsl("<rsl/>", base_url=BASE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statement_for(None, "https://ex.com/", source=BASE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        license_urls_from_robots(None, "https://ex.com/robots.txt")  # type: ignore[arg-type]


def test_results_are_frozen() -> None:
    d = parse(BODY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.valid = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.contents[0].permits["usage"] = frozenset()  # type: ignore[index]


# --- discovery: robots.txt ------------------------------------------------------------------


def test_robots_license_lines() -> None:
    robots = parse_robots(
        b"License: https://ex.com/a.xml\n"
        b"User-agent: *\nLicense: https://cdn.other.com/b.xml\nDisallow: /x\n"
        b"License: //cdn.other.com/c.xml\n"
        b"License: https://ex.com/a.xml\n"
        b"License: file:///etc/passwd\n"
        b"License: javascript:alert(1)\n"
        b"License:\n"
        b"License: https://ex.com/l\xc3\xa9 x.xml\n"
        b"License: https://b\xc3\xbccher.example/l.xml\n"
    )
    found = license_urls_from_robots(robots, "https://ex.com/robots.txt")
    assert [url for url, _ in found] == [
        "https://ex.com/a.xml",
        "https://cdn.other.com/b.xml",
        "https://cdn.other.com/c.xml",
        "https://ex.com/l%C3%A9%20x.xml",
        "https://xn--bcher-kva.example/l.xml",
    ]
    assert found[0][1] == () and found[1][1] == ()
    assert "not absolute" in found[2][1][0]


def test_robots_without_license_lines() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /\nSitemap: https://ex.com/s.xml\n")
    assert license_urls_from_robots(robots, "https://ex.com/robots.txt") == ()


# --- discovery: Link header ------------------------------------------------------------------

T = 'type="application/rsl+xml"'


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([f'<https://ex.com/l.xml>; rel="license"; {T}'], ("https://ex.com/l.xml",)),
        # several links in one value, one of them ours
        ([f'<https://ex.com/a>; rel="next", <https://ex.com/l.xml>; rel="license"; {T}'],
         ("https://ex.com/l.xml",)),
        # several header lines
        (['<https://ex.com/a>; rel="next"', f'</l.xml>; rel=license; {T}'],
         ("https://ex.com/l.xml",)),
        # rel with several values, any case; token (unquoted) values
        ([f'<https://ex.com/l.xml>; rel="nofollow LICENSE"; {T}'], ("https://ex.com/l.xml",)),
        (["<https://ex.com/l.xml>; rel=license; type=application/rsl+xml"],
         ("https://ex.com/l.xml",)),
        # type with parameters, upper case; spaces around '='
        (['<https://ex.com/l.xml> ; rel = "license" ; type="Application/RSL+XML; v=1"'],
         ("https://ex.com/l.xml",)),
        # commas and semicolons inside quoted strings and inside <...>
        ([f'<https://ex.com/l.xml?a=1,2;b>; title="a, b; c"; rel="license"; {T}'],
         ("https://ex.com/l.xml?a=1,2;b",)),
        # relative target resolved against the response URL
        ([f'<../l.xml>; rel="license"; {T}'], ("https://ex.com/l.xml",)),
        # not ours: other rel, other or missing type
        (['<https://ex.com/l.xml>; rel="license"'], ()),
        (['<https://ex.com/cc>; rel="license"; type="text/html"'], ()),
        ([f'<https://ex.com/l.xml>; rel="licensed"; {T}'], ()),
        # the first rel wins (RFC 8288 §3.3)
        ([f'<https://ex.com/l.xml>; rel="next"; rel="license"; {T}'], ()),
        # non-http targets dropped
        ([f'<file:///etc/passwd>; rel="license"; {T}'], ()),
        # duplicates once
        ([f'<https://ex.com/l.xml>; rel="license"; {T}'] * 2, ("https://ex.com/l.xml",)),
        # malformed pieces skipped
        ([f'garbage, <https://ex.com/l.xml>; rel="license"; {T}, <unterminated'],
         ("https://ex.com/l.xml",)),
        ([f'<https://ex.com/l.xml>; rel="license"; {T}; title="unterminated'],
         ("https://ex.com/l.xml",)),
        ([""], ()),
        ([], ()),
    ],
)
def test_link_header(values: list[str], expected: tuple[str, ...]) -> None:
    assert license_urls_from_link_header(values, "https://ex.com/img/a.jpg") == expected


def test_link_header_accepts_bytes_and_single_string() -> None:
    value = f'<https://ex.com/l.xml>; rel="license"; {T}'
    assert license_urls_from_link_header([value.encode()], BASE) == ("https://ex.com/l.xml",)
    assert license_urls_from_link_header(value, BASE) == ("https://ex.com/l.xml",)


@pytest.mark.parametrize("seed", range(30))
def test_link_header_garbage_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = '<>;,="\\ \tabrel=licensetype/application/rsl+xml'
    value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
    result = license_urls_from_link_header([value], BASE)
    assert isinstance(result, tuple)


@pytest.mark.parametrize(("url", "train"), [("https://ex.com/~joe/a", False),
                                           ("https://ex.com/%7Ejoe/a", True)])
def test_longest_content_in_either_reading_of_percent_encoding_most_restrictive(url, train):
    """/~joe/a: Google's raw reading selects <content url="/">, RFC 9309's the /%7Ejoe/ one:
    the more restrictive terms apply. /%7Ejoe/a: both readings select /%7Ejoe/."""
    document = parse(
        '<content url="/"><license><prohibits type="usage">ai-train</prohibits></license>'
        '</content>'
        '<content url="/%7Ejoe/"><license><permits type="usage">all</permits>'
        '<payment type="free"/></license></content>')
    got = terms(document, url)
    assert got is not None and got["ai-train"] is train
