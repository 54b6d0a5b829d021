"""The statistics behind an acceptance verdict: reference bounds, history, change points, fleet outliers.

Four independent checks of one figure (one metric on one node):

* **reference**: ReFrame-style bounds ``value * (1 + lower) .. value * (1 + upper)``; deterministic.
* **history**: tonight against the last good nights, robustly. The median of the last
  :data:`HISTORY_NIGHTS` good nights is the level, a MAD over the horizon's good nights the spread;
  tonight alarms only when it is worse than the level by more than a calibrated number of robust
  standard deviations (:func:`regression_threshold`: false-alarm probability :data:`REGRESSION_ALPHA`
  on normal noise, whatever the number of nights) *and* by more than :data:`MIN_EFFECT` (a change too
  small to matter is not a regression however certain), *and*, where raw samples exist, a one-sided
  Mann-Whitney U test of tonight's samples against the recent nights' samples agrees
  (p < :data:`RANK_ALPHA`). The median of the latest :data:`SUSTAINED_NIGHTS` nights is judged the
  same way, which catches a lasting shift that one noisy night cannot show. Night-to-night spread is
  the yardstick, not the spread within a night: samples of one night share that night's state, so
  testing them alone would call every quiet night a change. Nights judged regressions leave the
  baseline, so a regression keeps alarming until it is fixed (or leaves the horizon).
* **change point**: Pettitt's rank test over the series of nightly figures finds a lasting shift that
  no single night shows clearly (-5% ten nights ago, with 3% sample and 1% night-to-night noise: caught
  on 9 histories in 10 by this test alone). It alarms when the shift is
  significant (p < :data:`CHANGE_POINT_ALPHA`), worse by more than :data:`MIN_EFFECT`, and still there
  in the latest nights.
* **fleet outlier**: a node worse than the median of the nodes in the same run by more than a margin
  (:data:`OUTLIER_MARGIN` unless the suite sets one), confirmed by a rank test where samples exist.

The thresholds are calibrated on synthetic noise-only histories (:mod:`ai_ready.accept.synthetic`:
0.5-3% between nights, 2-5% between samples, Student-t tails): noise alone alarms on about 0.2% of
metric-nights (limit 1%), and a -10% step on 3% noise is caught the night it appears in 99% of cases
(``tests/test_accept_detect.py``, ``benchmarks/accept_false_alarms.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

HIGHER = "higher"
LOWER = "lower"
DIRECTIONS = (HIGHER, LOWER)

#: Outcomes of one check. `fail`, `regression` and `outlier` fail the test case; the others do not.
PASS, FAIL, REGRESSION, OUTLIER, SKIPPED, NOT_CHECKED = "pass", "fail", "regression", "outlier", "skipped", "n/a"
FAILING = (FAIL, REGRESSION, OUTLIER)

#: Past nights read from the history for one verdict: the change-point test scans them all, the
#: history check the most recent good ones among them.
HORIZON_NIGHTS = 29
#: Good past nights the history check compares tonight with (the most recent ones).
HISTORY_NIGHTS = 14
#: Fewer past nights than this: no history verdict (the median and MAD of fewer are not robust).
MIN_HISTORY_NIGHTS = 5
#: MAD x 1.4826 estimates the standard deviation of normal data.
MAD_TO_SIGMA = 1.4826
#: Degrees of freedom per night of a MAD-based spread: its variance is about 1.36 sigma^2 / n, as much as
#: a sample standard deviation's with n / 2.72 degrees of freedom (Rousseeuw & Croux 1993).
MAD_DF_PER_NIGHT = 1 / 2.72
#: One-sided false-alarm probability of the history check on normal noise. Its threshold is the Student-t
#: quantile for the spread's degrees of freedom, widened for the uncertainty of the median, so a short
#: history alarms no more often than a long one (about 4.3 robust standard deviations with 29 nights).
REGRESSION_ALPHA = 0.001
#: Latest nights (tonight included) whose median is also compared with the nights before them.
SUSTAINED_NIGHTS = 3
#: Variance of the median of k normal values in units of sigma^2 (exact for 1 and 3; pi/2k for large k).
MEDIAN_VARIANCE = {1: 1.0, 3: 0.4487}
#: The change must also be at least this fraction: smaller ones are not worth waking anyone for.
MIN_EFFECT = 0.03
#: Floor of the relative robust spread, so a history of identical figures does not make 0.1% an alarm.
MIN_RELATIVE_SPREAD = 0.002
#: One-sided Mann-Whitney U threshold for tonight's samples against the recent nights' samples.
RANK_ALPHA = 0.01
#: Nights whose raw samples are pooled as the rank test's reference.
RANK_NIGHTS = 5
#: Fewer raw samples than this on either side: the rank test is left out.
MIN_RANK_SAMPLES = 5

#: Nightly figures (tonight included) that the change-point test scans.
CHANGE_POINT_NIGHTS = HORIZON_NIGHTS + 1
#: Shorter series: no change-point test.
MIN_CHANGE_POINT_NIGHTS = 10
#: Pettitt p-value threshold (its approximation is conservative, so the real rate is lower still).
CHANGE_POINT_ALPHA = 0.001
#: Nights on each side of a change point, at least, for its levels to mean something.
MIN_SEGMENT_NIGHTS = 3
#: The latest nights that must still show the shift (their median), so a recovered drop stops alarming.
LATEST_NIGHTS = 3

#: A node worse than the fleet median by more than this fraction is named, unless the suite sets a margin.
OUTLIER_MARGIN = 0.10
#: Fewer nodes than this in a run: no fleet comparison (a median of two is just their mean).
MIN_FLEET_NODES = 3
#: One-sided Mann-Whitney U threshold for a node's samples against the other nodes' samples.
OUTLIER_ALPHA = 0.01


@dataclass(frozen=True)
class Night:
    """One past night's figure of one metric (on one node, or the fleet's median)."""

    run_id: int
    started: str
    value: float
    samples: tuple[float, ...] = ()
    #: This night was itself judged a regression: it stays in the series (change points) but not in the
    #: baseline tonight is compared with, so a regression keeps alarming until fixed or rebased.
    flagged: bool = False


@dataclass(frozen=True)
class Reference:
    """ReFrame-style reference: bounds are ``value * (1 + lower)`` and ``value * (1 + upper)``; None is unbounded."""

    value: float
    lower: float | None
    upper: float | None
    unit: str
    key: str = "*"
    #: Where the figure comes from (a datasheet, a measured run): shown with the verdict.
    source: str = ""

    def bounds(self) -> tuple[float | None, float | None]:
        low = None if self.lower is None else self.value * (1 + self.lower)
        high = None if self.upper is None else self.value * (1 + self.upper)
        return low, high

    def describe(self) -> str:
        lower = "-inf" if self.lower is None else f"{self.lower:+.0%}"
        upper = "+inf" if self.upper is None else f"{self.upper:+.0%}"
        return f"{self.value:.4g} {self.unit} ({lower}..{upper}, reference for {self.key})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "lower": self.lower, "upper": self.upper, "unit": self.unit,
                               "key": self.key}
        if self.source:
            out["source"] = self.source
        return out


@dataclass
class Finding:
    """What one check said about one figure, in words and in numbers."""

    check: str
    outcome: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "outcome": self.outcome, "message": self.message, "detail": self.detail}


def worse_by(value: float, base: float, better: str) -> float:
    """How much worse `value` is than `base`, as a fraction of |base| (negative: better)."""
    if base == 0:
        return 0.0 if value == base else math.copysign(math.inf, (base - value) if better == HIGHER else (value - base))
    change = (value - base) / abs(base)
    return -change if better == HIGHER else change


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# --------------------------------------------------------------------------- reference

def check_reference(value: float, unit: str, reference: Reference | None, where: str) -> Finding:
    """Inside the reference bounds or not; no reference means the figure is judged by its history only."""
    if reference is None:
        return Finding("reference", NOT_CHECKED, f"no reference for {where}: checked against history only")
    if reference.unit != unit:
        return Finding("reference", FAIL, f"the reference is in {reference.unit} but the benchmark reports {unit}; "
                                          "fix the suite's unit", {"reference": reference.to_dict()})
    low, high = reference.bounds()
    detail = {"reference": reference.to_dict(), "low": low, "high": high}
    ratio = f"{value / reference.value - 1:+.1%} vs the reference {reference.describe()}"
    if low is not None and value < low:
        return Finding("reference", FAIL, f"{_fmt(value)} {unit} is below {_fmt(low)}: {ratio}", detail)
    if high is not None and value > high:
        return Finding("reference", FAIL, f"{_fmt(value)} {unit} is above {_fmt(high)}: {ratio}", detail)
    return Finding("reference", PASS, f"{_fmt(value)} {unit} within {ratio}", detail)


# --------------------------------------------------------------------------- history

def robust_spread(values: Sequence[float]) -> tuple[float, float]:
    """Median and MAD-based standard deviation of `values`."""
    array = np.asarray(values, dtype=np.float64)
    median = float(np.median(array))
    return median, MAD_TO_SIGMA * float(np.median(np.abs(array - median)))


def rank_p_value(tonight: Sequence[float], reference: Sequence[float], better: str) -> float | None:
    """One-sided Mann-Whitney U p-value that tonight's samples are worse; None with too few samples."""
    if len(tonight) < MIN_RANK_SAMPLES or len(reference) < MIN_RANK_SAMPLES:
        return None
    from scipy.stats import mannwhitneyu

    alternative = "less" if better == HIGHER else "greater"
    return float(mannwhitneyu(tonight, reference, alternative=alternative).pvalue)


def regression_threshold(window_nights: int, level_nights: int, spread_nights: int) -> float:
    """Robust standard deviations a window's median must be worse by: the one-sided Student-t quantile at
    REGRESSION_ALPHA for a MAD over `spread_nights` nights, times the standard error of (the window's
    median minus the level's median of `level_nights` nights) in units of sigma."""
    from scipy.stats import t as student_t

    df = max(MAD_DF_PER_NIGHT * spread_nights, 1.0)
    window_variance = MEDIAN_VARIANCE.get(window_nights, math.pi / (2 * window_nights))
    return float(student_t.ppf(1 - REGRESSION_ALPHA, df)) * math.sqrt(window_variance + math.pi / (2 * level_nights))


@dataclass(frozen=True)
class _Shift:
    """A window of latest nights against the good nights before it."""

    nights: int
    value: float
    level: float
    sigma: float
    worse: float
    z: float
    threshold: float
    rank_p: float | None
    level_nights: int

    @property
    def regressed(self) -> bool:
        return self.z > self.threshold and self.worse > MIN_EFFECT and (self.rank_p is None or self.rank_p < RANK_ALPHA)


def _shift(window: Sequence[Night], before: Sequence[Night], better: str, nights: int) -> _Shift | None:
    good = [n for n in before if not n.flagged]
    recent = good[-nights:]
    if len(recent) < MIN_HISTORY_NIGHTS:
        return None
    level = float(np.median([n.value for n in recent]))
    _, sigma = robust_spread([n.value for n in good])
    scale = max(sigma, MIN_RELATIVE_SPREAD * abs(level))
    value = float(np.median([n.value for n in window]))
    worse = worse_by(value, level, better)
    z = worse * abs(level) / scale if scale > 0 else 0.0
    threshold = regression_threshold(len(window), len(recent), len(good))
    p = rank_p_value([s for n in window for s in n.samples], [s for n in recent[-RANK_NIGHTS:] for s in n.samples],
                     better)
    return _Shift(len(window), value, level, sigma, worse, z, threshold, p, len(recent))


def check_history(tonight: Night, history: Sequence[Night], better: str, nights: int = HISTORY_NIGHTS) -> Finding:
    """Tonight, and the latest SUSTAINED_NIGHTS nights together, against the good nights before them.

    The level is the median of the last `nights` good nights, the spread a MAD over all good nights in
    `history` (more nights, a steadier spread; a level that moved only widens it, which errs on the quiet
    side). Nights judged regressions are left out of both, so a regression that stays keeps alarming
    while good nights remain in the horizon. The latest nights together catch a lasting shift too small
    for one noisy night to show (their median varies less than one night does)."""
    past = list(history)
    single = _shift([tonight], past, better, nights)
    if single is None:
        good = sum(1 for n in past if not n.flagged)
        return Finding("history", NOT_CHECKED, f"history too short ({good} good night(s); the check needs "
                                               f"{MIN_HISTORY_NIGHTS}): not checked against history", {"nights": good})
    sustained = None
    if len(past) >= SUSTAINED_NIGHTS - 1:
        window = [*past[len(past) - (SUSTAINED_NIGHTS - 1):], tonight]
        sustained = _shift(window, past[: len(past) - (SUSTAINED_NIGHTS - 1)], better, nights)
    hit = single if single.regressed else (sustained if sustained is not None and sustained.regressed else None)
    shown = hit or single
    what = "tonight" if shown.nights == 1 else f"the last {shown.nights} nights (median)"
    summary = (f"history: median {_fmt(shown.level)} over {shown.level_nights} good nights (robust sd "
               f"{_fmt(shown.sigma)}); {what} {_fmt(shown.value)} is {_change_words(shown.worse)} "
               f"({shown.z:+.1f} sd, alarm beyond {shown.threshold:.1f}"
               + (f"; rank test p={shown.rank_p:.2g})" if shown.rank_p is not None else ")"))
    detail = {"tonight": _shift_dict(single), "sustained": _shift_dict(sustained) if sustained else None}
    return Finding("history", REGRESSION if hit else PASS, ("regression against " if hit else "") + summary, detail)


def _shift_dict(shift: _Shift) -> dict[str, Any]:
    return {"nights": shift.nights, "value": shift.value, "median": shift.level, "sigma": shift.sigma,
            "worse_by": shift.worse, "z": shift.z, "threshold": shift.threshold, "rank_p": shift.rank_p,
            "level_nights": shift.level_nights}


def _change_words(worse: float) -> str:
    if worse == 0:
        return "unchanged"
    return f"{abs(worse):.1%} " + ("worse" if worse > 0 else "better")


# --------------------------------------------------------------------------- change points

def pettitt(series: Sequence[float]) -> tuple[int, float, float]:
    """Pettitt's (1979) non-parametric change-point test.

    Returns (t, K, p): the last index of the first segment, the statistic K = max |U_t| and its
    approximate p-value 2 exp(-6 K^2 / (n^3 + n^2)), which is conservative for small n.
    """
    x = np.asarray(series, dtype=np.float64)
    n = x.size
    if n < 2:
        return 0, 0.0, 1.0
    signs = np.sign(x[:, None] - x[None, :]).sum(axis=1)  # V_t = sum_j sgn(x_t - x_j)
    u = np.cumsum(signs)[:-1]                              # U_t = U_{t-1} + V_t
    t = int(np.argmax(np.abs(u)))
    k = float(abs(u[t]))
    p = min(1.0, 2.0 * math.exp(-6.0 * k * k / (n ** 3 + n ** 2)))
    return t, k, p


def check_change_point(series: Sequence[Night], better: str) -> Finding:
    """A lasting worse shift in the last nights (tonight last in `series`)."""
    recent = list(series)[-CHANGE_POINT_NIGHTS:]
    if len(recent) < MIN_CHANGE_POINT_NIGHTS:
        return Finding("change-point", NOT_CHECKED, f"change points: series too short to test "
                                                    f"({len(recent)} of {MIN_CHANGE_POINT_NIGHTS} nights)")
    values = [n.value for n in recent]
    t, k, p = pettitt(values)
    before, after = values[: t + 1], values[t + 1:]
    if len(before) < MIN_SEGMENT_NIGHTS or len(after) < MIN_SEGMENT_NIGHTS:
        return Finding("change-point", PASS, f"change points: none over {len(values)} nights (Pettitt p={p:.2g})",
                       {"p": p, "nights": len(values)})
    level_before, level_after = float(np.median(before)), float(np.median(after))
    latest = float(np.median(values[-LATEST_NIGHTS:]))
    shift, still = worse_by(level_after, level_before, better), worse_by(latest, level_before, better)
    detail = {"p": p, "k": k, "index": t + 1, "since": recent[t + 1].started, "before": level_before,
              "after": level_after, "worse_by": shift, "nights": len(values)}
    if p < CHANGE_POINT_ALPHA and shift > MIN_EFFECT and still > MIN_EFFECT:
        return Finding("change-point", REGRESSION,
                       f"regression: change point since {recent[t + 1].started}: level {_fmt(level_before)} -> "
                       f"{_fmt(level_after)} "
                       f"({_change_words(shift)}, Pettitt p={p:.2g}, {len(after)} nights after)", detail)
    return Finding("change-point", PASS, f"change points: no lasting worse shift over {len(values)} nights "
                                         f"(Pettitt p={p:.2g})",
                   detail)


# --------------------------------------------------------------------------- fleet

@dataclass(frozen=True)
class NodeFigure:
    """One node's figure of one metric in this run, with its raw samples."""

    value: float
    samples: tuple[float, ...] = ()


def fleet_outliers(nodes: Mapping[str, NodeFigure], better: str, margin: float = OUTLIER_MARGIN) -> dict[str, Finding]:
    """Each node against the fleet median of the same run; empty when the fleet is too small to judge."""
    if len(nodes) < MIN_FLEET_NODES:
        return {}
    fleet = float(np.median([f.value for f in nodes.values()]))
    findings = {}
    for node, figure in nodes.items():
        worse = worse_by(figure.value, fleet, better)
        others = [s for other, f in nodes.items() if other != node for s in f.samples]
        p = rank_p_value(figure.samples, others, better)
        detail = {"fleet_median": fleet, "worse_by": worse, "margin": margin, "rank_p": p, "fleet_nodes": len(nodes)}
        words = (f"{_fmt(figure.value)} is {_change_words(worse)} than the fleet median {_fmt(fleet)} of "
                 f"{len(nodes)} nodes")
        words = words.replace(" unchanged than", " equal to")
        if worse > margin and (p is None or p < OUTLIER_ALPHA):
            findings[node] = Finding("outlier", OUTLIER, f"node {node} is an outlier: {words} "
                                                         f"(margin {margin:.0%})", detail)
        else:
            findings[node] = Finding("outlier", PASS, f"fleet: {words}", detail)
    return findings


def history_findings(tonight: Night, past: Sequence[Night], better: str,
                     nights: int = HISTORY_NIGHTS) -> list[Finding]:
    """Both history checks of tonight's figure: against the last nights, and for a change point."""
    return [check_history(tonight, past, better, nights),
            check_change_point([*past, tonight], better)]
