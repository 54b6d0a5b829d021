"""Charts for the report: matplotlib figures rendered to SVG and embedded as data URIs.

A data URI keeps the page self-contained and sandboxes the SVG (an image never
runs script). Glyphs are written as paths (``svg.fonttype = "path"``) so the
chart looks the same without any font installed. Figures are drawn on an Agg
canvas created per figure, never through pyplot: no GUI backend is loaded and
no global figure state is touched, so reports can be built from any thread.
Labels are reduced to plain characters before matplotlib sees them, so a
record's text can neither trigger mathtext nor reach the SVG markup verbatim.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from typing import Sequence

#: rcParams for every chart: text as paths (no font needed), stable ids, sizes readable on a projector.
CHART_RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "ai-ready",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

FIG_WIDTH_IN = 9.0
BAR_HEIGHT_IN = 0.34
PANEL_EXTRA_IN = 1.1
TITLE_IN = 0.5
#: Room right of the longest bar or ceiling for its value label.
X_HEADROOM = 1.22
MAX_LABEL_CHARS = 48

BAR_COLOR = "#2f6f9f"
CEILING_COLORS = ("#b23a2e", "#7a4fa3", "#c27c0e", "#2e7d4f")

_UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9 ._,:+\-×/()%=]")


@dataclass(frozen=True)
class Chart:
    """An embeddable chart: `uri` goes in an <img src>, `alt` says what it shows."""

    uri: str
    alt: str


@dataclass(frozen=True)
class Bar:
    """One bar: its value, an optional whisker from `low` to `high`, and a short note after it."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    note: str = ""


@dataclass(frozen=True)
class BarGroup:
    """One panel: bars on a shared axis plus dashed reference lines (value, label)."""

    name: str
    bars: list[Bar]
    ceilings: list[tuple[float, str]] = field(default_factory=list)


def plain_label(text: object) -> str:
    """Keep letters, digits and a few separators; anything else becomes '?' (no markup, no mathtext)."""
    cleaned = _UNSAFE_LABEL.sub("?", str(text))
    return cleaned if len(cleaned) <= MAX_LABEL_CHARS else cleaned[: MAX_LABEL_CHARS - 1] + "…"


def bar_chart(groups: Sequence[BarGroup], title: str, xlabel: str, alt: str) -> Chart:
    """Horizontal bars, one panel per group, so long case names stay readable and scales stay separate."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [PANEL_EXTRA_IN + BAR_HEIGHT_IN * max(len(g.bars), 1) for g in groups]
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(FIG_WIDTH_IN, sum(heights) + TITLE_IN), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
        for ax, group in zip(axes, groups):
            _draw_panel(ax, group, xlabel)
        fig.suptitle(plain_label(title), fontweight="bold")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return Chart(uri=svg_data_uri(buffer.getvalue()), alt=alt)


def svg_data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _draw_panel(ax, group: BarGroup, xlabel: str) -> None:
    positions = list(range(len(group.bars)))[::-1]
    values = [b.value for b in group.bars]
    ax.barh(positions, values, color=BAR_COLOR, height=0.7, xerr=_whiskers(group.bars),
            error_kw={"ecolor": "#333333", "capsize": 3, "elinewidth": 1})
    ax.set_yticks(positions, [plain_label(b.label) for b in group.bars])
    for position, bar in zip(positions, group.bars):
        text = f"{bar.value:,.4g}" + (f"  ({plain_label(bar.note)})" if bar.note else "")
        ax.text(max(bar.value, bar.high or 0), position, "  " + text, va="center", fontsize=9)
    for index, (value, label) in enumerate(group.ceilings):
        ax.axvline(value, linestyle="--", linewidth=1.5, color=CEILING_COLORS[index % len(CEILING_COLORS)],
                   label=plain_label(f"ceiling {value:,.4g}: {label}"))
    if group.ceilings:
        # Above the panel, beside its title: inside it would cover the longest bar's label.
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, borderaxespad=0.2)
    top = max(values + [b.high or 0 for b in group.bars] + [v for v, _ in group.ceilings] + [0.0])
    ax.set_xlim(0, (top or 1.0) * X_HEADROOM)
    ax.set_title(plain_label(group.name), loc="left", fontweight="bold")
    ax.set_xlabel(plain_label(xlabel))
    ax.grid(axis="x", alpha=0.3)


def _whiskers(bars: Sequence[Bar]) -> list[list[float]] | None:
    """matplotlib wants distances below and above each bar; bars without a range get none."""
    if not any(b.low is not None and b.high is not None for b in bars):
        return None
    below = [max(b.value - b.low, 0.0) if b.low is not None and b.high is not None else 0.0 for b in bars]
    above = [max(b.high - b.value, 0.0) if b.low is not None and b.high is not None else 0.0 for b in bars]
    return [below, above]
