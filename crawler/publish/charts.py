"""The report's PNG charts, drawn with matplotlib's Agg canvas (no display, no pyplot state):
horizontal bars of shares, trend lines over survey waves, money charged per day.  Every share
is drawn with its 95 % Wilson interval; colours from :data:`PALETTE`.  matplotlib is the
``report`` extra, imported when the first chart is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date as _date
from decimal import Decimal
from pathlib import Path
from typing import Any

from crawler.extras import require
from crawler.publish.figures import is_day, plural, wilson_interval

__all__ = ["PALETTE", "bar_chart", "percent_axis", "spend_chart", "trend_chart"]

#: Okabe & Ito's colour-blind-safe palette (blue, orange, bluish green, reddish purple, sky
#: blue, vermillion, yellow, black).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _figure(width: float, height: float):
    require("matplotlib", "report", "report charts")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, format="png", metadata={"Software": None})
    return name


def _pct(f: Mapping[str, Any]) -> float:
    return float(f["percent"] or 0.0)


def _ci(f: Mapping[str, Any]) -> tuple[float, float]:
    ci = wilson_interval(f["count"], f["of"])
    return (100 * ci[0], 100 * ci[1]) if ci else (0.0, 0.0)


def percent_axis(limit: float) -> tuple[float, list[float]]:
    """An axis end a little beyond ``limit`` (room for value labels) and ticks up to 100."""
    top = min(100.0, max(limit, 1.0))
    step = next(s for s in (1, 2, 5, 10, 20, 25) if top / s <= 6)
    ticks = [i * step for i in range(int(top // step) + 2) if i * step <= 100]
    return max(limit * 1.22 + 1.0, ticks[-1]), ticks


def bar_chart(out_dir: Path, name: str, title: str, labels: Sequence[str],
              series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], xlabel: str, *,
              sort: bool = True) -> str:
    """Horizontal bars of shares (figures as :func:`fraction` returns them), one group per
    label, with 95 % error bars and value labels; sorted by the first series, largest on top.
    The axis is scaled to the data; colours from :data:`PALETTE`."""
    order = list(range(len(labels)))
    if sort:
        order.sort(key=lambda i: -_pct(series[0][1][i]))
    k = len(series)
    band = 0.8 / k
    fig = _figure(9, max(2.4, (0.3 + 0.22 * (k - 1)) * len(labels) + 1.4))
    ax = fig.subplots()
    tops = [len(order) - 1 - pos for pos in range(len(order))]
    highest = 0.0
    for j, (legend, values) in enumerate(series):
        ys = [top + (k - 1) / 2 * band - j * band for top in tops]
        xs = [_pct(values[i]) for i in order]
        cis = [_ci(values[i]) for i in order]
        err = [[x - lo for x, (lo, _) in zip(xs, cis)], [hi - x for x, (_, hi) in zip(xs, cis)]]
        ax.barh(ys, xs, height=band * 0.9, color=PALETTE[j % len(PALETTE)], label=legend,
                xerr=err, error_kw={"ecolor": "#333333", "elinewidth": 0.8, "capsize": 2})
        for y, x, (_, hi), i in zip(ys, xs, cis, order):
            text = f"{x:.1f} %" if values[i]["of"] else "not checked (n = 0)"
            ax.text(hi + 0.6, y, text, va="center", fontsize=7, color="#222222")
        highest = max([highest, *(hi for _, hi in cis)])
    end, ticks = percent_axis(highest)
    ax.set_xlim(0, end)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_yticks(tops)
    ax.set_yticklabels([labels[i] for i in order], fontsize=8)
    ax.set_xlabel(xlabel + " (bars: 95 % interval)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    ax.set_axisbelow(True)
    if k > 1:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out_dir, name)


def trend_chart(out_dir: Path, name: str, title: str, labels: Sequence[str],
                lines: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], ylabel: str, *,
                dates: Sequence[str | None] | None = None) -> str:
    """One line per series over the waves, with 95 % error bars (dodged a little so they do
    not hide each other) and the latest values labelled.  With ``dates`` (``YYYY-MM-DD`` of
    every wave) the x axis is time, to scale (a gap of five months looks like one); else the
    waves are evenly spaced, labelled by ``labels``.  A wave where a series could not be
    counted (denominator 0) is a gap; a series counted in no wave is left out."""
    from datetime import date

    fig = _figure(10, 5)
    ax = fig.subplots()
    timed = bool(dates) and all(dates)
    if timed:
        days = [date.fromisoformat(str(d)).toordinal() for d in dates]  # type: ignore[union-attr]
        xs = [float(d - days[0]) for d in days]
    else:
        xs = [float(i) for i in range(len(labels))]
    span = max(xs[-1] - xs[0], 1.0) if xs else 1.0
    highest = 0.0
    lines = [(legend, values) for legend, values in lines if any(v["of"] for v in values)]
    k = len(lines)
    ends: list[tuple[float, float, str, str]] = []  # (y, x, text, colour) of the last points
    for j, (legend, values) in enumerate(lines):
        dodge = (j - (k - 1) / 2) * span * min(0.004, 0.03 / max(k, 1))
        ys = [_pct(v) if v["of"] else math.nan for v in values]
        cis = [_ci(v) if v["of"] else (math.nan, math.nan) for v in values]
        err = [[y - lo for y, (lo, _) in zip(ys, cis)], [hi - y for y, (_, hi) in zip(ys, cis)]]
        colour = PALETTE[j % len(PALETTE)]
        ax.errorbar([x + dodge for x in xs], ys, yerr=err, label=legend, color=colour,
                    linestyle=_LINESTYLES[j // 4 % 4], marker=_MARKERS[j % len(_MARKERS)],
                    markersize=3.5, linewidth=1.3, elinewidth=0.7, capsize=2, alpha=0.95)
        if values and values[-1]["of"]:
            ends.append((ys[-1], xs[-1] + dodge, f"{ys[-1]:.1f} %", colour))
        highest = max([highest, *(hi for _, hi in cis if not math.isnan(hi))])
    end, ticks = percent_axis(highest)
    top = min(end, 105)
    ax.set_ylim(0, top)
    # the latest values, right of the lines, moved apart so that none hides another
    gap, placed = top * 0.035, []
    for y, x, text, colour in sorted(ends):
        at = max(y, placed[-1] + gap) if placed else y
        placed.append(at)
        ax.annotate(text, (x, y), xytext=(x + span * 0.025, at), textcoords="data",
                    va="center", fontsize=7, color=colour,
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5})
    ax.set_yticks(ticks)
    if timed:
        first = date.fromordinal(days[0])
        last = date.fromordinal(days[-1])
        months = [date(y, m, 1) for y in range(first.year, last.year + 1) for m in range(1, 13)
                  if first <= date(y, m, 1) <= last or (y, m) == (first.year, first.month)]
        step = max(1, math.ceil(len(months) / 12))
        shown = months[::step]
        ax.set_xticks([float(m.toordinal() - days[0]) for m in shown])
        ax.set_xticklabels([m.strftime("%Y-%m") for m in shown], rotation=40, ha="right",
                           fontsize=7)
        ax.set_xlabel("wave date (to scale; points: waves)", fontsize=8)
    else:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=7)
    ax.set_xlim(xs[0] - span * 0.03 if xs else -0.5, (xs[-1] if xs else 0) + span * 0.1)
    ax.set_ylabel(ylabel + " (bars: 95 % interval)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_dir, name)


def spend_chart(out_dir: Path, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Money charged per day (rows as :meth:`PaymentTally.to_json` gives ``by_day``): one panel
    per currency (amounts in different currencies are never drawn on one axis), bars on a time
    axis to scale, each labelled with its exact amount and pages, the n in every title; colours
    from :data:`PALETTE`.  Bar heights are floats only as pixel positions: every number
    printed is the exact decimal."""
    currencies = sorted({r["currency"] for r in rows})
    days = sorted({r["day"] for r in rows if is_day(r["day"])})
    first = _date.fromisoformat(days[0]).toordinal() if days else 0
    span = (_date.fromisoformat(days[-1]).toordinal() - first) if days else 0
    fig = _figure(9, 2.6 * len(currencies) + 0.6)
    axes = fig.subplots(len(currencies), 1, squeeze=False)[:, 0]
    for j, (ax, currency) in enumerate(zip(axes, currencies)):
        mine = [r for r in rows if r["currency"] == currency and is_day(r["day"])]
        xs = [float(_date.fromisoformat(r["day"]).toordinal() - first) for r in mine]
        amounts = [Decimal(r["charged"]) for r in mine]
        heights = [float(a) for a in amounts]
        ax.bar(xs, heights, width=0.8, color=PALETTE[j % len(PALETTE)])
        top = max(heights, default=0.0) or 1.0
        for x, h, r in zip(xs, heights, mine):
            ax.text(x, h + top * 0.03, f"{r['text']}\n{r['pages']} p.", ha="center",
                    va="bottom", fontsize=7, color="#222222")
        ax.set_ylim(0, top * 1.35)
        ax.set_xlim(-1.0, span + 1.0)
        step = max(1, math.ceil((span + 1) / 12))
        ticks = list(range(0, span + 1, step))
        ax.set_xticks([float(t) for t in ticks])
        few = len(ticks) <= 6
        ax.set_xticklabels([_date.fromordinal(first + t).isoformat() for t in ticks],
                           rotation=0 if few else 40, ha="center" if few else "right",
                           fontsize=7)
        ax.set_ylabel(f"{currency} charged", fontsize=8)
        pages = sum(r["pages"] for r in mine)
        ax.set_title(f"Charged per day (UTC), {currency} (n = {plural(pages, 'page')} "
                     f"charged over {plural(len(mine), 'day')})", fontsize=10)
        ax.grid(axis="y", alpha=0.25)
        ax.set_axisbelow(True)
    axes[-1].set_xlabel("day of the charge record (to scale)", fontsize=8)
    return _save(fig, out_dir, name)
