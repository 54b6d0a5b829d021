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

#: Letters, digits, separators and a few symbols DejaVu Sans (matplotlib's bundled font) draws: arrows, middle dot,
#: dashes, µ, ≤, ≥ (the chart writes glyphs as paths, so only that font's glyphs can appear).
_UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9 ._,:+\-×/()%=→←↔·–—µ≤≥²³]")


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


_METADATA = re.compile(rb"<metadata>.*?</metadata>", re.S)
_LONG_DECIMAL = re.compile(rb"-?\d+\.\d{3,}")
_LINE_BREAKS = re.compile(rb"\s*\n\s*")


def _short(match: re.Match[bytes]) -> bytes:
    """A coordinate to 0.01 pt (0.001 below 1, for glyph scales): far below what a screen or a printer shows."""
    value = float(match.group(0))
    text = (f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}").rstrip("0").rstrip(".")
    return b"0" if text in ("", "-0") else text.encode("ascii")


def compact_svg(svg: bytes) -> bytes:
    """matplotlib's SVG without its metadata block, indentation and sub-0.01 pt decimals (about 15% smaller)."""
    svg = _METADATA.sub(b"", svg)
    svg = _LONG_DECIMAL.sub(_short, svg)
    return _LINE_BREAKS.sub(b" ", svg)


def svg_data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(compact_svg(svg)).decode("ascii")


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


# --------------------------------------------------------------------------- scaling charts

SCALING_FIG_HEIGHT_IN = 6.4
#: Where a GPU count on which nothing fits is marked: this far up from the bottom of each panel (axes fraction).
MISFIT_Y = 0.04
#: ... shifted this many powers of two per system, so the marks of several systems at one GPU count stay apart.
MISFIT_SHIFT_LOG2 = 0.15


@dataclass(frozen=True)
class ScalingSeries:
    """One system's scaling curve: (GPUs, throughput, efficiency) where a layout fits; GPU counts where none does."""

    label: str
    points: list[tuple[float, float, float]]
    misfits: list[float] = field(default_factory=list)
    size: float | None = None  # the whole system's GPUs: a dotted line
    #: The model's relative uncertainty on step time (±u): throughput is shaded from y/(1+u) to y/(1−u).
    uncertainty: float = 0.0


#: Opacity of an uncertainty band: visible behind the line, never hiding another system's.
BAND_ALPHA = 0.18


def scaling_chart(series: Sequence[ScalingSeries], title: str, throughput_label: str, alt: str) -> Chart:
    """Two panels over the number of GPUs (log2 axis, shared): total throughput (log y) above, per-GPU efficiency
    (%) below with the ideal 100% dashed, each system's size dotted. A GPU count on which no layout fits memory is
    an 'x' at the bottom of both panels in its system's colour, so a missing point reads as "does not fit", never
    as a gap."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, NullFormatter

    xs = [x for s in series for x, _, _ in s.points if x > 0] + [x for s in series for x in s.misfits if x > 0]
    xs += [s.size for s in series if s.size and s.size > 0]
    with matplotlib.rc_context(CHART_RC):
        fig = Figure(figsize=(FIG_WIDTH_IN, SCALING_FIG_HEIGHT_IN), layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True)
        styles = _line_styles([Line(s.label, [], s.label) for s in series])
        for index, s in enumerate(series):
            color, marker = styles[s.label]
            points = sorted(p for p in s.points if p[0] > 0)
            fast = [(x, y) for x, y, _ in points if y > 0]
            top.plot([x for x, _ in fast], [y for _, y in fast], color=color, marker=marker, markersize=4,
                     linewidth=1.6, label=plain_label(s.label))
            if fast and 0 < s.uncertainty < 1:
                top.fill_between([x for x, _ in fast], [y / (1 + s.uncertainty) for _, y in fast],
                                 [y / (1 - s.uncertainty) for _, y in fast], color=color, alpha=BAND_ALPHA,
                                 linewidth=0)
            bottom.plot([x for x, _, _ in points], [100.0 * e for _, _, e in points], color=color, marker=marker,
                        markersize=4, linewidth=1.6)
            for ax in (top, bottom):
                misfits = [x for x in s.misfits if x > 0]
                if misfits:
                    # side by side, not on top of each other, when several systems miss the same GPU count
                    shift = 2.0 ** (MISFIT_SHIFT_LOG2 * (index - (len(series) - 1) / 2))
                    ax.plot([x * shift for x in misfits], [MISFIT_Y] * len(misfits), linestyle="none", marker="x",
                            markersize=8, markeredgewidth=2, color=color, transform=ax.get_xaxis_transform(),
                            clip_on=False)
                if s.size:
                    ax.axvline(s.size, linestyle=":", linewidth=1.2, color=color)
        bottom.axhline(100.0, linestyle=CEILING_DASHES, linewidth=1.2, color="#555555")
        if xs:
            _log2_axis(bottom, min(xs), max(xs), lambda v: f"{v:,.0f}")
        top.set_yscale("log")
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _short_count(v)))
        top.yaxis.set_minor_formatter(NullFormatter())
        efficiencies = [100.0 * e for s in series for _, _, e in s.points]
        bottom.set_ylim(0, max(efficiencies + [100.0]) * 1.12)
        handles = [Line2D([], [], color=styles[s.label][0], marker=styles[s.label][1], markersize=4, linewidth=1.6,
                          label=plain_label(s.label)) for s in series]
        if any(s.misfits for s in series):
            handles.append(Line2D([], [], color="#555555", marker="x", markersize=8, markeredgewidth=2,
                                  linestyle="none", label="x: no layout fits memory"))
        handles.append(Line2D([], [], color="#555555", linestyle=CEILING_DASHES, linewidth=1.2,
                              label="100%: per-GPU throughput of the first point"))
        if any(s.size for s in series):
            handles.append(Line2D([], [], color="#555555", linestyle=":", linewidth=1.2, label="whole system"))
        if any(0 < s.uncertainty < 1 for s in series):
            from matplotlib.patches import Patch

            handles.append(Patch(color="#555555", alpha=BAND_ALPHA, label="shaded: the model's uncertainty band"))
        top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        top.set_title(plain_label(title), loc="left", fontweight="bold")
        top.set_ylabel(plain_label(throughput_label))
        bottom.set_ylabel("per-GPU efficiency %")
        bottom.set_xlabel("GPUs")
        for ax in (top, bottom):
            ax.grid(alpha=0.3, which="major")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return Chart(uri=svg_data_uri(buffer.getvalue()), alt=alt)


def _short_count(value: float) -> str:
    """100, 10K, 1M: a throughput on a log axis, short enough for a tick."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"
