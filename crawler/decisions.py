"""The one funnel every decision passes through: audit record, stat, log line, signal.

Callers raise a refusal (``IgnoreRequest``, ``StopDownload``) only after :meth:`record`
returns, so no refused request is acted on without its record being on disk first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from crawler.audit.log import AuditWriter
from crawler.policy import Policy, Verdict

logger = logging.getLogger("crawler.decisions")


class DecisionFunnel:
    def __init__(self, writer: AuditWriter, policy: Policy, stats: Any = None,
                 send_signal: Any = None) -> None:
        self.writer = writer
        self.policy = policy
        self.stats = stats
        self._send = send_signal

    def record(
        self,
        url: str,
        verdict: Verdict,
        *,
        checks: Iterable[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
        request: Any = None,
    ) -> dict[str, Any]:
        """Commit one decision. ``checks``: earlier stages' evidence (dicts) for the same URL."""
        fields: dict[str, Any] = {
            "checks": [*(dict(c) for c in checks), *(e.to_dict() for e in verdict.checks)]
        }
        if extra:
            fields.update(extra)
        rec = self.writer.write(
            url=url,
            decision=verdict.decision,
            reasons=[e.to_dict() for e in verdict.reasons],
            policy_sha256=self.policy.sha256,
            extra=fields,
        )
        self._count(verdict)
        if verdict.denied:
            first = verdict.reasons[0]
            logger.info("Refused %s [%s/%s]: %s (audit seq %d)", url, first.signal,
                        first.channel, first.rule, rec["seq"])
        else:
            logger.debug("Allowed %s (audit seq %d)", url, rec["seq"])
        if self._send is not None:
            from crawler.signals import decision_recorded

            self._send(signal=decision_recorded, record=rec, request=request)
        return rec

    def _count(self, verdict: Verdict) -> None:
        if self.stats is None:
            return
        self.stats.inc_value(f"polite/decision/{verdict.decision}")
        for signal in sorted({e.signal for e in verdict.reasons}):
            self.stats.inc_value(f"polite/decision/{verdict.decision}/{signal}")
