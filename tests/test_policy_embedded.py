"""Policy.at_embedded and merge_embedded: what a file says about itself, as a verdict."""

from __future__ import annotations

import pytest

from crawler.optout.embedded import TERM_ROWS, EmbeddedResult, read_embedded
from crawler.optout.model import Statement
from crawler.optout.tdmrep import TdmStatement, TdmValue
from crawler.policy.reservation import (
    PURPOSES,
    SWITCHABLE_SIGNALS,
    TERM_PURPOSES,
    Policy,
    embedded_record,
    merge_embedded,
)
from tests.documents_fixtures import dmi, tdm_xmp, xmp_packet

URL = "https://example.org/file"
UA = "T/1 (+https://x.org)"
DMI_VALUES = ["DMI-UNSPECIFIED", "DMI-ALLOWED", "DMI-PROHIBITED-AIMLTRAINING",
              "DMI-PROHIBITED-GENAIMLTRAINING", "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
              "DMI-PROHIBITED", "DMI-PROHIBITED-SEECONSTRAINT",
              "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR", "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"]


def policy(purpose: str = "train-ai", **kw) -> Policy:
    return Policy(token="T", user_agent=UA, purpose=purpose, **kw)


def scan(packet: bytes) -> EmbeddedResult:
    """The packet as the scan of an unknown binary finds it (the real reader)."""
    found = read_embedded(b"\x00\x01" + packet + b"\x00", "application/octet-stream")
    assert found.determined, found.problems
    return found


def test_iptc_rows_are_in_the_table_and_switchable():
    assert "iptc" in SWITCHABLE_SIGNALS
    for key, purposes in TERM_ROWS.items():
        assert TERM_PURPOSES[key] == purposes


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("value", DMI_VALUES)
def test_each_dmi_value_for_each_purpose(value, purpose):
    verdict = policy(purpose).at_embedded(URL, scan(dmi(value)), content_type="image/jpeg")
    term = value.lower()
    binds = purpose in TERM_PURPOSES.get(("iptc", term), frozenset())
    prohibition = term.startswith("dmi-prohibited")
    (ev,) = verdict.checks
    assert (ev.signal, ev.channel, ev.source) == ("iptc", "xmp", URL)
    assert value in ev.rule
    if binds and prohibition:
        assert verdict.denied and ev.outcome == "deny"
    else:
        assert not verdict.denied
        assert ev.outcome == ("allow" if binds else "unset")


def test_dmi_readings_of_the_notes():
    # plain "Prohibited" covers search; "except search engine indexing" does not
    assert policy("search").at_embedded(URL, scan(dmi("DMI-PROHIBITED"))).denied
    assert not policy("search").at_embedded(
        URL, scan(dmi("DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"))).denied
    # generative-only prohibition binds train-ai too (conservative)
    assert policy("train-ai").at_embedded(
        URL, scan(dmi("DMI-PROHIBITED-GENAIMLTRAINING"))).denied
    # AI/ML training does not bind ai-input
    assert not policy("ai-input").at_embedded(
        URL, scan(dmi("DMI-PROHIBITED-AIMLTRAINING"))).denied


def test_undetermined_file_is_refused_as_network_embedded():
    found = EmbeddedResult("jpeg", False, problems=("JPEG: segment past the end (cut)",))
    verdict = policy().at_embedded(URL, found)
    (reason,) = verdict.reasons
    assert (reason.signal, reason.channel, reason.outcome) == ("network", "embedded", "deny")
    assert "undetermined" in reason.rule and reason.problems == found.problems


def test_a_body_not_received_completely_is_refused_whatever_it_says():
    verdict = policy().at_embedded(URL, scan(dmi("DMI-ALLOWED")), complete=False)
    assert verdict.denied
    assert [(r.signal, r.channel) for r in verdict.reasons] == [("network", "embedded")]


def test_switched_off_iptc_is_not_judged_but_undetermined_still_refuses():
    off = policy(signals=tuple(s for s in SWITCHABLE_SIGNALS if s != "iptc"))
    verdict = off.at_embedded(URL, scan(dmi("DMI-PROHIBITED")))
    assert not verdict.denied and verdict.checks == ()
    assert off.reads_embedded()  # tdmrep is still on: the file is still read
    assert off.at_embedded(URL, EmbeddedResult("png", False)).denied
    none = policy(signals=("robots",))
    assert not none.reads_embedded()


def test_tdmrep_in_a_file_is_the_last_step():
    # tdmrep.json said 0 (not reserved): the file's 1 supersedes it
    file0 = TdmStatement("file", TdmValue.NOT_RESERVED, None, "tdmrep.json rule #0", "0", ())
    verdict = policy().at_embedded(URL, scan(tdm_xmp("1")), file0)
    (reason,) = verdict.reasons
    assert (reason.signal, reason.channel) == ("tdmrep", "xmp")
    assert reason.rule.endswith(": 1")
    # a header 1 lowered by the file's 0: allowed, the downgrade noted
    header1 = TdmStatement("header", TdmValue.RESERVED, None, "tdm-reservation header", "1", ())
    verdict = policy().at_embedded(URL, scan(tdm_xmp("0")), None, header1)
    (ev,) = verdict.checks
    assert not verdict.denied and "downgrade" in ev.detail
    # TDMRep switched off: not judged
    off = policy(signals=("robots", "iptc"))
    assert not off.at_embedded(URL, scan(tdm_xmp("1"))).denied


def test_both_signals_in_one_file_both_listed():
    found = scan(xmp_packet(
        "<plus:DataMining>http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED</plus:DataMining>"
        "<tdm:reservation>1</tdm:reservation>"))
    verdict = policy().at_embedded(URL, found)
    assert sorted(r.signal for r in verdict.reasons) == ["iptc", "tdmrep"]


def _other(terms, *, determined=True, tdm=None, signal="iptc"):
    stmt = Statement(signal, "xmp", terms, rule="from another reader")
    return EmbeddedResult("jpeg", determined, (stmt,), tdm=tdm)


def test_merge_most_restrictive_wins_and_undetermined_spreads():
    allowed = scan(dmi("DMI-ALLOWED"))
    prohibited = _other((("dmi-prohibited", False),))
    merged = merge_embedded([allowed, prohibited])
    assert merged.determined and len(merged.statements) == 2
    assert policy().at_embedded(URL, merged).denied
    assert merge_embedded([prohibited, allowed]).statements == (
        prohibited.statements + allowed.statements)
    undetermined = merge_embedded([allowed, _other((), determined=False)])
    assert not undetermined.determined
    assert policy().at_embedded(URL, undetermined).denied
    assert merge_embedded([allowed]) is allowed


def test_merge_tdm_a_reservation_wins():
    zero = TdmStatement("embedded", TdmValue.NOT_RESERVED, None, "a", "0", ())
    one = TdmStatement("embedded", TdmValue.RESERVED, None, "b", "1", ())
    merged = merge_embedded([_other((), tdm=zero), _other((), tdm=one)])
    assert merged.tdm is one
    assert policy().at_embedded(URL, merged).denied


def test_a_signal_no_one_can_switch_off_always_binds():
    # e.g. a reader added later whose signal is not (yet) switchable: judged by the table
    found = _other((("dmi-prohibited", False),), signal="iptc")
    assert policy().at_embedded(URL, found).denied


def test_record_lists_each_value_with_where_it_was():
    rec = embedded_record(scan(dmi("DMI-PROHIBITED")))
    (value,) = rec["values"]
    assert rec["determined"] is True and rec["container"] == "scan"
    assert set(value) >= {"signal", "block", "property", "namespace", "path", "raw", "term"}
    assert value["term"] == "dmi-prohibited"
