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
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

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


# --------------------------------------------------------------------------- line charts

LINE_FIG_HEIGHT_IN = 4.6
#: Okabe–Ito colours: distinct for colour-blind readers and in greyscale print, together with the markers.
LINE_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: At most this many labelled ticks on a log2 axis; the others stay as unlabelled minor ticks.
MAX_X_TICKS = 12
#: Steps between labelled powers of two, tried in order: multiples of 10 land on 1KiB, 1MiB, 1GiB.
LOG2_TICK_STEPS = (1, 2, 5, 10)
#: With y_log=None, a log y axis is chosen when the largest positive value exceeds the smallest by this factor.
LOG_Y_MIN_SPAN = 100.0
#: Room left and right of the outermost sizes on a log2 axis, in powers of two, so end markers stay whole.
X_MARGIN_LOG2 = 0.25
#: Long dashes for ceilings, so they differ from the short dashes a dashed series uses.
CEILING_DASHES = (0, (8, 4))


@dataclass(frozen=True)
class Line:
    """One series: (x, y) points; lines sharing a `color_key` share colour and marker, `dashed` sets the style."""

    label: str
    points: list[tuple[float, float]]
    color_key: str
    dashed: bool = False


def line_chart(lines: Sequence[Line], title: str, xlabel: str, ylabel: str, alt: str,
               ceilings: Sequence[tuple[float, str]] = (), x_log2: bool = False,
               x_tick_format: Callable[[float], str] | None = None, y_log: bool | None = None,
               style_labels: tuple[str, str] | None = None) -> Chart:
    """Series against a shared x axis (log2 when `x_log2`, e.g. message sizes), ceilings as dashed
    horizontal lines, legend beside the axes so a dozen lines never cover the data.

    With `style_labels` (what solid and dashed mean) the legend names each colour key once plus the two
    styles, instead of every line: six operations in two placements take eight entries, not twelve."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    drawn = [line for line in lines if line.points]
    xs = [x for line in drawn for x, _ in line.points if not x_log2 or x > 0]
    ys = [y for line in drawn for _, y in line.points]
    use_log_y = _wants_log_y(ys + [v for v, _ in ceilings]) if y_log is None else y_log
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(FIG_WIDTH_IN, LINE_FIG_HEIGHT_IN), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        styles = _line_styles(drawn)
        _draw_lines(ax, drawn, styles, keep=lambda x, y: (not x_log2 or x > 0) and (not use_log_y or y > 0))
        marks = _draw_ceilings(ax, ceilings)
        if x_log2 and xs:
            _log2_axis(ax, min(xs), max(xs), x_tick_format)
        _y_axis(ax, use_log_y)
        if drawn or ceilings:
            handles = _compact_legend(styles, style_labels) + marks if style_labels else None
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.set_title(plain_label(title), loc="left", fontweight="bold")
        ax.set_xlabel(plain_label(xlabel))
        ax.set_ylabel(plain_label(ylabel))
        ax.grid(alpha=0.3, which="major")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return Chart(uri=svg_data_uri(buffer.getvalue()), alt=alt)


def _draw_lines(ax, lines: Sequence[Line], styles: dict[str, tuple[str, str]],
                keep: Callable[[float, float], bool]) -> None:
    """Each line in x order; points a log axis cannot show (zero or negative) are left out of the drawing."""
    for line in lines:
        points = sorted((x, y) for x, y in line.points if keep(x, y))
        color, marker = styles[line.color_key]
        ax.plot([x for x, _ in points], [y for _, y in points], color=color, marker=marker, markersize=4,
                linewidth=1.6, linestyle="--" if line.dashed else "-", label=plain_label(line.label))


def _draw_ceilings(ax, ceilings: Sequence[tuple[float, str]]) -> list:
    marks = []
    for index, (value, label) in enumerate(ceilings):
        marks.append(ax.axhline(value, linestyle=CEILING_DASHES, linewidth=1.5,
                                color=CEILING_COLORS[index % len(CEILING_COLORS)],
                                label=plain_label(f"ceiling {value:,.4g}: {label}")))
    return marks


def _compact_legend(styles: dict[str, tuple[str, str]], style_labels: tuple[str, str]) -> list:
    """One entry per colour key, then one per line style (in grey)."""
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], color=color, marker=marker, markersize=4, linewidth=1.6, label=plain_label(key))
            for key, (color, marker) in styles.items()]
    kinds = [Line2D([], [], color="#555555", linewidth=1.6, linestyle=style, label=plain_label(label))
             for style, label in zip(("-", "--"), style_labels)]
    return keys + kinds


def _wants_log_y(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) > LOG_Y_MIN_SPAN * min(positive)


def _line_styles(lines: Sequence[Line]) -> dict[str, tuple[str, str]]:
    """Colour and marker per colour key, in order of first appearance."""
    styles: dict[str, tuple[str, str]] = {}
    for line in lines:
        if line.color_key not in styles:
            i = len(styles)
            styles[line.color_key] = (LINE_COLORS[i % len(LINE_COLORS)], LINE_MARKERS[i % len(LINE_MARKERS)])
    return styles


def log2_ticks(low: float, high: float) -> list[int]:
    """Exponents of the labelled powers of two between `low` and `high`: at most MAX_X_TICKS, evenly stepped."""
    lo, hi = math.floor(math.log2(low)), math.ceil(math.log2(high))
    for step in LOG2_TICK_STEPS:
        ticks = [e for e in range(lo, hi + 1) if e % step == 0]
        if len(ticks) <= MAX_X_TICKS:
            return ticks if len(ticks) >= 2 else list(range(lo, hi + 1))
    return [e for e in range(lo, hi + 1) if e % LOG2_TICK_STEPS[-1] == 0]


def _log2_axis(ax, low: float, high: float, fmt: Callable[[float], str] | None) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter

    ax.set_xscale("log", base=2)
    lo, hi = math.floor(math.log2(low)), math.ceil(math.log2(high))
    ax.set_xlim(2.0 ** (lo - X_MARGIN_LOG2), 2.0 ** (hi + X_MARGIN_LOG2))
    ticks = [2.0 ** e for e in log2_ticks(2.0 ** lo, 2.0 ** hi)]
    ax.set_xticks(ticks, [plain_label(fmt(t) if fmt else f"{t:g}") for t in ticks])
    ax.xaxis.set_minor_locator(FixedLocator([2.0 ** e for e in range(lo, hi + 1)]))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _y_axis(ax, log: bool) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
