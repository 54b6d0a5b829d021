"""The HTML trend report of an acceptance run: tonight's verdicts, and per metric its history as a chart
with the reference band, built from the history database only (it never measures).

One self-contained page from ``templates/accept_trend.html.j2`` through the report's template
environment (autoescaped; charts are SVG data URIs drawn like the report's, see
:mod:`ai_ready.report.charts`), written atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ai_ready import __version__
from ai_ready.accept.detect import FAILING, PASS
from ai_ready.accept.history import PastNight, PastRuns
from ai_ready.accept.verdict import Case, Verdict
from ai_ready.fileio import atomic_write_text
from ai_ready.records import utc_now

TEMPLATE = "accept_trend.html.j2"
STYLESHEET = "style.css"
#: Past runs the charts show.
TREND_NIGHTS = 60
#: More nodes than this: the chart shows the fleet's median and range instead of one line per node.
MAX_NODE_LINES = 8
#: Labelled nights on the x axis, at most.
MAX_X_LABELS = 8
CHART_WIDTH_IN = 9.0
CHART_HEIGHT_IN = 3.4
REFERENCE_COLOR = "#b23a2e"
FLAG_COLOR = "#d62728"
BAND_ALPHA = 0.12


@dataclass
class MetricTrend:
    """One metric's section: tonight's cases (one per node) and the chart of its history."""

    name: str
    benchmark: str
    unit: str
    better: str
    cases: list[Case]
    chart: Any = None
    nights: int = 0
    description: str = ""

    @property
    def failing(self) -> bool:
        return any(c.failing for c in self.cases)


@dataclass
class TrendPage:
    title: str
    system: str
    suite: str
    db: str
    generated: str
    counts: dict[str, int]
    sanity: list[Case]
    metrics: list[MetricTrend] = field(default_factory=list)
    results: str = ""


def build_trend(verdict: Verdict, past: PastRuns, system: str, suite: str, db: str, results: str = "",
                descriptions: dict[str, str] | None = None) -> TrendPage:
    """Group tonight's cases per metric and draw each metric's history (past runs, tonight last)."""
    page = TrendPage(title=f"Acceptance: {system} ({suite})", system=system, suite=suite, db=db, generated=utc_now(),
                     counts=verdict.counts(), sanity=[c for c in verdict.cases if c.is_sanity], results=results)
    grouped: dict[str, list[Case]] = {}
    for case in verdict.cases:
        if not case.is_sanity:
            grouped.setdefault(case.name, []).append(case)
    for name, cases in grouped.items():
        unit = next((c.unit for c in cases if c.unit), "")
        trend = MetricTrend(name=name, benchmark=cases[0].benchmark, unit=unit, better=cases[0].better, cases=cases,
                            description=(descriptions or {}).get(name, ""))
        history = past.by_metric.get(name, [])
        trend.nights = len({p.run_id for p in history})
        if any(p.value is not None for p in history) or any(c.value is not None for c in cases):
            trend.chart = trend_chart(trend, history)
        page.metrics.append(trend)
    page.metrics.sort(key=lambda m: (not m.failing, m.name))
    return page


def trend_chart(trend: MetricTrend, history: Sequence[PastNight]) -> Any:
    """Each node's figure per run (or the fleet's median and range), the reference and its bounds, and
    the nights judged regressions marked."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ai_ready.report.charts import CHART_RC, LINE_COLORS, LINE_MARKERS, Chart, plain_label, svg_data_uri

    runs = sorted({(p.started, p.run_id) for p in history})
    labels = [started.strftime("%m-%d %H:%M") for started, _ in runs] + ["tonight"]
    position = {run_id: index for index, (_, run_id) in enumerate(runs)}
    tonight = len(runs)
    series: dict[str, list[tuple[int, float, bool]]] = {}
    for p in history:
        if p.value is not None:
            series.setdefault(p.node, []).append((position[p.run_id], float(p.value), p.regression))
    for case in trend.cases:
        if case.value is not None:
            series.setdefault(case.node, []).append((tonight, float(case.value), case.regression))
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(CHART_WIDTH_IN, CHART_HEIGHT_IN), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        if len(series) <= MAX_NODE_LINES:
            for index, (node, points) in enumerate(sorted(series.items())):
                points.sort()
                ax.plot([x for x, _, _ in points], [y for _, y, _ in points],
                        color=LINE_COLORS[index % len(LINE_COLORS)], marker=LINE_MARKERS[index % len(LINE_MARKERS)],
                        markersize=4, linewidth=1.4, label=plain_label(node))
        else:
            _fleet_band(ax, series, tonight + 1)
        flagged = [(x, y) for points in series.values() for x, y, bad in points if bad]
        if flagged:
            ax.plot([x for x, _ in flagged], [y for _, y in flagged], linestyle="none", marker="x", markersize=9,
                    markeredgewidth=2, color=FLAG_COLOR, label="regression")
        _reference(ax, trend.cases)
        ticks = _ticks(len(labels))
        ax.set_xticks(ticks, [plain_label(labels[i]) for i in ticks], rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, tonight + 0.5)
        ax.set_ylabel(plain_label(trend.unit))
        ax.set_title(plain_label(f"{trend.name} ({trend.better} is better)"), loc="left", fontweight="bold")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    alt = (f"{trend.name} over {len(runs)} past runs and tonight, per node"
           + (", with the reference and its bounds" if any(c.reference for c in trend.cases) else ""))
    return Chart(uri=svg_data_uri(buffer.getvalue()), alt=alt)


def _fleet_band(ax: Any, series: dict[str, list[tuple[int, float, bool]]], width: int) -> None:
    import numpy as np

    by_x: dict[int, list[float]] = {}
    for points in series.values():
        for x, y, _ in points:
            by_x.setdefault(x, []).append(y)
    xs = sorted(by_x)
    ax.fill_between(xs, [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs], alpha=0.25, color="#0072B2",
                    label=f"range over {len(series)} nodes")
    ax.plot(xs, [float(np.median(by_x[x])) for x in xs], color="#0072B2", marker="o", markersize=4,
            label="fleet median")


def _reference(ax: Any, cases: Sequence[Case]) -> None:
    reference = next((c.reference for c in cases if c.reference is not None), None)
    if reference is None:
        return
    low, high = reference.bounds()
    ax.axhline(reference.value, color=REFERENCE_COLOR, linewidth=1.4, linestyle=(0, (8, 4)),
               label=f"reference {reference.value:.4g}")
    bottom, top = ax.get_ylim()
    lo = low if low is not None else min(bottom, reference.value)
    hi = high if high is not None else max(top, reference.value)
    ax.axhspan(lo, hi, color=REFERENCE_COLOR, alpha=BAND_ALPHA, label="accepted range")


def _ticks(count: int) -> list[int]:
    step = max(1, -(-count // MAX_X_LABELS))
    ticks = list(range(count - 1, -1, -step))[::-1]
    return ticks


def render_trend(page: TrendPage) -> str:
    from markupsafe import Markup

    from ai_ready.report.render import template_environment

    env = template_environment()
    source, _, _ = env.loader.get_source(env, STYLESHEET)  # type: ignore[union-attr]
    if "</style" in source.lower():
        raise ValueError(f"{STYLESHEET} must not contain '</style'")
    return env.get_template(TEMPLATE).render(page=page, version=__version__, stylesheet=Markup(source),
                                             failing=FAILING, passing=PASS)


def write_trend(path: Path, page: TrendPage) -> Path:
    """Render fully first, then write atomically: a failure leaves any previous report as it was."""
    return atomic_write_text(path, render_trend(page))
