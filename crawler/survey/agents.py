"""The bundled list of AI crawler product tokens (``crawler/data/ai_agents.json``).

The list is the ai.robots.txt project's ``robots.json`` verbatim (166 tokens, snapshot of
2026-08-22; provenance in ``crawler/data/README.md`` and in the file's ``source`` field).  The
survey reports, for every token in it, how each site's robots.txt treats that crawler; the report
groups tokens by operator company.

:func:`load_agents` reads the file once (package data, no network) and returns frozen
:class:`Agent` values in file order.  Fields are kept as the project wrote them (free text, some
with Markdown links); two are derived here:

* ``company``: the operator's name, for grouping: the text of a Markdown link
  (``[OpenAI](https://openai.com)`` -> ``OpenAI``), else the operator text up to the first
  ``,``, `` that ``, `` to ``, `` used `` or `` (`` (``Amazon, used for ...`` -> ``Amazon``),
  with a few spellings of one company merged (:data:`COMPANY_ALIASES`: ``Meta/Facebook`` ->
  ``Meta``).  When the list says "Unclear at this time." but the token itself names a company
  (``Google-Agent``, ``Claude-Code``, ``Meta-ExternalAgent``...; :data:`TOKEN_PREFIX_COMPANIES`),
  that company is used and ``company_inferred`` is True -- our reading, not the list's.
  Otherwise ``company`` is None (unknown).
* ``token_valid``: whether the token is a valid RFC 9309 product token (letters, ``_`` and
  ``-`` only).  ``AI2Bot``, ``Brightbot 1.0``, ``iaskspider/2.0`` or ``bigsur.ai`` are not: an
  RFC 9309 parser cuts a ``User-agent:`` value at the first other character (``AI2Bot`` reads
  as ``AI``), so such a crawler cannot be matched by its full name.  The survey says so in its
  records (``"token_valid": false``) and evaluates those tokens against ``User-agent`` lines
  written exactly as the token (see :mod:`crawler.survey.analysis`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from crawler.optout.robots import is_valid_product_token

__all__ = [
    "COMPANY_ALIASES",
    "TOKEN_PREFIX_COMPANIES",
    "Agent",
    "AgentList",
    "load_agent_list",
    "load_agents",
]

#: Spellings in the list's ``operator`` field that name one company.
COMPANY_ALIASES: dict[str, str] = {
    "Meta/Facebook": "Meta",
    "Mistral AI": "Mistral",
    "Large-scale Artificial Intelligence Open Network": "LAION",
    "Quillbot": "QuillBot",
    "the Chinese company Huawei": "Huawei",
    "safe.search.brave.com": "Brave",
    "brightdata.com": "Bright Data",
    "Unknown": "",
}
#: Token prefixes (lower case) that name the operator when the list says "Unclear".
TOKEN_PREFIX_COMPANIES: tuple[tuple[str, str], ...] = (
    ("google", "Google"),
    ("gemini-", "Google"),
    ("claude-", "Anthropic"),
    ("meta-", "Meta"),
    ("amzn-", "Amazon"),
    ("amazon-", "Amazon"),
    ("applebot", "Apple"),
    ("azureai-", "Microsoft"),
)
_UNCLEAR = ("unclear at this time", "unknown", "")
# Operator texts that name users of a tool, not an operator ("Anyone who downloads ...").
_NO_OPERATOR = ("anyone",)
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)]*)\)")
_CLAUSE_END = re.compile(r",| that | to | used | \(| which ")
_URL = re.compile(r"https?://(?:www\.)?([^/\s]+)")


@dataclass(frozen=True, slots=True)
class Agent:
    """One AI crawler of the bundled list."""

    token: str  # the robots.txt user-agent name, as the list writes it
    operator: str  # as written by the list (free text, may hold Markdown)
    function: str  # "purpose" in the list's words (free text)
    respect: str  # whether it is said to obey robots.txt (free text)
    description: str
    company: str | None  # derived, for grouping; None when unknown
    company_inferred: bool = False  # company read from the token, not from the list

    @property
    def purpose(self) -> str:
        """The list's ``function`` field."""
        return self.function

    @property
    def token_valid(self) -> bool:
        """RFC 9309 §2.2.1: only letters, ``_`` and ``-``."""
        return is_valid_product_token(self.token)


@dataclass(frozen=True, slots=True)
class AgentList:
    """The agents and where the list comes from."""

    agents: tuple[Agent, ...]
    source: dict[str, Any]
    date: str  # snapshot date of the list (YYYY-MM-DD)

    def by_token(self) -> dict[str, Agent]:
        """Token (lower case) -> agent; the first of tokens that differ only in case wins."""
        out: dict[str, Agent] = {}
        for agent in self.agents:
            out.setdefault(agent.token.lower(), agent)
        return out


def _company(token: str, operator: str) -> tuple[str | None, bool]:
    text = operator.strip()
    link = _MARKDOWN_LINK.search(text)
    if text.lower().startswith(_NO_OPERATOR):
        name = ""
    elif link is not None:
        name = link.group(1).strip()
    elif text.lower().rstrip(".") in _UNCLEAR:
        name = ""
    else:
        url = _URL.match(text)
        if url is not None:
            name = url.group(1)
        else:
            name = _CLAUSE_END.split(text, maxsplit=1)[0].strip()
    name = COMPANY_ALIASES.get(name, name)
    if name:
        return name, False
    lowered = token.lower()
    for prefix, company in TOKEN_PREFIX_COMPANIES:
        if lowered.startswith(prefix):
            return company, True
    return None, False


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@lru_cache(maxsize=1)
def load_agent_list() -> AgentList:
    """The bundled list with its provenance (read once)."""
    raw = resources.files("crawler").joinpath("data/ai_agents.json").read_text(encoding="utf-8")
    data = json.loads(raw)
    agents = []
    for token, info in data["agents"].items():
        info = info if isinstance(info, dict) else {}
        operator = _text(info.get("operator"))
        company, inferred = _company(token, operator)
        agents.append(Agent(
            token=token,
            operator=operator,
            function=_text(info.get("function")),
            respect=_text(info.get("respect")),
            description=_text(info.get("description")),
            company=company,
            company_inferred=inferred,
        ))
    source = dict(data.get("source", {}))
    return AgentList(agents=tuple(agents), source=source,
                     date=str(source.get("snapshot_commit_date", "")))


def load_agents() -> tuple[Agent, ...]:
    """The AI crawlers of the bundled list, in file order."""
    return load_agent_list().agents
