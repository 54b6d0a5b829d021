"""What failures and checkpointing cost a long training run: MTTF, checkpoint interval, goodput.

Pure Python on plain floats, like the rest of :mod:`ai_ready.model`. A negative, NaN or otherwise
impossible size, time or rate is a bug in the caller and raises ValueError; a catalog system that
cannot answer (more GPUs asked for than it has) raises :class:`~ai_ready.errors.InputError`.

Sources, cited as below:

- [Y74] J. W. Young, "A first order approximation to the optimum checkpoint interval",
  Communications of the ACM 17(9), 1974: τ = √(2·δ·M).
- [D06] J. T. Daly, "A higher order estimate of the optimum checkpoint interval for restart dumps",
  Future Generation Computer Systems 22(3), 2006: the expected wall time under Poisson failures
  T = M·e^{R/M}·(e^{(τ+δ)/M} − 1)·W/τ, and its optimum's higher-order estimate
  τ = √(2δM)·[1 + ⅓·√(δ/(2M)) + ⅑·δ/(2M)] − δ for δ < 2M, else τ = M.
- [REF] ``shared/reference/model-formulas.md``, "Checkpointing and failures": job MTTF =
  1 / (nodes × failure rate per node); published rates are a few failures per 1,000 node-days.
- [ZeRO] Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models"
  (SC'20): mixed-precision Adam keeps 2 bytes of 16-bit weights, 2 of gradients and 12 of fp32
  master weights, momentum and variance per parameter.

Notation: W useful work (the failure-free, checkpoint-free run time), δ checkpoint time, τ useful work
between checkpoints, M job mean time to failure, R restart time (detect, reschedule, reload). All
times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ai_ready.catalog.model import System
from ai_ready.errors import InputError

SECONDS_PER_DAY = 86_400.0

#: Bytes per parameter a checkpoint holds [ZeRO]: 16-bit weights, fp32 master weights, the two fp32
#: Adam moments. Gradients (2 more bytes in training memory) are recomputed after a restart, not saved.
BF16_WEIGHT_BYTES = 2
FP32_MASTER_BYTES = 4
ADAM_MOMENT_BYTES = 8
CHECKPOINT_BYTES_PER_PARAMETER = BF16_WEIGHT_BYTES + FP32_MASTER_BYTES + ADAM_MOMENT_BYTES  # 14

#: Failure rate used when a system's catalog entry has none (research notes, RELIABILITY).
DEFAULT_FAILURES_PER_1000_NODE_DAYS = 6.0
DEFAULT_FAILURE_RATE_ASSUMPTION = (
    "research-notes model: 5-7 job-interrupting failures per 1,000 node-days for H100/A100 8-GPU "
    "nodes (S29, S30); midpoint chosen"
)

# Above this, e^{-x} is below 2e-22 and 1/expm1(x) is computed as e^{-x}/(1 − e^{-x}), which cannot overflow.
_LARGE_EXPONENT = 50.0


def _check(name: str, value: float, low: float = 0.0, allow_inf: bool = False, strict: bool = False) -> float:
    """`value` as a float, or ValueError when it is NaN, below `low` (or equal, if `strict`), or infinite."""
    value = float(value)
    bad = math.isnan(value) or value < low or (strict and value == low) or (math.isinf(value) and not allow_inf)
    if bad:
        bound = ">" if strict else ">="
        raise ValueError(f"{name} must be {bound} {low:g}{'' if allow_inf else ' and finite'}, got {value!r}")
    return value


# --- failure rate and intervals ------------------------------------------------------------------

def job_mttf_s(nodes: int, failures_per_node_day: float) -> float:
    """Mean time to the first failure of any of `nodes` nodes [REF]: 1 / (nodes × rate), in seconds.

    Failures of different nodes are taken as independent with a constant rate (Poisson), so their
    rates add. A zero rate gives ``math.inf`` (the job never fails).
    """
    if isinstance(nodes, bool) or int(nodes) != nodes or nodes < 1:
        raise ValueError(f"nodes must be a whole number >= 1, got {nodes!r}")
    rate = _check("failures_per_node_day", failures_per_node_day)
    if rate == 0.0:
        return math.inf
    return SECONDS_PER_DAY / (int(nodes) * rate)


def young_interval_s(checkpoint_s: float, mttf_s: float) -> float:
    """Young's optimum useful work between checkpoints [Y74]: τ = √(2·δ·M).

    It minimises the first-order waste δ/τ + τ/(2M) (checkpoint overhead plus half an interval lost
    per failure). ``math.inf`` when M is infinite.
    """
    delta = _check("checkpoint_s", checkpoint_s, strict=True)
    mttf = _check("mttf_s", mttf_s, strict=True, allow_inf=True)
    return math.sqrt(2.0 * delta * mttf)


def daly_interval_s(checkpoint_s: float, mttf_s: float) -> float:
    """Daly's higher-order optimum interval [D06].

    τ = √(2δM)·[1 + ⅓·√(δ/(2M)) + ⅑·δ/(2M)] − δ for δ < 2M, and τ = M for δ ≥ 2M. It approximates
    the minimum of the exact wall time M·e^{R/M}·(e^{(τ+δ)/M} − 1)·W/τ (see :func:`goodput`) and
    tends to Young's √(2δM) as δ/M → 0. ``math.inf`` when M is infinite.
    """
    delta = _check("checkpoint_s", checkpoint_s, strict=True)
    mttf = _check("mttf_s", mttf_s, strict=True, allow_inf=True)
    if math.isinf(mttf):
        return math.inf
    if delta >= 2.0 * mttf:
        return mttf
    ratio = delta / (2.0 * mttf)
    return math.sqrt(2.0 * delta * mttf) * (1.0 + math.sqrt(ratio) / 3.0 + ratio / 9.0) - delta


# --- checkpoint size and time --------------------------------------------------------------------

def checkpoint_bytes(parameters: float, bytes_per_parameter: float = CHECKPOINT_BYTES_PER_PARAMETER) -> float:
    """Bytes one checkpoint writes: parameters × bytes per parameter (14 by default).

    Default [ZeRO]: bf16 weights 2 + fp32 master weights 4 + Adam momentum and variance 8 = 14 bytes.
    Gradients are not saved (they are recomputed by the next step). The total does not depend on the
    parallel layout: sharded states are written once per shard, data-parallel replicas once in all.
    """
    count = _check("parameters", parameters)
    per = _check("bytes_per_parameter", bytes_per_parameter, strict=True)
    return count * per


def checkpoint_time_s(checkpoint_bytes: float, fs_bandwidth_Bps: float, share: float = 1.0,
                      async_fraction: float = 0.0) -> float:
    """δ: seconds a checkpoint stops training, size / (file-system bandwidth × the job's share).

    Synchronous checkpointing is assumed: training waits until the write ends. ``share`` in (0, 1] is
    the part of the file system's aggregate write bandwidth the job gets. ``async_fraction`` in [0, 1)
    is the part of the write hidden behind compute by asynchronous checkpointing (copy to host memory,
    write in the background); the rest, × (1 − async_fraction), stays on the critical path. The model
    assumes the background write finishes within one interval.
    """
    size = _check("checkpoint_bytes", checkpoint_bytes)
    bandwidth = _check("fs_bandwidth_Bps", fs_bandwidth_Bps, strict=True)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    if not 0.0 <= async_fraction < 1.0:
        raise ValueError(f"async_fraction must be in [0, 1), got {async_fraction!r}")
    return size / (bandwidth * share) * (1.0 - async_fraction)


# --- goodput ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Goodput:
    """Expected cost of failures and checkpoints for `run_s` seconds of useful work.

    The four fractions of wall time (``goodput`` + ``checkpoint_fraction`` + ``lost_fraction`` +
    ``restart_fraction``) add up to 1. ``interruptions`` counts failures, including those that strike
    during a restart; ``wall_s`` and ``interruptions`` are ``math.inf`` when goodput underflows to 0.
    """

    run_s: float
    checkpoint_s: float
    mttf_s: float
    restart_s: float
    interval_s: float
    wall_s: float
    interruptions: float
    goodput: float
    checkpoint_fraction: float
    lost_fraction: float
    restart_fraction: float

    @property
    def waste(self) -> float:
        """Fraction of wall time that is not useful work: 1 − goodput."""
        return self.checkpoint_fraction + self.lost_fraction + self.restart_fraction

    @property
    def overhead(self) -> float:
        """Extra time per unit of useful work, T/W − 1; to first order :func:`first_order_overhead`."""
        return 1.0 / self.goodput - 1.0 if self.goodput > 0.0 else math.inf


def _inv_expm1(x: float) -> float:
    """1 / (e^x − 1) for x > 0, without overflow for large x."""
    if x > _LARGE_EXPONENT:
        return math.exp(-x) / -math.expm1(-x)
    return 1.0 / math.expm1(x)


def goodput(run_s: float, checkpoint_s: float, mttf_s: float, restart_s: float,
            interval_s: float | None = None) -> Goodput:
    """Expected wall time and its split for `run_s` seconds of useful work [D06].

    Model (Daly 2006, exact for Poisson failures at rate 1/M that can strike at any moment, also
    during a checkpoint or a restart): work runs in segments of τ useful seconds plus a δ checkpoint,
    L = τ + δ. A segment is retried until it runs L seconds without a failure, which takes
    M·(e^{L/M} − 1) in expectation, with e^{L/M} − 1 failures; each failure is followed by a restart
    that is itself retried until R failure-free seconds pass, M·(e^{R/M} − 1) per failure. So one
    segment costs S = M·e^{R/M}·(e^{L/M} − 1) and T = (W/τ)·S. With x = L/M, r = R/M:

    - goodput = W/T = τ/S = (τ/M)·e^{−r}/(e^x − 1)
    - checkpoints (completed ones) = δ/S
    - lost work (partial segments, failed checkpoints) = (M·(e^x − 1) − L)/S = e^{−r}·(1 − x/(e^x − 1))
    - restarts (successful and interrupted) = 1 − e^{−r}
    - interruptions = T/M, exact under Poisson failures since they strike all wall time (W/M, the
      useful time over M, is the lower-order approximation and undercounts when goodput is low).

    Expanding to first order in δ/M, τ/M and R/M gives the textbook waste T/W − 1 ≈ δ/τ + (τ/2 + δ/2
    + R)/M (:func:`first_order_overhead`), whose minimum is Young's τ [Y74]; the exact form stays in
    [0, 1] for any M, and goodput falls smoothly to 0 as M shrinks instead of going negative.

    ``interval_s`` defaults to :func:`daly_interval_s`. With no failures (M infinite) and no interval
    there are no checkpoints and goodput is 1; with an interval, only checkpoints cost: τ/(τ+δ). With
    failures and δ = 0 the default interval is the limit τ → 0 (``interval_s`` 0): goodput e^{−R/M}.
    """
    work = _check("run_s", run_s)
    delta = _check("checkpoint_s", checkpoint_s)
    mttf = _check("mttf_s", mttf_s, strict=True, allow_inf=True)
    restart = _check("restart_s", restart_s)
    if interval_s is None:
        tau = math.inf if math.isinf(mttf) else 0.0 if delta == 0.0 else daly_interval_s(delta, mttf)
    else:
        tau = _check("interval_s", interval_s, strict=True)
    if math.isinf(mttf) and math.isinf(tau):
        good, ckpt, lost, rst = 1.0, 0.0, 0.0, 0.0
    elif math.isinf(mttf):
        good, ckpt, lost, rst = tau / (tau + delta), delta / (tau + delta), 0.0, 0.0
    elif tau == 0.0:  # free checkpoints taken continuously (the τ → 0 limit): only restarts cost
        good, ckpt, lost, rst = math.exp(-restart / mttf), 0.0, 0.0, -math.expm1(-restart / mttf)
    else:
        x, r = (tau + delta) / mttf, restart / mttf
        survive_restart, inv = math.exp(-r), _inv_expm1(x)
        good = tau / mttf * survive_restart * inv
        ckpt = delta / mttf * survive_restart * inv
        lost = max(0.0, survive_restart * (1.0 - x * inv))
        rst = -math.expm1(-r)
    wall = work / good if good > 0.0 else math.inf
    interruptions = 0.0 if math.isinf(mttf) or work == 0.0 else wall / mttf
    return Goodput(run_s=work, checkpoint_s=delta, mttf_s=mttf, restart_s=restart, interval_s=tau,
                   wall_s=wall, interruptions=interruptions, goodput=good, checkpoint_fraction=ckpt,
                   lost_fraction=lost, restart_fraction=rst)


def first_order_overhead(checkpoint_s: float, mttf_s: float, restart_s: float, interval_s: float) -> float:
    """Textbook waste per unit of useful work [Y74, D06]: δ/τ + (τ/2 + δ/2 + R)/M.

    Checkpoint overhead δ/τ, plus per failure (W/M of them) half a segment lost, (τ + δ)/2, and a
    restart R. It is the first-order expansion of :attr:`Goodput.overhead`; it exceeds 1 and stops
    making sense when a failure is expected within a segment plus a restart.
    """
    delta = _check("checkpoint_s", checkpoint_s)
    mttf = _check("mttf_s", mttf_s, strict=True, allow_inf=True)
    restart = _check("restart_s", restart_s)
    tau = _check("interval_s", interval_s, strict=True)
    return delta / tau + (tau / 2.0 + delta / 2.0 + restart) / mttf


# --- from the catalog ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SystemFailures:
    """Failure figures of a job on `gpus` accelerators of a catalog system, with their provenance."""

    system: str
    gpus: int
    nodes: int
    failures_per_node_day: float
    mttf_s: float
    assumptions: tuple[str, ...]

    @property
    def failures_per_day(self) -> float:
        """Expected job-interrupting failures per day of wall time: nodes × rate."""
        return self.nodes * self.failures_per_node_day


def failures_for_system(system: System, gpus: int) -> SystemFailures:
    """Nodes a `gpus`-GPU job occupies on `system`, their failure rate from the catalog, and the MTTF.

    Nodes = ⌈gpus / accelerators_per_node⌉ (a partly used node still fails as a whole). The rate is
    the system's ``reliability.failures_per_1000_node_days`` ÷ 1,000, or, when the catalog has none,
    :data:`DEFAULT_FAILURES_PER_1000_NODE_DAYS` (an assumption, said so in ``assumptions``).
    """
    if isinstance(gpus, bool) or int(gpus) != gpus or gpus < 1:
        raise ValueError(f"gpus must be a whole number >= 1, got {gpus!r}")
    gpus = int(gpus)
    if gpus > system.total_accelerators:
        raise InputError(f"system '{system.name}' has {system.total_accelerators} accelerators, "
                         f"fewer than the {gpus} asked for")
    per_node = int(system.accelerators_per_node.value)
    nodes = -(-gpus // per_node)
    notes = [f"nodes: {nodes} = ceil({gpus} GPUs / {per_node} per node) "
             f"(catalog {system.name} accelerators_per_node, {system.accelerators_per_node.provenance()})"]
    figure = system.reliability.get("failures_per_1000_node_days")
    if figure is not None:
        per_1000 = float(figure.value)
        notes.append(f"failure rate: {per_1000:g} per 1,000 node-days (catalog {system.name} "
                     f"reliability.failures_per_1000_node_days, {figure.provenance()})")
    else:
        per_1000 = DEFAULT_FAILURES_PER_1000_NODE_DAYS
        notes.append(f"failure rate: {per_1000:g} per 1,000 node-days (not in the catalog for "
                     f"{system.name}; assumption: {DEFAULT_FAILURE_RATE_ASSUMPTION})")
    rate = per_1000 / 1000.0
    return SystemFailures(system=system.name, gpus=gpus, nodes=nodes, failures_per_node_day=rate,
                          mttf_s=job_mttf_s(nodes, rate), assumptions=tuple(notes))
