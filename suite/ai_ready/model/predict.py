"""Predictions a consultant shows: step time on a target system, time/energy/cost to train, goodput,
the scaling curve, each with an uncertainty band and the assumptions behind it.

:func:`predict` evaluates (or searches) one layout of a transformer on a catalog system;
:func:`scaling_curve` repeats the search from one node to the whole system; :func:`predict_generic`
does the same for a job that is not a transformer, from its measured FLOPs, parameters and memory.
The JSON form (:meth:`Prediction.to_json`) is the stable interface of ``ai-ready extrapolate --json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ai_ready.catalog.model import System
from ai_ready.errors import InputError
from ai_ready.model import comm, energy, resilience
from ai_ready.model.hardware import Hardware, hardware_for
from ai_ready.model.search import SearchResult, search
from ai_ready.model.software import cross_validated
from ai_ready.model.step import Software, StepTime
from ai_ready.model.transformer import parameters
from ai_ready.model.workload import Training, Workload

#: Where data/stack_fit.yaml has no cross-validated band yet: the old acceptance bound of the validation.
FALLBACK_UNCERTAINTY = 0.15
ASSUMED_HARDWARE_UNCERTAINTY = 0.10  # added when the system's GPU or network figures are assumptions
GENERIC_UNCERTAINTY = 0.15  # added for non-transformer jobs, modelled from measured totals only
#: A measured/modelled ratio outside these bounds says the model missed something on the job's own
#: node; it is clamped (and reported) rather than carried to a 100,000-GPU prediction.
CALIBRATION_BOUNDS = (0.5, 2.0)
#: Time to restart a job after a failure (reschedule, load the checkpoint, warm up).
DEFAULT_RESTART_S = 600.0
RESTART_ASSUMPTION = "10 minutes to restart after a failure (reschedule, reload the checkpoint, warm up)"
#: Share of the file system's write bandwidth one job's checkpoint gets.
DEFAULT_FS_SHARE = 0.5
FS_SHARE_ASSUMPTION = "the job gets half the parallel file system's write bandwidth for its checkpoints"
#: Checkpoint write bandwidth per GPU where the catalog has no file system figure (node-local NVMe class).
DEFAULT_CHECKPOINT_GBS_PER_GPU = 1.0
CHECKPOINT_BANDWIDTH_ASSUMPTION = (
    "1 GB/s of checkpoint write bandwidth per GPU (no parallel_fs_write_gbs or parallel_fs_read_gbs in the "
    "catalog for this system)")
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Calibration:
    """Measured over modelled step time on the node a job was profiled on, carried to targets."""

    ratio: float = 1.0
    raw_ratio: float | None = None
    note: str = "not calibrated: catalog efficiencies used"

    @classmethod
    def from_measurement(cls, measured_s: float, modelled_s: float, where: str) -> "Calibration":
        raw = measured_s / modelled_s
        low, high = CALIBRATION_BOUNDS
        ratio = min(max(raw, low), high)
        note = (f"calibrated on {where}: measured {measured_s:.4g} s / modelled {modelled_s:.4g} s per step = "
                f"{raw:.3g}")
        if ratio != raw:
            note += f", clamped to {ratio:g} (bounds {low:g}-{high:g}: the model misses something on this node)"
        return cls(ratio, raw, note)

    def to_json(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "raw_ratio": self.raw_ratio, "note": self.note}


@dataclass(frozen=True)
class TrainingRun:
    """A whole run: steps to consume the token budget, wall time with failures, energy and cost."""

    tokens: float
    steps: float
    compute_s: float
    goodput: resilience.Goodput
    checkpoint_s: float
    failures: resilience.SystemFailures
    energy: energy.EnergyCost
    assumptions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        g = self.goodput
        return {
            "tokens": self.tokens, "steps": self.steps, "compute_days": self.compute_s / SECONDS_PER_DAY,
            "wall_days": g.wall_s / SECONDS_PER_DAY, "goodput": g.goodput,
            "checkpoint_s": self.checkpoint_s, "checkpoint_interval_s": g.interval_s,
            "mttf_hours": g.mttf_s / 3600.0, "interruptions": g.interruptions,
            "failures_per_day": self.failures.failures_per_day,
            "energy_mwh": self.energy.kwh / 1000.0, "cost_eur": self.energy.eur,
            "eur_per_kwh": self.energy.eur_per_kwh, "facility_power_mw": self.energy.facility_power_kw / 1000.0,
        }


@dataclass(frozen=True)
class Prediction:
    """One workload on one system: the chosen layout's step and, with a token budget, the run."""

    workload: str
    system: str
    hardware: Hardware
    step: StepTime
    calibration: Calibration
    uncertainty: float
    run: TrainingRun | None
    search: SearchResult | None
    assumptions: tuple[str, ...]
    kind: str = "transformer"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def band(self) -> tuple[float, float]:
        """(low, high) step time."""
        return self.step.step_time_s * (1 - self.uncertainty), self.step.step_time_s * (1 + self.uncertainty)

    def to_json(self) -> dict[str, Any]:
        s, p = self.step, self.step.parallelism
        low, high = self.band
        data: dict[str, Any] = {
            "workload": self.workload, "system": self.system, "kind": self.kind,
            "accelerator": self.hardware.accelerator, "gpus": s.gpus, "gpus_available": self.hardware.total_gpus,
            "step_time_s": s.step_time_s, "step_time_band_s": [low, high], "uncertainty": self.uncertainty,
            "tokens_per_s": s.tokens_per_s, "model_tflops_per_gpu": s.model_tflops_per_gpu,
            "hardware_tflops_per_gpu": s.hardware_tflops_per_gpu, "mfu": s.mfu,
            "peak_tflops_per_gpu": s.peak_flops / 1e12,
            "memory_gb_per_gpu": s.memory.total / 1e9,
            "memory_breakdown_gb": {"weights": s.memory.weights / 1e9, "gradients": s.memory.gradients / 1e9,
                                    "optimizer": s.memory.optimizer / 1e9, "activations": s.memory.activations / 1e9},
            "hbm_gb_per_gpu": self.hardware.hbm_bytes / 1e9, "fits_memory": s.fits_memory,
            "parallelism": {"tp": p.tp, "pp": p.pp, "dp": p.dp, "cp": p.cp, "ep": p.ep, "microbatch": p.microbatch,
                            "interleave": p.interleave, "recompute": p.recompute, "zero": p.zero,
                            "sequence_parallel": p.sequence_parallel,
                            "stage_layers": list(p.stage_layers(s.layers)) if s.layers else None},
            "software": {"attention": s.software.attention, "overlap_grad_reduce": s.software.overlap_grad_reduce,
                         "overlap_param_gather": s.software.overlap_param_gather,
                         "tp_overlap": s.software.tp_overlap, "grad_reduce_bytes": s.software.grad_reduce_bytes,
                         "efficiency": s.software.efficiency,
                         "interleaved_pipeline": s.software.interleaved_pipeline},
            "breakdown": dict(s.breakdown),
            "calibration": self.calibration.to_json(),
            "assumptions": list(self.assumptions),
        }
        if self.search is not None:
            data["search"] = {"evaluated": self.search.evaluated, "fitting": self.search.fitting,
                              "elapsed_s": self.search.elapsed_s, "given": list(self.search.given),
                              "searched": list(self.search.searched)}
        data["run"] = self.run.to_json() if self.run is not None else None
        data.update(self.extra)
        return data


def base_uncertainty() -> float:
    """±u that holds the cross-validated band of data/stack_fit.yaml (published over predicted step time, 10th to
    90th percentile of the leave-one-source-out cases): the band of a prediction on sourced catalog figures."""
    band = cross_validated().get("step_time_band")
    if not band:
        return FALLBACK_UNCERTAINTY
    low, high = float(band[0]), float(band[1])
    return max(1.0 - low, high - 1.0)


def uncertainty_for(system: System, generic: bool = False, precision: str = "bf16") -> float:
    """The band: the model's cross-validated band, wider when key hardware figures are assumptions."""
    acc = system.accelerator
    figures = [acc.memory.get("bandwidth_tbs"), acc.scale_up.get("link_gbs_per_direction"),
               system.scale_out.get("nic_gbps_per_accelerator"), system.nodes,
               acc.peak_tflops.get("tf32" if precision == "fp32" else precision)]
    band = base_uncertainty()
    if any(f is not None and f.is_assumption for f in figures):
        band += ASSUMED_HARDWARE_UNCERTAINTY
    if generic:
        band += GENERIC_UNCERTAINTY
    return band


def training_run(system: System, gpus: int, step_s: float, tokens_per_step: float, tokens: float,
                 params: float, eur_per_kwh: float | None = None,
                 restart_s: float = DEFAULT_RESTART_S) -> TrainingRun:
    """Time, failures, checkpoints, energy and cost of consuming ``tokens``."""
    notes = [f"restart after a failure: assumption: {RESTART_ASSUMPTION}" if restart_s == DEFAULT_RESTART_S
             else f"restart after a failure: {restart_s:g} s (given)"]
    steps = tokens / tokens_per_step
    compute_s = steps * step_s
    failures = resilience.failures_for_system(system, gpus)
    notes += list(failures.assumptions)
    size = resilience.checkpoint_bytes(params)
    write = system.storage.get("parallel_fs_write_gbs") or system.storage.get("parallel_fs_read_gbs")
    if write is not None:
        bandwidth = float(write.value) * 1e9 * (gpus / system.total_accelerators if system.total_accelerators else 1)
        key = "parallel_fs_write_gbs" if "parallel_fs_write_gbs" in system.storage else "parallel_fs_read_gbs"
        notes.append(f"checkpoint bandwidth: {float(write.value):g} GB/s ({key}, {write.provenance()}) scaled by "
                     f"the job's share of the system's GPUs, × {DEFAULT_FS_SHARE:g} "
                     f"(assumption: {FS_SHARE_ASSUMPTION})")
        if key == "parallel_fs_read_gbs":
            notes.append("checkpoint bandwidth: read bandwidth used for writes (assumption: no write figure)")
    else:
        bandwidth = DEFAULT_CHECKPOINT_GBS_PER_GPU * 1e9 * gpus
        notes.append(f"checkpoint bandwidth: {CHECKPOINT_BANDWIDTH_ASSUMPTION}")
    checkpoint_s = resilience.checkpoint_time_s(size, bandwidth, DEFAULT_FS_SHARE)
    notes.append(f"checkpoint: {size / 1e9:.3g} GB (14 bytes per parameter: bf16 weights, fp32 master, Adam "
                 f"moments), synchronous")
    good = resilience.goodput(compute_s, checkpoint_s, failures.mttf_s, restart_s)
    cost = energy.for_system(system, gpus, good.wall_s / 3600.0, eur_per_kwh=eur_per_kwh)
    notes += list(cost.assumptions)
    return TrainingRun(tokens, steps, compute_s, good, checkpoint_s, failures, cost, tuple(notes))


def predict(workload: Workload, system: System, *, gpus: int | None = None, fixed: Mapping[str, Any] | None = None,
            software: Software = Software(), calibration: Calibration = Calibration(),
            eur_per_kwh: float | None = None, hardware: Hardware | None = None) -> Prediction:
    """The fastest fitting layout of ``workload`` on ``system`` (or the one ``fixed`` names), and the run."""
    hw = hardware or hardware_for(system, workload.training.precision)
    hw = hw.with_(calibration=calibration.ratio)
    found = search(workload.model, workload.training, hw, software, gpus=gpus, fixed=fixed)
    step = found.best
    notes = list(hw.assumptions) + [calibration.note] + _software_notes(software)
    run = None
    if workload.training.tokens is not None:
        run = training_run(system, step.gpus, step.step_time_s, step.tokens_per_step, workload.training.tokens,
                           parameters(workload.model), eur_per_kwh)
        notes += list(run.assumptions)
    if not step.fits_memory:
        notes.insert(0, f"does not fit: {step.memory.total / 1e9:.1f} GB per GPU needed, "
                        f"{hw.hbm_bytes / 1e9:g} GB less a 10% reserve available")
    return Prediction(workload.name, system.name, hw, step, calibration, uncertainty_for(system, precision=workload.training.precision), run, found,
                      tuple(notes))


def _software_notes(sw: Software) -> list[str]:
    return [f"software: {sw.attention} attention, gradient reduction "
            f"{'overlapped with the last backward' if sw.overlap_grad_reduce else 'after the backward'}, "
            f"ZeRO weight gathers {'overlapped' if sw.overlap_param_gather else 'exposed'}, "
            f"{sw.tp_overlap:.0%} of tensor-parallel communication hidden, kernels at {sw.efficiency:.3g} of the "
            f"modelled rates (the stack's fitted efficiency)",
            f"uncertainty: ±{base_uncertainty():.0%} holds the step time of 80% of published runs when each source "
            f"is predicted from the others (leave-one-source-out, data/stack_fit.yaml); wider where hardware figures "
            f"are assumptions"]


def scaling_points(system: System, smallest: int = 1, factor: int = 4) -> list[int]:
    """GPU counts from one node (or ``smallest``) growing ``factor``-fold up to the whole system, which
    is always last."""
    per_node = int(system.accelerators_per_node.value)
    total = system.total_accelerators
    points, n = [], max(per_node, smallest)
    while n < total:
        points.append(n)
        n *= factor
    points.append(total)
    return points


def scaling_curve(workload: Workload, system: System, *, points: list[int] | None = None,
                  software: Software = Software(), calibration: Calibration = Calibration(),
                  weak: bool = False) -> list[dict[str, Any]]:
    """Throughput and per-GPU efficiency from one node to the whole system.

    By default the workload's global batch stays fixed (strong scaling: the user's run on more GPUs),
    so the curve shows where data parallelism runs out of sequences and tensor/pipeline/context
    parallelism has to take over at lower efficiency. ``weak`` grows the batch with the GPU count from
    the first point instead, as Megatron-LM's weak-scaling tables do (beyond a model's critical batch
    size that no longer trains as well: an assumption the caller makes). Efficiency is throughput per
    GPU over that of the first point that fits. Points where nothing fits are listed with a reason.
    """
    hw = hardware_for(system, workload.training.precision).with_(calibration=calibration.ratio)
    points = points or scaling_points(system)
    base_batch, base_gpus = workload.training.global_batch, points[0]
    curve, reference = [], None
    for n in points:
        batch = base_batch
        if weak and n > base_gpus:
            batch = max(base_batch, base_batch * n // base_gpus)
        training = Training(batch, workload.training.tokens, workload.training.precision)
        try:
            found = search(workload.model, training, hw, software, gpus=n)
        except InputError as exc:
            curve.append({"gpus": n, "fits": False, "reason": str(exc), "global_batch": batch})
            continue
        best = found.best
        per_gpu = best.tokens_per_s / best.gpus
        if reference is None:
            reference = per_gpu
        p = best.parallelism
        curve.append({"gpus": n, "gpus_used": best.gpus, "fits": True, "global_batch": batch,
                      "step_time_s": best.step_time_s, "tokens_per_s": best.tokens_per_s, "mfu": best.mfu,
                      "efficiency": per_gpu / reference,
                      "parallelism": {"tp": p.tp, "pp": p.pp, "dp": p.dp, "cp": p.cp, "ep": p.ep,
                                      "microbatch": p.microbatch, "interleave": p.interleave,
                                      "recompute": p.recompute, "zero": p.zero}})
    return curve


# --- generic (non-transformer) jobs ---------------------------------------------------------------

@dataclass(frozen=True)
class GenericWorkload:
    """A job known only by measured totals: FLOPs, parameters, activation memory, items per step."""

    name: str
    flops_per_item: float
    parameters: float
    activation_bytes_per_item: float
    items_per_step: int
    item: str = "samples"
    tokens: float | None = None  # the budget, in items
    precision: str = "bf16"


#: Fraction of peak a generic job's compute reaches when no GPU measurement calibrates it.
GENERIC_COMPUTE_EFFICIENCY = 0.40
GENERIC_EFFICIENCY_ASSUMPTION = (
    "a job of unknown structure reaches 40% of the dense peak in compute (the middle of the 35-50% MFU that "
    "well-tuned transformer training reaches; convolutional and small models often reach less)")
GENERIC_BACKWARD_SHARE = 2.0 / 3.0  # of a step's FLOPs: what gradient reduction can overlap with


def predict_generic(work: GenericWorkload, system: System, *, gpus: int | None = None, fsdp: bool | None = None,
                    calibration: Calibration = Calibration(), eur_per_kwh: float | None = None) -> Prediction:
    """Data-parallel (DDP, all-reduce) or FSDP (ZeRO-3) scaling of a generic job to ``gpus`` GPUs.

    Compute per step = FLOPs / (peak × efficiency); the gradient all-reduce (DDP) or the weight
    all-gathers and gradient reduce-scatter (FSDP) are hierarchical over scale-up and scale-out links
    and overlap the backward, slowing it while they share the GPU (``Hardware.overlap_slowdown``). The per-GPU batch is the job's own (weak scaling). With ``fsdp`` None the
    faster of the two that fits memory is chosen.
    """
    hw = hardware_for(system, work.precision).with_(calibration=calibration.ratio)
    n = hw.total_gpus if gpus is None else gpus
    if not 1 <= n <= hw.total_gpus:
        raise InputError(f"--gpus: must be between 1 and {hw.total_gpus} for system '{system.name}', got {n}")
    from ai_ready.model.step import ADAM_BYTES_PER_PARAMETER
    from ai_ready.model.workload import Parallelism

    options = [False, True] if fsdp is None else [fsdp]
    best = None
    for shard in options:
        compute = work.flops_per_item * work.items_per_step / (hw.peak_flops * GENERIC_COMPUTE_EFFICIENCY)
        grad_bytes = 2.0 * work.parameters
        g = math.gcd(n, hw.scale_up_size) if n > 1 else 1
        nodes = n // g
        if shard:
            gather = comm.hierarchical_all_gather(grad_bytes, g, nodes, hw.scale_up, hw.scale_out)
            reduce = comm.hierarchical_reduce_scatter(grad_bytes, g, nodes, hw.scale_up, hw.scale_out)
            comm_s = 2 * gather + reduce
            states = 16.0 * work.parameters / n
        else:
            comm_s = comm.hierarchical_all_reduce(grad_bytes, g, nodes, hw.scale_up, hw.scale_out) if n > 1 else 0.0
            states = 16.0 * work.parameters
        hidden = compute * (GENERIC_BACKWARD_SHARE if not shard else 1.0)
        exposed = max(0.0, comm_s - hidden)
        contention = (comm_s - exposed) * hw.overlap_slowdown / (1.0 + hw.overlap_slowdown)
        optimizer = ADAM_BYTES_PER_PARAMETER * work.parameters / (n if shard else 1) / hw.stream_Bps
        memory = states + work.activation_bytes_per_item * work.items_per_step
        total = (compute + exposed + contention + optimizer) * hw.calibration
        fits = memory <= hw.hbm_bytes * 0.9
        candidate = (not fits, total, shard, compute, exposed, contention, optimizer, memory)
        if best is None or candidate < best:
            best = candidate
    assert best is not None
    _, total, shard, compute, exposed, contention, optimizer, memory = best
    from ai_ready.model.transformer import MemoryBreakdown

    breakdown = {"compute": compute * hw.calibration, "dp_comm": exposed * hw.calibration,
                 "overlap_contention": contention * hw.calibration, "optimizer": optimizer * hw.calibration}
    mem = MemoryBreakdown(weights=memory - work.activation_bytes_per_item * work.items_per_step, gradients=0.0,
                          optimizer=0.0, activations=work.activation_bytes_per_item * work.items_per_step)
    flops = work.flops_per_item * work.items_per_step * n
    step = StepTime(step_time_s=total, breakdown=breakdown, model_flops=flops, hardware_flops=flops, gpus=n,
                    tokens_per_step=work.items_per_step * n, memory=mem, fits_memory=mem.total <= hw.hbm_bytes * 0.9,
                    parallelism=Parallelism(1, 1, n, zero=3 if shard else 0), software=Software(),
                    peak_flops=hw.peak_flops)
    notes = list(hw.assumptions) + [calibration.note,
                                    f"compute at {GENERIC_COMPUTE_EFFICIENCY:.0%} of peak before calibration "
                                    f"(assumption: {GENERIC_EFFICIENCY_ASSUMPTION})",
                                    f"{'FSDP (weights, gradients and optimizer sharded)' if shard else 'DDP'}: "
                                    f"{work.items_per_step} {work.item} per GPU per step (weak scaling)"]
    run = None
    if work.tokens is not None:
        run = training_run(system, n, total, work.items_per_step * n, work.tokens, work.parameters, eur_per_kwh)
        notes += list(run.assumptions)
    return Prediction(work.name, system.name, hw, step, calibration, uncertainty_for(system, generic=True, precision=work.precision), run,
                      None, tuple(notes), kind="generic", extra={"item": work.item})
