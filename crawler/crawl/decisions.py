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
from typing import Any, NoReturn

from scrapy.exceptions import IgnoreRequest

from crawler.audit.log import AuditWriteError, AuditWriter
from crawler.crawl.signals import decision_recorded
from crawler.policy.reservation import Policy, Verdict

logger = logging.getLogger("crawler.crawl.decisions")

#: request.meta: the seq of the ``send`` record of the request on the wire
META_SEND = "polite_send_seq"
#: request.meta: the seq of the previous hop's ``send`` record (a redirect or retry of it)
META_FOLLOWS = "polite_follows_seq"


class AuditUnavailable(IgnoreRequest):
    """The audit log cannot be written: nothing more is sent or kept (fail closed)."""


class DecisionFunnel:
    def __init__(self, writer: AuditWriter, policy: Policy, stats: Any = None,
                 send_signal: Any = None, on_failure: Any = None,
                 has_receivers: Any = None) -> None:
        self.writer = writer
        self.policy = policy
        self.stats = stats
        self._send = send_signal
        #: () -> bool: whether the signal has receivers (None: assume it has); a signal nobody
        #: receives is not sent
        self._has_receivers = has_receivers
        #: called once with the AuditWriteError when the log cannot be written
        self.on_failure = on_failure
        self._failure_reported = False
        #: callables given each committed decision record and its line as written (bytes,
        #: with its end of line), as the signal is given the record, without pydispatch: for
        #: the command line, which gets every record of a run
        self.listeners: list[Any] = []

    def _write(self, **kw: Any) -> dict[str, Any]:
        try:
            return self.writer.write(**kw)
        except AuditWriteError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: AuditWriteError) -> NoReturn:
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
            "checks": [*(dict(c) for c in checks), *verdict.check_dicts()]
        }
        if extra:
            fields.update(extra)
        sent = getattr(request, "meta", {}).get(META_SEND) if request is not None else None
        if sent is not None and "request_seq" not in fields:
            fields["request_seq"] = sent
        rec = self._write(
            url=url,
            decision=verdict.decision,
            reasons=verdict.reason_dicts(),
            policy_sha256=self.policy.sha256,
            extra=fields,
        )
        self._count(verdict)
        self._committed(url, verdict, rec, request, self.writer.last_line)
        return rec

    def record_many(self, decisions: list[tuple[str, Verdict, list[dict[str, Any]],
                                                Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """:meth:`record` for several decisions ``(url, verdict, checks, extra)`` that nothing
        acts on before all are committed (``check --no-fetch``: nothing is sent): the same
        records, written with one ``write``; then, record by record, what :meth:`record` does
        after its write (stats, log line, listeners, signal)."""
        bodies = []
        policy_sha256 = self.policy.sha256
        # who takes the records, asked once for the batch (nothing between two records
        # changes it): the log's info and debug lines, decision_recorded's receivers
        send = self._send is not None and (self._has_receivers is None
                                           or self._has_receivers())
        batch = (_would_log(logger, logging.INFO), _would_log(logger, logging.DEBUG), send)
        # the records of one verdict and one ``extra`` object (no checks of their own) differ
        # only by URL: unless a signal receiver (anyone's code) is to get them, their reasons
        # and fields are made once for the batch and shared by those records (our listeners
        # only read them); the key's objects are held by the batch, so their ids stay theirs
        shapes: dict[tuple[int, int], tuple[dict[str, Any], Any]] = {}
        share = not send
        for url, verdict, checks, extra in decisions:
            if not checks and share:
                shape = shapes.get((id(verdict), id(extra)))
                if shape is not None:
                    body = shape[0].copy()
                    body["url"] = url
                    bodies.append(body)
                    continue
            fields: dict[str, Any] = {
                "checks": [*(dict(c) for c in checks), *verdict.check_dicts()]}
            if extra:
                fields.update(extra)
            body = {"url": url, "decision": verdict.decision,
                    "reasons": verdict.reason_dicts(), "policy_sha256": policy_sha256,
                    "extra": fields}
            if not checks and all(type(v) is str for v in extra.values()):
                # equal records but for the URL: one verdict (the writer keeps it with the
                # template, so its id stays its own), the same extra fields
                body["template"] = (id(verdict), tuple(sorted(extra.items())))
                body["template_owner"] = verdict
                if share:
                    shapes[(id(verdict), id(extra))] = (body, extra)
            bodies.append(body)
        try:
            recs = self.writer.write_many(bodies)
        except AuditWriteError as exc:
            self._write_failed(exc)
        counts: dict[int, list[Any]] = {}
        for (url, verdict, _, _), rec, line in zip(decisions, recs, self.writer.last_lines):
            seen = counts.get(id(verdict))
            if seen is None:
                counts[id(verdict)] = [verdict, 1]
            else:
                seen[1] += 1
            self._committed(url, verdict, rec, None, line, batch)
        if self.stats is not None:
            for verdict, n in counts.values():
                self.stats.inc_value(f"polite/decision/{verdict.decision}", n)
                for signal in sorted({e.signal for e in verdict.reasons}):
                    self.stats.inc_value(f"polite/decision/{verdict.decision}/{signal}", n)
        return recs

    def _committed(self, url: str, verdict: Verdict, rec: dict[str, Any], request: Any,
                   line: bytes, batch: tuple[bool, bool, bool] | None = None) -> None:
        """After a record is committed: the log line, the listeners (given the record and its
        line as written), the signal. ``batch``: whether the info and debug lines would be
        logged and the signal has receivers, when known."""
        if verdict.denied:
            if batch[0] if batch is not None else _would_log(logger, logging.INFO):
                first = verdict.reasons[0]
                logger.info("Refused %s [%s/%s]: %s (audit seq %d)%s", url, first.signal,
                            first.channel, first.rule, rec["seq"],
                            f"; {first.detail}" if (first.signal, first.channel) == (
                                "network", "address") and first.detail else "")
        elif batch[1] if batch is not None else _would_log(logger, logging.DEBUG):
            logger.debug("Allowed %s (audit seq %d)", url, rec["seq"])
        for listener in self.listeners:
            try:
                listener(rec, line)
            except Exception:  # as a signal handler's error is: logged, never the decision's
                logger.exception("a decision listener failed on audit seq %d", rec["seq"])
        if (batch[2] if batch is not None else self._send is not None and (
                self._has_receivers is None or self._has_receivers())):
            self._send(signal=decision_recorded, record=rec, request=request)

    def _count(self, verdict: Verdict) -> None:
        if self.stats is None:
            return
        self.stats.inc_value(f"polite/decision/{verdict.decision}")
        for signal in sorted({e.signal for e in verdict.reasons}):
            self.stats.inc_value(f"polite/decision/{verdict.decision}/{signal}")


def _would_log(log: logging.Logger, level: int) -> bool:
    """Whether ``log.log(level, ...)`` would reach a handler (what the logging module works
    out after making the record; a record no handler takes is not worth making: at the
    crawl's INFO level, a debug line per allowed URL cost ~10 us for nothing)."""
    if not log.isEnabledFor(level):
        return False
    found = False
    current: logging.Logger | None = log
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level:
                return True
        current = current.parent if current.propagate else None
    last = logging.lastResort
    return not found and last is not None and level >= last.level
