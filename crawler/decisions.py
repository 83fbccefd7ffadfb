"""The one funnel every decision passes through: audit record, stat, log line, signal.

Callers raise a refusal (``IgnoreRequest``, ``StopDownload``) only after :meth:`record`
returns, so no refused request is acted on without its record being on disk first.

Write-ahead: :meth:`DecisionFunnel.send` commits the decision to send a request before it
leaves (``decision: "send"``), and the request's outcome names that record (``request_seq``):
an allow or deny at the headers or the response, or a ``decision: "result"`` record (a
per-origin file fetched, a download that failed, a redirect that was not followed). A request
that is redirected or retried is followed by the next hop's ``send`` record, which names the
previous one (``follows``).

When a record cannot be written (disk full, I/O error), :class:`AuditUnavailable` (an
``IgnoreRequest``) is raised instead: the request is not sent, and the crawl is stopped once
(``on_failure``), so nothing is ever acted on without its record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from scrapy.exceptions import IgnoreRequest

from crawler.audit.log import AuditWriteError, AuditWriter
from crawler.policy import Policy, Verdict

logger = logging.getLogger("crawler.decisions")

#: request.meta: the seq of the ``send`` record of the request on the wire
META_SEND = "polite_send_seq"
#: request.meta: the seq of the previous hop's ``send`` record (a redirect or retry of it)
META_FOLLOWS = "polite_follows_seq"


class AuditUnavailable(IgnoreRequest):
    """The audit log cannot be written: nothing more is sent or kept (fail closed)."""


class DecisionFunnel:
    def __init__(self, writer: AuditWriter, policy: Policy, stats: Any = None,
                 send_signal: Any = None, on_failure: Any = None) -> None:
        self.writer = writer
        self.policy = policy
        self.stats = stats
        self._send = send_signal
        #: called once with the AuditWriteError when the log cannot be written
        self.on_failure = on_failure
        self._failure_reported = False

    def _write(self, **kw: Any) -> dict[str, Any]:
        try:
            return self.writer.write(**kw)
        except AuditWriteError as exc:
            if not self._failure_reported:
                self._failure_reported = True
                if self.stats is not None:
                    self.stats.set_value("polite/audit/write_failed", exc.strerror)
                if self.on_failure is not None:
                    self.on_failure(exc)
            raise AuditUnavailable(str(exc.strerror)) from None

    def send(self, request: Any, *, checks: Iterable[Mapping[str, Any]] = (),
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Commit the decision to send ``request`` (before it leaves); returns the record."""
        fields: dict[str, Any] = {"stage": "send", "method": request.method}
        checks = list(checks)
        if checks:
            fields["checks"] = [dict(c) for c in checks]
        if extra:
            fields.update(extra)
        rec = self._write(url=request.url, decision="send", reasons=[],
                          policy_sha256=self.policy.sha256, extra=fields)
        if self.stats is not None:
            self.stats.inc_value("polite/decision/send")
        return rec

    def result(self, url: str, result: str, *, request_seq: int | None,
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Commit what became of a sent request that no allow/deny record concludes."""
        fields: dict[str, Any] = {"result": result}
        if request_seq is not None:
            fields["request_seq"] = request_seq
        if extra:
            fields.update(extra)
        rec = self._write(url=url, decision="result", reasons=[],
                          policy_sha256=self.policy.sha256, extra=fields)
        if self.stats is not None:
            self.stats.inc_value(f"polite/result/{result}")
        return rec

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
        sent = getattr(request, "meta", {}).get(META_SEND) if request is not None else None
        if sent is not None and "request_seq" not in fields:
            fields["request_seq"] = sent
        rec = self._write(
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
