"""The acceptance verdict statistics: references, history, change points, fleet outliers, and the
false-alarm rate on noise-only synthetic histories (must stay under 1%) with the power to catch a step."""

from __future__ import annotations

import numpy as np
import pytest

from ai_ready.accept import detect
from ai_ready.accept.detect import (FAIL, HIGHER, LOWER, NOT_CHECKED, OUTLIER, PASS, REGRESSION, Night, NodeFigure,
                                    Reference, check_change_point, check_history, check_reference, fleet_outliers,
                                    pettitt, regression_threshold, worse_by)
from ai_ready.accept.synthetic import STEP_MODEL, NoiseModel, detection_power, false_alarm_rate, history, judge_nights

#: Noise-only histories in the false-alarm measurement (each judged night by night over 30 nights).
FALSE_ALARM_HISTORIES = 216
#: The per-metric alarm rate that noise alone must stay under.
MAX_FALSE_ALARM_RATE = 0.01
#: Histories with a planted -10% step on the last night, and the share that must be caught that night.
POWER_TRIALS = 100
MIN_POWER = 0.9


def nights(values: list[float], samples: int = 0, spread: float = 0.0) -> list[Night]:
    rng = np.random.default_rng(0)
    return [Night(i, f"n{i:02d}", v, tuple(v * (1 + spread * rng.standard_normal(samples))))
            for i, v in enumerate(values)]


def test_worse_by_follows_the_direction() -> None:
    assert worse_by(90, 100, HIGHER) == pytest.approx(0.10)
    assert worse_by(110, 100, HIGHER) == pytest.approx(-0.10)
    assert worse_by(110, 100, LOWER) == pytest.approx(0.10)


def test_reference_bounds_are_reframe_fractions() -> None:
    ref = Reference(value=100.0, lower=-0.1, upper=None, unit="GB/s", key="local")
    assert check_reference(95.0, "GB/s", ref, "local").outcome == PASS
    low = check_reference(89.0, "GB/s", ref, "local")
    assert low.outcome == FAIL and "below 90" in low.message and "reference" in low.message
    bounded = Reference(value=100.0, lower=-0.05, upper=0.05, unit="GB/s")
    assert check_reference(106.0, "GB/s", bounded, "x").outcome == FAIL  # suspiciously fast fails too
    assert check_reference(95.0, "TB/s", ref, "local").outcome == FAIL  # a unit mismatch is the suite's error
    missing = check_reference(95.0, "GB/s", None, "system local")
    assert missing.outcome == NOT_CHECKED and "checked against history only" in missing.message


def test_history_too_short_is_not_a_verdict() -> None:
    finding = check_history(Night(0, "t", 50.0), nights([100.0] * 4), HIGHER)
    assert finding.outcome == NOT_CHECKED and "history too short" in finding.message


def test_a_clear_drop_is_a_regression_and_a_gain_is_not() -> None:
    past = nights([100 + d for d in (0.5, -0.4, 0.8, -1.0, 0.2, 0.1, -0.6, 0.9, -0.2, 0.4)], samples=10, spread=0.01)
    rng = np.random.default_rng(1)
    drop = Night(99, "tonight", 85.0, tuple(85 * (1 + 0.01 * rng.standard_normal(10))))
    finding = check_history(drop, past, HIGHER)
    assert finding.outcome == REGRESSION and "tonight 85 is 15.1% worse" in finding.message
    gain = Night(99, "tonight", 115.0, tuple(115 * (1 + 0.01 * rng.standard_normal(10))))
    assert check_history(gain, past, HIGHER).outcome == PASS
    assert check_history(gain, past, LOWER).outcome == REGRESSION  # a time that grew by 15%


def test_a_small_change_on_a_steady_history_is_not_worth_an_alarm() -> None:
    past = nights([100.0] * 10)
    assert check_history(Night(99, "t", 98.0), past, HIGHER).outcome == PASS  # 2% < MIN_EFFECT
    assert check_history(Night(99, "t", 90.0), past, HIGHER).outcome == REGRESSION


def test_flagged_nights_stay_out_of_the_baseline_so_a_regression_keeps_alarming() -> None:
    good = nights([100 + d for d in (0.5, -0.4, 0.8, -1.0, 0.2, 0.1, -0.6, 0.9, -0.2, 0.4)])
    bad = [Night(20 + i, f"b{i}", 80.0 + (i % 3) * 0.1, flagged=True) for i in range(12)]
    assert check_history(Night(99, "t", 80.2), good + bad, HIGHER).outcome == REGRESSION
    unflagged = [Night(n.run_id, n.started, n.value) for n in bad]
    assert check_history(Night(99, "t", 80.2), good + unflagged, HIGHER).outcome == PASS


def test_the_threshold_widens_for_short_histories() -> None:
    assert regression_threshold(1, 5, 5) > regression_threshold(1, 14, 29) > 3.0
    assert regression_threshold(3, 14, 29) < regression_threshold(1, 14, 29)  # a median of 3 nights varies less


def test_pettitt_finds_the_step() -> None:
    rng = np.random.default_rng(3)
    series = list(100 + rng.standard_normal(30))
    series[18:] = [v - 8 for v in series[18:]]
    t, k, p = pettitt(series)
    assert t == 17 and p < 1e-4
    assert pettitt([1.0] * 10)[2] == 1.0


def test_a_lasting_moderate_shift_is_a_change_point() -> None:
    rng = np.random.default_rng(4)
    values = [100 * (1 + 0.01 * rng.standard_normal()) for _ in range(30)]
    values[18:] = [v * 0.95 for v in values[18:]]
    series = [Night(i, f"n{i:02d}", v) for i, v in enumerate(values)]
    finding = check_change_point(series, HIGHER)
    assert finding.outcome == REGRESSION and "change point since n18" in finding.message
    recovered = series[:25] + [Night(i, f"n{i:02d}", 100.0) for i in range(25, 30)]
    assert check_change_point(recovered, HIGHER).outcome != REGRESSION  # the latest nights are fine again
    assert check_change_point(series[:8], HIGHER).outcome == NOT_CHECKED


def test_a_slow_node_is_named_and_the_others_pass() -> None:
    rng = np.random.default_rng(5)
    fleet = {f"node{i:02d}": 100.0 for i in range(8)}
    fleet["node03"] = 85.0
    figures = {n: NodeFigure(v, tuple(v * (1 + 0.02 * rng.standard_normal(10)))) for n, v in fleet.items()}
    findings = fleet_outliers(figures, HIGHER)
    assert findings["node03"].outcome == OUTLIER and "node node03" in findings["node03"].message
    assert all(f.outcome == PASS for n, f in findings.items() if n != "node03")
    assert fleet_outliers(dict(list(figures.items())[:2]), HIGHER) == {}  # two nodes are no fleet


def test_a_node_within_the_margin_is_not_an_outlier() -> None:
    figures = {f"n{i}": NodeFigure(100.0 - (6.0 if i == 0 else 0.0)) for i in range(5)}
    assert fleet_outliers(figures, HIGHER)["n0"].outcome == PASS
    assert fleet_outliers(figures, HIGHER, margin=0.05)["n0"].outcome == OUTLIER


def test_noise_model_is_what_it_says() -> None:
    rng = np.random.default_rng(6)
    model = NoiseModel(base=50.0, cv_night=0.02, cv_sample=0.0, samples=3, tail_df=float("inf"))
    values = [n.value for n in history(rng, model, 4000)]
    assert np.mean(values) == pytest.approx(50.0, rel=0.005)
    assert np.std(values) / 50.0 == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("better", [HIGHER, LOWER])
def test_noise_alone_raises_fewer_than_one_percent_of_alarms(better: str) -> None:
    """Over 216 noise-only histories (36 noise models, 30 nights each), judged night by night: alarms per
    metric-night, and on the last night of each history, stay under 1%."""
    rate = false_alarm_rate(FALSE_ALARM_HISTORIES, better=better)
    assert rate.histories >= 200 and rate.decisions > 5000
    assert rate.per_night < MAX_FALSE_ALARM_RATE, rate
    assert rate.last_night < MAX_FALSE_ALARM_RATE, rate


def test_a_planted_step_is_caught_the_night_it_appears() -> None:
    """-10% with 3% sample noise (1% between nights, 10 samples a night)."""
    assert detection_power(POWER_TRIALS, STEP_MODEL, step=0.10) >= MIN_POWER
    assert detection_power(POWER_TRIALS, STEP_MODEL, step=0.10, better=LOWER) >= MIN_POWER


def test_a_planted_step_keeps_alarming_on_the_following_nights() -> None:
    rng = np.random.default_rng(7)
    judged = judge_nights(history(rng, STEP_MODEL, 35, step=0.10, step_at=25))
    assert all(n.flagged for n in judged[25:])
    assert not any(n.flagged for n in judged[:25])


def test_thresholds_are_named_constants() -> None:
    assert 0 < detect.REGRESSION_ALPHA < 0.01 and 0 < detect.MIN_EFFECT < 0.1
    assert detect.CHANGE_POINT_NIGHTS == detect.HORIZON_NIGHTS + 1
