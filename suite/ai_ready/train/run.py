"""One training run on this process: build, cross-check FLOPs, train, and turn the log into records.

Figures: step time, throughput (tokens/s or samples/s), MFU against the
device's peak for the precision (catalog peak on GPUs, declared peak on CPUs,
with its source or assumption), the per-phase breakdown, the loss curve
(first vs last: the model must really train), peak memory, and the analytic
FLOPs with their FlopCounterMode cross-check (agreement within 5% recorded).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import psutil
import torch

from ai_ready.bench.ceiling import apply_ceiling, mfu_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.records import Record
from ai_ready.train.loop import PHASES, StepLog

BENCHMARK = "train"
#: Analytic and counted FLOPs must agree this closely (issue 6).
FLOPS_AGREEMENT = 0.05
BYTES_PER_GB = 1e9


@dataclass
class RunSpec:
    """What ran: architecture, preset, the resolved model settings, and the run's knobs."""

    arch: str
    preset: str
    settings: dict[str, Any]
    batch: int
    steps: int
    warmup_steps: int
    precision: str
    workers: int
    items_per_sample: int  # tokens per sequence for language models, 1 for images
    item_name: str  # "tokens" or "samples"
    parallel: str = "none"
    world_size: int = 1
    recompute: bool = False
    compile: bool = False
    #: Ranks the experts are split over (1: every expert on every rank, or no experts).
    expert_parallel: int = 1
    #: FLOPs the hardware executes per step (with recomputation: one more forward of every block).
    hardware_flops: float | None = None

    def params(self) -> dict[str, Any]:
        return {"arch": self.arch, "preset": self.preset, **self.settings, "batch": self.batch, "steps": self.steps,
                "warmup_steps": self.warmup_steps, "precision": self.precision, "workers": self.workers,
                "parallel": self.parallel, "world_size": self.world_size, "recompute": self.recompute,
                "compile": self.compile, "expert_parallel": self.expert_parallel,
                "hardware_flops_per_step": self.hardware_flops}


def flops_check(analytic: float, counted: float) -> dict[str, Any]:
    ratio = analytic / counted if counted else float("inf")
    return {"passed": abs(ratio - 1.0) <= FLOPS_AGREEMENT, "metric": "analytic / FlopCounterMode",
            "value": ratio, "tolerance": FLOPS_AGREEMENT, "reference": "torch.utils.flop_counter.FlopCounterMode"}


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / BYTES_PER_GB
    return psutil.Process().memory_info().rss / BYTES_PER_GB


def records_for(spec: RunSpec, log: StepLog, step_flops: float, counted_flops: float, params_count: int,
                ceiling: dict[str, Any] | None, ctx: BenchContext, memory_gb: float) -> list[Record]:
    """The run's records; every rank's, so rank 0 can report the spread across ranks."""
    case = f"{spec.arch}-{spec.preset}"
    base = dict(spec.params(), parameters=params_count, model_flops_per_step=step_flops)
    fields = dict(benchmark=BENCHMARK, case=case, **ctx.record_fields())
    items = spec.batch * spec.items_per_sample
    check = flops_check(step_flops, counted_flops)
    timing = {"clock": "host" if not ctx.is_cuda else "host, device synchronised at each phase boundary",
              "warmup_steps": spec.warmup_steps, "warmup_s": list(log.warmup_total), "samples_s": list(log.total),
              "cache": "warm (steady-state steps)"}
    records = [
        Record.from_samples(log.total, params=dict(base), metric="step_time", unit="s", timing=timing, **fields),
        Record.from_samples([items / t for t in log.total], warn_noise=False, params=dict(base, item=spec.item_name),
                            metric="throughput", unit=f"{spec.item_name}/s", **fields),
    ]
    mfu_unit_peak = ceiling["value"] * 1e12 if ceiling else None
    if mfu_unit_peak:
        mfu = Record.from_samples([100.0 * step_flops / t / mfu_unit_peak for t in log.total], warn_noise=False,
                                  params=dict(base), metric="mfu", unit="%", check=check, **fields)
        mfu.ceiling = mfu_ceiling(ceiling)
        mfu.pct_of_ceiling = mfu.value
        records.append(mfu)
    achieved = Record.from_samples([step_flops / t / 1e12 for t in log.total], warn_noise=False, params=dict(base),
                                   metric="model_tflops", unit="TFLOP/s", check=check, **fields)
    records.append(apply_ceiling(achieved, ceiling))
    for phase in PHASES:
        # shares from means: a step's phases add up to its total, so mean shares add up to 100%
        # (medians of the parts do not add up to the median of the whole)
        share = statistics.fmean(log.phases[phase]) / statistics.fmean(log.total)
        records.append(Record.from_samples(log.phases[phase], warn_noise=False, params=dict(base, phase=phase,
                                           share_of_step=share), metric="phase_time", unit="s", **fields))
    records.append(Record(params=dict(base, flop_counter=counted_flops, analytic=step_flops), metric="model_flops",
                          unit="FLOP/step", value=float(step_flops), check=check,
                          status="ok" if check["passed"] else "failed",
                          reason=None if check["passed"] else
                          f"analytic FLOPs {step_flops:.4g} differ from FlopCounterMode's {counted_flops:.4g} "
                          f"by more than {FLOPS_AGREEMENT:.0%}", **fields))
    first = log.warmup_loss[0] if log.warmup_loss else log.loss[0]
    records.append(Record.from_samples(log.loss, warn_noise=False, params=dict(base, first_loss=first,
                                       last_loss=log.loss[-1]), metric="loss", unit="", **fields))
    records.append(Record(params=dict(base), metric="peak_memory", unit="GB", value=memory_gb, **fields))
    return records



def aggregate_throughput(spec: RunSpec, step_times: list[list[float]], ctx: BenchContext) -> Record:
    """All ranks' items per second: every rank's batch over the slowest rank's time, step by step."""
    ranks = len(step_times)
    items = spec.batch * spec.items_per_sample
    samples = [ranks * items / max(step) for step in zip(*step_times)]
    per_rank = [items / statistics.median(times) for times in step_times]
    params = dict(spec.params(), item=spec.item_name, aggregate=True, ranks=ranks, per_rank=per_rank,
                  slowest_rank=int(min(range(ranks), key=per_rank.__getitem__)))
    return Record.from_samples(samples, benchmark=BENCHMARK, case=f"{spec.arch}-{spec.preset}-aggregate",
                               params=params, metric="throughput", unit=f"{spec.item_name}/s", **ctx.record_fields())


def exposed_comm_record(spec: RunSpec, probe: dict[bool, list[float]], step_time_s: float,
                        ctx: BenchContext) -> Record:
    """Backward with gradient sync minus backward without it, as seconds and as a share of the step."""
    synced, local = statistics.median(probe[True]), statistics.median(probe[False])
    exposed = synced - local
    params = dict(spec.params(), backward_synced_s=synced, backward_local_s=local, share_of_step=exposed / step_time_s,
                  probe_steps=len(probe[True]))
    return Record(benchmark=BENCHMARK, case=f"{spec.arch}-{spec.preset}", params=params, metric="exposed_comm",
                  unit="s", value=exposed,
                  warnings=[] if exposed >= 0 else [f"exposed communication measured as {exposed:.3g} s: below the "
                                                    "probe's noise; treat it as none"], **ctx.record_fields())
