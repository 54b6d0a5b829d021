"""The timing harness every benchmark uses.

Shape of one measurement (after pyperf, torch.utils.benchmark and
triton.testing.do_bench):

1. one untimed call (module load, allocation, compilation stay out);
2. calibration: blocks of growing size until one block takes at least
   ``min_block_s``; this gives a per-call estimate;
3. warm-up by time: ``warmup_s`` worth of calls, timed as one block, which
   refines the estimate on a warm machine;
4. the plan: calls per sample (``inner``, so clock overhead vanishes) and the
   number of samples (enough for ``min_time_s``, within
   ``min_samples..max_samples``);
5. the samples, each the mean per-call time of one block.

Under several ranks, rank 0 takes every decision (continue calibrating? the
plan) and broadcasts it, so every rank runs exactly the same number of calls
and collectives inside ``fn`` cannot deadlock. Raw samples are kept;
statistics are computed from them by :mod:`ai_ready.measure.stats`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ai_ready.measure.comm import Comm, SingleComm
from ai_ready.measure.stats import Summary, noise_warning, summarize
from ai_ready.measure.timers import HostTimer, Timer

#: Calibration stops growing the block once it reaches this many calls.
MAX_CALIBRATION_CALLS = 1 << 16
#: Growth factor of the calibration block.
CALIBRATION_GROWTH = 4


@dataclass(frozen=True)
class Budget:
    """How long to warm up and measure. Times are seconds of wall time per case."""

    warmup_s: float = 0.5
    min_time_s: float = 2.0
    min_samples: int = 10
    max_samples: int = 200
    min_block_s: float = 1e-3
    max_inner: int = 10_000
    max_warmup_calls: int = 100_000

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.min_time_s < 0 or self.min_block_s <= 0:
            raise ValueError("budget times must be non-negative (min_block_s positive)")
        if not 1 <= self.min_samples <= self.max_samples:
            raise ValueError("need 1 <= min_samples <= max_samples")


#: A short budget for `--quick` runs and smoke tests.
QUICK = Budget(warmup_s=0.2, min_time_s=0.6, min_samples=5, max_samples=50)
#: The default for real measurements.
DEFAULT = Budget()


@dataclass(frozen=True)
class Plan:
    """The iteration counts rank 0 chose; identical on every rank."""

    warmup_calls: int
    inner: int
    samples: int


@dataclass
class Measurement:
    """Raw per-call seconds of each sample, and how they were obtained."""

    samples_s: list[float]
    plan: Plan
    clock: str
    estimate_s: float
    warmup_s: float
    calibration_calls: int
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> Summary:
        return summarize(self.samples_s)

    def timing_dict(self) -> dict[str, Any]:
        """What a Record keeps under ``timing``."""
        return {
            "clock": self.clock,
            "inner": self.plan.inner,
            "samples": self.plan.samples,
            "warmup_calls": self.plan.warmup_calls,
            "warmup_s": self.warmup_s,
            "calibration_calls": self.calibration_calls,
            "estimate_s": self.estimate_s,
            "cache": "warm",
            "samples_s": list(self.samples_s),
        }


#: Ratios this close to an integer are that integer (timer arithmetic is not exact).
_RATIO_SLACK = 1e-9


def _ceil(ratio: float) -> int:
    return math.ceil(ratio * (1 - _RATIO_SLACK))


def make_plan(estimate_s: float, budget: Budget) -> Plan:
    """Turn a per-call estimate into iteration counts (pure: unit-tested directly)."""
    estimate_s = max(estimate_s, 1e-9)
    warmup = min(budget.max_warmup_calls, max(1, _ceil(budget.warmup_s / estimate_s)))
    inner = min(budget.max_inner, max(1, _ceil(budget.min_block_s / estimate_s)))
    samples = _ceil(budget.min_time_s / (inner * estimate_s))
    samples = min(budget.max_samples, max(budget.min_samples, samples))
    return Plan(warmup_calls=warmup, inner=inner, samples=samples)


def measure(
    fn: Callable[[], Any],
    budget: Budget = DEFAULT,
    timer: Timer | None = None,
    comm: Comm | None = None,
    label: str = "measurement",
) -> Measurement:
    """Time `fn` per the module docstring; every rank must call this with the same budget."""
    timer = timer or HostTimer()
    comm = comm or SingleComm()

    fn()
    timer.sync()

    calls, estimate = _calibrate(fn, budget, timer, comm)
    warm_plan = comm.broadcast(make_plan(estimate, budget) if comm.rank == 0 else None)
    warm_block = timer.blocks(fn, warm_plan.warmup_calls, 1)[0]
    refined = warm_block / warm_plan.warmup_calls
    plan = comm.broadcast(make_plan(refined, budget) if comm.rank == 0 else None)
    plan = Plan(warm_plan.warmup_calls, plan.inner, plan.samples)

    comm.barrier()
    blocks = timer.blocks(fn, plan.inner, plan.samples)
    samples = [b / plan.inner for b in blocks]
    warnings = [w for w in (noise_warning(summarize(samples), label),) if w]
    return Measurement(
        samples_s=samples,
        plan=plan,
        clock=timer.name,
        estimate_s=refined,
        warmup_s=warm_block,
        calibration_calls=calls,
        warnings=warnings,
    )


def _calibrate(fn: Callable[[], Any], budget: Budget, timer: Timer, comm: Comm) -> tuple[int, float]:
    """Grow a block until it lasts `min_block_s` on rank 0; return calls made and per-call estimate."""
    inner, total = 1, 0
    while True:
        elapsed = timer.blocks(fn, inner, 1)[0]
        total += inner
        done = elapsed >= budget.min_block_s or inner >= MAX_CALIBRATION_CALLS
        if comm.broadcast(done if comm.rank == 0 else None):
            estimate = elapsed / inner
            return total, comm.broadcast(estimate if comm.rank == 0 else None)
        inner *= CALIBRATION_GROWTH


def budget_dict(budget: Budget) -> dict[str, Any]:
    return asdict(budget)
