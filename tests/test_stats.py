from __future__ import annotations

import math

import pytest

from ai_ready.measure.stats import CV_WARN_THRESHOLD, noise_warning, summarize


def test_summary_of_known_samples() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5
    assert s.median == 3.0
    assert s.mean == 3.0
    assert s.min == 1.0 and s.max == 5.0
    assert s.q1 == 2.0 and s.q3 == 4.0 and s.iqr == 2.0
    assert s.p10 == pytest.approx(1.4) and s.p90 == pytest.approx(4.6)
    assert s.std == pytest.approx(math.sqrt(2.5))
    assert s.cv == pytest.approx(math.sqrt(2.5) / 3.0)


def test_single_sample_has_zero_spread() -> None:
    s = summarize([0.25])
    assert (s.n, s.median, s.std, s.cv, s.iqr) == (1, 0.25, 0.0, 0.0, 0.0)


def test_noise_warning_above_threshold_only() -> None:
    steady = summarize([1.0, 1.01, 0.99, 1.0])
    noisy = summarize([1.0, 1.5, 0.6, 1.2])
    assert steady.cv < CV_WARN_THRESHOLD and noise_warning(steady, "x") is None
    assert noisy.noisy
    message = noise_warning(noisy, "square-64-fp32")
    assert message is not None and "square-64-fp32" in message and "10%" in message


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_rejects_empty_or_non_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)
