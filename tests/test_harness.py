from __future__ import annotations

import pytest

from conftest import FakeClock, run_ranks
from ai_ready.measure.comm import agree
from ai_ready.measure.harness import Budget, Plan, make_plan, measure
from ai_ready.measure.timers import HostTimer


def work(clock: FakeClock, seconds: float):
    calls = []

    def fn() -> None:
        calls.append(1)
        clock.advance(seconds)

    return fn, calls


def test_constant_work_gives_exact_statistics(fake_clock: FakeClock) -> None:
    fn, calls = work(fake_clock, 2e-3)
    budget = Budget(warmup_s=0.1, min_time_s=0.05, min_samples=5, max_samples=100, min_block_s=1e-3)
    m = measure(fn, budget, HostTimer(clock=fake_clock))
    s = m.summary()
    assert m.plan == Plan(warmup_calls=50, inner=1, samples=25)
    assert s.n == 25 and s.median == pytest.approx(2e-3) and s.cv == pytest.approx(0.0, abs=1e-9)
    assert m.warmup_s == pytest.approx(0.1)
    # 1 cold call + 1 calibration call + 50 warm-up + 25 samples, nothing else
    assert len(calls) == 1 + 1 + 50 + 25
    assert m.warnings == []


def test_short_calls_are_grouped_until_clock_overhead_vanishes(fake_clock: FakeClock) -> None:
    fn, _ = work(fake_clock, 1e-5)
    budget = Budget(warmup_s=0.01, min_time_s=0.02, min_samples=3, max_samples=50, min_block_s=1e-3)
    m = measure(fn, budget, HostTimer(clock=fake_clock))
    assert m.calibration_calls == 1 + 4 + 16 + 64 + 256
    assert m.plan.inner == 100  # 1 ms blocks of 10 µs calls
    assert m.summary().median == pytest.approx(1e-5)
    assert m.timing_dict()["inner"] == 100 and len(m.timing_dict()["samples_s"]) == m.plan.samples


def test_noisy_measurement_warns_and_keeps_every_sample(fake_clock: FakeClock) -> None:
    durations = iter([1e-3, 3e-3] * 10_000)

    def fn() -> None:
        fake_clock.advance(next(durations))

    budget = Budget(warmup_s=0.01, min_time_s=0.02, min_samples=10, max_samples=10, min_block_s=1e-4)
    m = measure(fn, budget, HostTimer(clock=fake_clock), label="jittery")
    assert len(m.samples_s) == 10
    assert max(m.samples_s) == pytest.approx(3e-3) and min(m.samples_s) == pytest.approx(1e-3)
    assert m.warnings and "jittery" in m.warnings[0]


def test_make_plan_respects_sample_bounds() -> None:
    budget = Budget(warmup_s=1.0, min_time_s=10.0, min_samples=5, max_samples=20, min_block_s=1e-3)
    assert make_plan(1.0, budget) == Plan(warmup_calls=1, inner=1, samples=10)
    assert make_plan(100.0, budget).samples == 5  # never fewer than min_samples
    assert make_plan(1e-4, budget).samples == 20  # never more than max_samples


def test_rank_zero_decides_iteration_counts_for_every_rank() -> None:
    """Ranks whose calls take different times still run identical counts (no collective deadlock)."""
    speeds = [1e-3, 7e-3, 3e-4]

    def rank_body(comm):
        clock = FakeClock()
        fn, calls = work(clock, speeds[comm.rank])
        budget = Budget(warmup_s=0.05, min_time_s=0.05, min_samples=4, max_samples=40, min_block_s=2e-3)
        m = measure(fn, budget, HostTimer(clock=clock), comm=comm)
        return m.plan, len(calls), m.summary().median

    results = run_ranks(3, rank_body)
    plans = {r[0] for r in results}
    counts = {r[1] for r in results}
    assert len(plans) == 1 and len(counts) == 1
    assert [r[2] for r in results] == pytest.approx(speeds)  # each rank keeps its own times


def test_agree_names_the_failing_ranks() -> None:
    results = run_ranks(3, lambda comm: agree(comm, comm.rank != 1))
    assert results == [(False, [1])] * 3
    assert run_ranks(2, lambda comm: agree(comm, True)) == [(True, [])] * 2
