"""The reservation policy: which statements bind this crawl, and what a failed fetch means.

Sans-IO: per-origin file outcomes, header values and parsed HTML go in; a :class:`Verdict`
with the evidence comes out. The Scrapy glue (``middlewares.py``) calls the three stages:

1. :meth:`Policy.before_fetch`: site-level signals (robots.txt, tdmrep.json). A URL they
   reserve is never requested.
2. :meth:`Policy.at_headers`: response headers (``tdm-reservation``); a reserved response is
   cut off at the headers, its body never downloaded.
3. :meth:`Policy.at_document`: HTML ``<meta>`` tags, before any item is produced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from crawler.optout import robots as robots_mod
from crawler.optout import tdmrep as tdm
from crawler.optout.htmlmeta import HtmlHead
from crawler.optout.model import Evidence, SiteFile

#: Bump when the meaning of any row below changes; it is part of every record's policy hash.
POLICY_VERSION = "1"

#: What a per-origin fetch outcome means. One table, printed in the README.
FAILURE_POLICY: tuple[tuple[str, str, str, str], ...] = (
    ("robots.txt", "2xx", "parse and obey", "RFC 9309 2.3.1.1"),
    ("robots.txt", "3xx", ("follow up to 5 hops; the file reached applies to the original "
     "origin; more hops = deny all"), "RFC 9309 2.3.1.2 (stricter: RFC allows allow-all)"),
    ("robots.txt", "4xx except 429", "no restrictions (allow all)", "RFC 9309 2.3.1.3"),
    ("robots.txt", "429, 5xx, timeout, DNS/TCP/TLS error", ("deny all (fail closed); the URL "
     "is decided again after a doubling backoff, twice, then refused for good"),
     "RFC 9309 2.3.1.4"),
    ("robots.txt", "over 512,000 bytes", "first 512,000 bytes parsed", "RFC 9309 2.5"),
    ("tdmrep.json", "2xx, valid JSON array", "first matching rule applies", "TDMRep 3.2"),
    ("tdmrep.json", "4xx, or 2xx that is not a TDMRep array", "TDMRep not used (unset)",
     "TDMRep 3.2"),
    ("tdmrep.json", "429, 5xx, timeout, network error", ("deny all (fail closed); decided "
     "again after a backoff, as for robots.txt"), "project rule (spec: 'not implemented')"),
    ("tdm-reservation value", "not 0 or 1", "unset; string \"1\" and JSON true read as 1",
     "TDMRep 3.1 (conservative reading)"),
    ("any target", "loopback/private/link-local/metadata address", ("deny (signal network) "
     "unless allow_private_networks"), "project rule"),
)

#: Which signals bind which purpose (True = binds). robots.txt governs access itself, so it
#: binds every purpose; TDMRep reserves text and data mining, which every purpose we collect
#: for involves (conservative for ``search``).
PURPOSE_TABLE: Mapping[str, Mapping[str, bool]] = {
    "robots": {"train-ai": True, "train-genai": True, "search": True, "ai-input": True},
    "tdmrep": {"train-ai": True, "train-genai": True, "search": True, "ai-input": True},
}


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: str                      # 'allow' | 'deny'
    reasons: tuple[Evidence, ...]      # the statements that denied (empty for allow)
    checks: tuple[Evidence, ...]       # everything checked at this stage

    @property
    def denied(self) -> bool:
        return self.decision == "deny"

    @property
    def undetermined(self) -> bool:
        """Denied only because a per-origin file could not be fetched (worth a later retry)."""
        return self.denied and all(
            r.signal == "network" and r.channel not in ("address", "preflight")
            for r in self.reasons
        )


def _verdict(checks: Sequence[Evidence]) -> Verdict:
    reasons = tuple(e for e in checks if e.outcome == "deny")
    return Verdict("deny" if reasons else "allow", reasons, tuple(checks))


@dataclass(frozen=True)
class Policy:
    token: str
    user_agent: str
    purpose: str = "train-ai"
    honor_agents: tuple[str, ...] = ()
    signals: tuple[str, ...] = ("robots", "tdmrep")
    allow_private_networks: bool = False
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        doc = {
            "version": POLICY_VERSION,
            "token": self.token,
            "user_agent": self.user_agent,
            "purpose": self.purpose,
            "honor_agents": list(self.honor_agents),
            "signals": list(self.signals),
            "allow_private_networks": self.allow_private_networks,
            "failure_policy": [list(row) for row in FAILURE_POLICY],
            "purpose_table": {k: dict(v) for k, v in PURPOSE_TABLE.items()},
        }
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        object.__setattr__(self, "sha256", hashlib.sha256(blob).hexdigest())

    def binds(self, signal: str) -> bool:
        return signal in self.signals and PURPOSE_TABLE.get(signal, {}).get(self.purpose, True)

    # -- stage 1 -------------------------------------------------------------------------
    def needed_files(self) -> tuple[str, ...]:
        """The per-origin files the enabled signals need, in fetch order."""
        files = []
        if self.binds("robots"):
            files.append("robots.txt")
        if self.binds("tdmrep"):
            files.append("tdmrep.json")
        return tuple(files)

    def before_fetch(self, url: str, files: Mapping[str, SiteFile]) -> Verdict:
        checks: list[Evidence] = []
        if self.binds("robots"):
            checks.extend(self._robots(url, files["robots.txt"]))
        if self.binds("tdmrep"):
            checks.extend(self._tdmrep_file(url, files["tdmrep.json"]))
        return _verdict(checks)

    def _robots(self, url: str, f: SiteFile) -> list[Evidence]:
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        if f.outcome == "unreachable":
            return [Evidence("network", "robots.txt", "deny", agent=self.token,
                             rule=f"robots.txt unreachable ({f.status_text}): complete "
                             "disallow", **common)]
        if f.outcome == "unavailable":
            return [Evidence("robots", "robots.txt", "allow", agent=self.token,
                             rule=f"robots.txt unavailable ({f.status_text}): no restrictions",
                             **common)]
        rf: robots_mod.RobotsFile = f.parsed
        problems = rf.problems
        out = [self._robots_evidence(rf.verdict(url, self.token), self.token, common, problems)]
        for agent in self.honor_agents:
            v = rf.verdict(url, agent, fallback_to_star=False)
            if v.agent is not None:
                out.append(self._robots_evidence(v, agent, common, ()))
        return out

    @staticmethod
    def _robots_evidence(
        v: robots_mod.RobotsVerdict, token: str, common: dict, problems: tuple[str, ...]
    ) -> Evidence:
        if v.rule is not None:
            rule = f"{v.rule.text} (line {v.rule.line})"
        elif v.agent is None:
            rule = "no group applies"
        else:
            rule = f"no rule matches in group 'User-agent: {v.agent}' (line {v.group_line})"
        return Evidence("robots", "robots.txt", "allow" if v.allowed else "deny",
                        agent=token if v.agent in (None, "*") else v.agent, rule=rule,
                        detail=None if v.agent != "*" else "group 'User-agent: *'",
                        problems=problems, **common)

    def _tdmrep_file(self, url: str, f: SiteFile) -> list[Evidence]:
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        if f.outcome == "unreachable":
            return [Evidence("network", "tdmrep.json", "deny",
                             rule=f"tdmrep.json unreachable ({f.status_text}): reservation "
                             "undetermined", **common)]
        if f.outcome == "unavailable" or f.parsed is None:
            probs = f.parsed.problems if f.parsed is not None else ()
            return [Evidence("tdmrep", "file", "unset",
                             rule=f"no TDMRep file ({f.status_text})", problems=probs, **common)]
        stmt = tdm.statement_from_file(f.parsed, url)
        if stmt is None:
            return [Evidence("tdmrep", "file", "unset", rule="no rule matches",
                             problems=f.parsed.problems, **common)]
        return [self._tdm_evidence(stmt, **common)]

    @staticmethod
    def _tdm_evidence(stmt: tdm.TdmStatement, **common: object) -> Evidence:
        if stmt.reservation is tdm.TdmValue.RESERVED:
            outcome = "deny"
        elif stmt.reservation is tdm.TdmValue.NOT_RESERVED:
            outcome = "allow"
        else:
            outcome = "unset"
        detail = f"tdm-policy: {stmt.policy}" if stmt.policy else None
        return Evidence("tdmrep", stmt.channel, outcome, rule=f"{stmt.source}: {stmt.raw}",
                        detail=detail, problems=stmt.problems, **common)  # type: ignore[arg-type]

    # -- stage 2 -------------------------------------------------------------------------
    def at_headers(
        self, url: str, headers: Mapping[str, Sequence[str]], file_stmt: tdm.TdmStatement | None
    ) -> tuple[Verdict, tdm.TdmStatement | None]:
        """Header-level statements. Returns the verdict and the TDMRep header statement."""
        checks: list[Evidence] = []
        header_stmt = None
        if self.binds("tdmrep"):
            res = headers.get("tdm-reservation")
            pol = headers.get("tdm-policy")
            header_stmt = tdm.statement_from_headers(
                ", ".join(res) if res else None, ", ".join(pol) if pol else None
            )
            if header_stmt is not None:
                ev = self._tdm_evidence(header_stmt, source="tdm-reservation header")
                if tdm.combine(file_stmt, header_stmt).reserved and ev.outcome != "deny":
                    ev = replace(ev, outcome="deny")
                checks.append(ev)
        return _verdict(checks), header_stmt

    # -- stage 3 -------------------------------------------------------------------------
    def at_document(
        self,
        url: str,
        head: HtmlHead,
        file_stmt: tdm.TdmStatement | None,
        header_stmt: tdm.TdmStatement | None,
    ) -> Verdict:
        checks: list[Evidence] = []
        if self.binds("tdmrep"):
            meta_stmt = tdm.statement_from_html(head)
            if meta_stmt is not None:
                decision = tdm.combine(file_stmt, header_stmt, meta_stmt)
                ev = self._tdm_evidence(meta_stmt, source="html meta")
                if decision.reserved and ev.outcome != "deny":
                    ev = replace(ev, outcome="deny")
                if decision.downgraded:
                    note = "downgrade: an earlier channel reserved, the page says 0"
                    ev = replace(ev, detail=f"{ev.detail}; {note}" if ev.detail else note)
                checks.append(ev)
        return _verdict(checks)


def network_refusal(url: str, reason: str) -> Verdict:
    """The verdict for a target the network guard refuses."""
    ev = Evidence("network", "address", "deny", rule=reason, source=url,
                  detail="set allow_private_networks: true to crawl such targets")
    return Verdict("deny", (ev,), (ev,))


def preflight_failure(url: str, reason: str) -> Verdict:
    """The verdict for a URL whose reservations could not be determined."""
    ev = Evidence("network", "preflight", "deny", rule=reason, source=url)
    return Verdict("deny", (ev,), (ev,))


def site_file(
    kind: str,
    url: str,
    *,
    status: int | None,
    body: bytes = b"",
    error: str | None = None,
    final_url: str | None = None,
) -> SiteFile:
    """Apply :data:`FAILURE_POLICY` to one per-origin fetch (``status`` None = no response)."""
    sha = hashlib.sha256(body).hexdigest() if status is not None else None
    common = {"status": status, "sha256": sha, "size": len(body), "error": error,
              "final_url": final_url}
    if kind == "robots.txt":
        outcome = robots_mod.robots_outcome(status)
        if outcome is robots_mod.RobotsOutcome.PARSED:
            return SiteFile(kind, url, "parsed", parsed=robots_mod.parse_robots(body), **common)
        return SiteFile(kind, url, outcome.value, **common)
    if kind == "tdmrep.json":
        if status is not None and 200 <= status < 300:
            parsed = tdm.parse_tdmrep_file(body)
            return SiteFile(kind, url, "parsed" if parsed.valid else "unavailable",
                            parsed=parsed, **common)
        if status is not None and 400 <= status < 500 and status != 429:
            return SiteFile(kind, url, "unavailable", **common)
        return SiteFile(kind, url, "unreachable", **common)
    raise ValueError(f"unknown per-origin file {kind!r}")


def failure_policy_markdown() -> str:
    """:data:`FAILURE_POLICY` as the Markdown table printed in the README (a test keeps the
    two equal)."""
    lines = ["| file / value | outcome | decision | basis |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in FAILURE_POLICY]
    return "\n".join(lines)
