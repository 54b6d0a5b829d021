"""Named metrics read from the stored documents: the figures verdicts and recommendations rest on.

Every metric is a figure a document holds (or a ratio of two it holds), with its unit, a label a reader
understands, the document and record or field it came from and, where one was stored, the ceiling it is
measured against; a rule shows it as "the figure behind" a verdict. A figure a document lacks is absent,
never guessed: a dimension without any of its metrics is "unknown".

Names are fixed in :data:`METRICS` (rule files are validated against it); ``<system>`` and ``<dtype>``
stand for a target system (as in ``extrapolation.jupiter-booster.goodput``) and a GEMM dtype. Shares of
time, efficiencies and percentages are stored as fractions (0.43, not 43) with the unit ``fraction``.
When several documents hold the same kind of run, the first profiled job and the first training run in
the order the documents were given are the ones assessed; benchmark figures are the best over all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ai_ready.records import Record, ResultDocument
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _ceiling, _finite, _int_param, _pct_of_ceiling, _text_param, format_number,
)
from ai_ready.report.sections.profile import (
    PROFILE_BENCHMARK, PROFILE_KIND, _profile_case, _profile_rank_meta,
)
from ai_ready.report.sections.train import TRAIN_BENCHMARK, TRAIN_SCALING_METRIC, _train_is_aggregate

# --------------------------------------------------------------------------- units and kinds

FRACTION = "fraction"
SECONDS = "s"
TIMES = "×"
COUNT = "count"
NUMBER, BOOL, TEXT = "number", "bool", "text"
PERCENT = 100.0
#: Record units that hold a percentage; such a figure is stored here as a fraction.
PERCENT_UNITS = ("%",)
#: The catalog's and records' gigabyte (10^9 bytes), as env.detect and the profile agent use it.
MEMORY_UNIT = "GB"
#: Names of a target system or a dtype inside a metric name: anything else is replaced by "_".
NAME_PART = re.compile(r"[^A-Za-z0-9_-]")
PLACEHOLDER = re.compile(r"<(system|dtype)>")
#: What a placeholder matches in a metric name (a rule may also write "*" there).
PLACEHOLDER_PATTERN = r"[A-Za-z0-9_-]+"


@dataclass(frozen=True)
class MetricSpec:
    """What a metric name means: its kind (number, bool, text), unit and label ({system}, {dtype}, {job})."""

    kind: str
    unit: str
    label: str


#: Every metric ai-ready extracts. A rule names one of these (or puts "*" where <system> stands).
METRICS: dict[str, MetricSpec] = {
    # the profiled job (the lowest rank's figures, medians over the timed steps)
    "profile.mfu": MetricSpec(NUMBER, FRACTION, "MFU of {job}"),
    "profile.gemm_fraction_at_precision": MetricSpec(NUMBER, FRACTION, "GEMM efficiency at the {dtype} precision "
                                                                       "and shape of {job}"),
    "profile.step_time_s": MetricSpec(NUMBER, SECONDS, "step time of {job}"),
    "profile.step_time_cv": MetricSpec(NUMBER, FRACTION, "step-to-step variation (CV) of {job}"),
    "profile.step_time_p90_over_median": MetricSpec(NUMBER, TIMES, "p90 step time over the median, {job}"),
    "profile.data_wait_fraction": MetricSpec(NUMBER, FRACTION, "share of {job}'s step spent waiting for data"),
    "profile.compute_fraction": MetricSpec(NUMBER, FRACTION, "share of {job}'s step in forward and backward"),
    "profile.optimizer_fraction": MetricSpec(NUMBER, FRACTION, "share of {job}'s step in the optimizer step"),
    "profile.checkpoint_fraction": MetricSpec(NUMBER, FRACTION, "share of {job}'s step writing checkpoints"),
    "profile.sync_fraction": MetricSpec(NUMBER, FRACTION, "share of {job}'s step in host–device syncs"),
    "profile.comm_fraction": MetricSpec(NUMBER, FRACTION,
                                        "share of {job}'s step in communication not hidden by compute"),
    "profile.rank_spread": MetricSpec(NUMBER, FRACTION, "how far {job}'s slowest rank is behind the fastest"),
    "profile.memory_peak_fraction": MetricSpec(NUMBER, FRACTION, "peak memory of {job}"),
    "profile.memory_peak_gb": MetricSpec(NUMBER, MEMORY_UNIT, "peak memory of {job}"),
    "profile.world_size": MetricSpec(NUMBER, COUNT, "processes of {job}"),
    "profile.precision": MetricSpec(TEXT, "", "precision of {job}'s matmuls"),
    "profile.mixed_precision": MetricSpec(BOOL, "", "{job} trains in mixed precision (bf16/fp16 autocast)"),
    "profile.loss_scaling": MetricSpec(BOOL, "", "{job} scales the loss (GradScaler)"),
    "profile.compiled": MetricSpec(BOOL, "", "{job} uses torch.compile"),
    "profile.nvidia_only_libraries": MetricSpec(NUMBER, COUNT,
                                                "NVIDIA-only libraries {job} imported (portability to AMD GPUs)"),
    "profile.data_parallel": MetricSpec(BOOL, "", "{job} wraps its model in DDP or FSDP"),
    "profile.distributed_api": MetricSpec(TEXT, "", "data-parallel wrapper of {job}"),
    "profile.activation_checkpointing": MetricSpec(BOOL, "", "{job} uses activation checkpointing"),
    "profile.dataloader_workers": MetricSpec(NUMBER, COUNT, "DataLoader worker processes of {job}"),
    "profile.pin_memory": MetricSpec(BOOL, "", "{job}'s DataLoader pins memory"),
    "profile.checkpointing": MetricSpec(BOOL, "", "{job} saved a checkpoint while profiled"),
    "profile.checkpoint_seconds": MetricSpec(NUMBER, SECONDS, "time of one checkpoint save of {job}"),
    "profile.checkpoint_write_gbs": MetricSpec(NUMBER, "GB/s", "checkpoint write bandwidth of {job}"),
    "profile.status": MetricSpec(TEXT, "", "status of {job}'s profile"),
    # the profiled job extrapolated to a target system by the performance model
    "extrapolation.<system>.fits_memory": MetricSpec(BOOL, "", "{job} fits the GPUs' memory on {system}"),
    "extrapolation.<system>.memory_fraction": MetricSpec(NUMBER, FRACTION, "predicted memory per GPU on {system}"),
    "extrapolation.<system>.mfu": MetricSpec(NUMBER, FRACTION, "predicted MFU on {system}"),
    "extrapolation.<system>.scaling_efficiency_at_full_system": MetricSpec(
        NUMBER, FRACTION, "predicted per-GPU efficiency on the whole of {system}"),
    "extrapolation.<system>.comm_fraction": MetricSpec(
        NUMBER, FRACTION, "predicted share of the step in communication not hidden by compute on {system}"),
    "extrapolation.<system>.bubble_fraction": MetricSpec(NUMBER, FRACTION,
                                                         "predicted share of the step in the pipeline bubble on "
                                                         "{system}"),
    "extrapolation.<system>.goodput": MetricSpec(NUMBER, FRACTION, "predicted goodput on {system}"),
    "extrapolation.<system>.checkpoint_interval_s": MetricSpec(NUMBER, SECONDS,
                                                               "optimal checkpoint interval on {system}"),
    "extrapolation.<system>.checkpoint_s": MetricSpec(NUMBER, SECONDS, "time to write one checkpoint on {system}"),
    "extrapolation.<system>.checkpoint_overhead": MetricSpec(NUMBER, FRACTION,
                                                             "share of the run spent writing checkpoints on {system}"),
    "extrapolation.<system>.mttf_hours": MetricSpec(NUMBER, "h", "mean time between failures of the job on {system}"),
    # micro-benchmarks: the best figure over every document
    "gemm.best_fraction_of_peak": MetricSpec(NUMBER, FRACTION, "best GEMM throughput"),
    "gemm.<dtype>.best_tflops": MetricSpec(NUMBER, "TFLOP/s", "best {dtype} GEMM throughput"),
    "gemm.bf16_over_fp32": MetricSpec(NUMBER, TIMES, "best bf16 GEMM throughput over best fp32"),
    "collectives.busbw_fraction_of_ceiling": MetricSpec(NUMBER, FRACTION, "best collective bus bandwidth"),
    "memory.fraction_of_peak": MetricSpec(NUMBER, FRACTION, "best memory bandwidth"),
    "io.read_fraction_of_ceiling": MetricSpec(NUMBER, FRACTION, "best sequential read bandwidth"),
    "io.seq_read_gbs": MetricSpec(NUMBER, "GB/s", "best sequential read bandwidth"),
    "io.checkpoint_write_gbs": MetricSpec(NUMBER, "GB/s", "best checkpoint save bandwidth"),
    # training workloads
    "train.mfu": MetricSpec(NUMBER, FRACTION, "MFU of the training workload {job}"),
    "train.gemm_fraction_at_precision": MetricSpec(NUMBER, FRACTION, "GEMM efficiency at the {dtype} precision and "
                                                                     "shape of {job}"),
    "train.scaling_efficiency": MetricSpec(NUMBER, FRACTION, "lowest weak-scaling efficiency of {job}"),
}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile("^" + PLACEHOLDER.sub(PLACEHOLDER_PATTERN, re.escape(name)) + "$"), name) for name in METRICS]


def spec_for(name: str) -> MetricSpec | None:
    """The spec of a metric name (a concrete one, e.g. extrapolation.hammerhai.goodput), or None."""
    for pattern, key in _PATTERNS:
        if pattern.match(name):
            return METRICS[key]
    return None


def slug(name: str) -> str:
    """A system or dtype name as it appears inside a metric name."""
    return NAME_PART.sub("_", name) or "_"


# --------------------------------------------------------------------------- the metric

@dataclass(frozen=True)
class Metric:
    """One figure with everything needed to show it as evidence: unit, label, source and ceiling."""

    name: str
    value: float | bool | str
    unit: str
    label: str
    #: The document it came from (its file name in a report).
    source: str
    #: The record or field inside that document.
    origin: str
    #: What the figure is measured against, e.g. "local-cpu fp32 dense peak (0.2944 TFLOP/s)"; "" when none.
    ceiling: str = ""
    ceiling_source: str = ""
    #: The target system an extrapolation metric is about; "" otherwise.
    system: str = ""
    #: Every document (file name) the figure is drawn from; `source` says the same in one line.
    inputs: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if isinstance(self.value, bool):
            return BOOL
        return TEXT if isinstance(self.value, str) else NUMBER

    @property
    def text(self) -> str:
        return format_figure(self.value, self.unit)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "text": self.text, "label": self.label,
                "source": self.source, "origin": self.origin, "ceiling": self.ceiling or None,
                "ceiling_source": self.ceiling_source or None, "system": self.system or None,
                "inputs": list(self.inputs)}


def format_figure(value: Any, unit: str) -> str:
    """A metric's value as the page and the JSON say it: fractions as percentages, flags as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value or MISSING
    if not _finite(value):
        return MISSING
    if unit == FRACTION:
        return f"{PERCENT * value:.1f}%"
    if unit == TIMES:
        return f"{format_number(value)}×"
    if unit == COUNT:
        return f"{value:,.0f}"
    if unit == SECONDS:
        return f"{format_number(value * 1e3)} ms" if abs(value) < 1 else f"{format_number(value)} s"
    return f"{format_number(value)} {unit}".rstrip()


def _make(name: str, value: float | bool | str, source: str, origin: str, *, job: str = "", system: str = "",
          dtype: str = "", ceiling: str = "", ceiling_source: str = "", inputs: tuple[str, ...] = ()) -> Metric:
    """A metric of METRICS; `inputs` lists its documents when it is drawn from more than `source` names alone."""
    spec = spec_for(name)
    if spec is None:  # a bug: every name made here is in METRICS (a test checks it)
        raise KeyError(f"metric {name!r} is not in METRICS")
    # the job's name is user text: put it in last, so a brace in it is never taken for a placeholder
    label = spec.label.replace("{system}", system).replace("{dtype}", dtype).replace("{job}", job or "the job")
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        value = float(value)
    return Metric(name, value, spec.unit, label, source, origin, ceiling, ceiling_source, system,
                  inputs or (source,))


# --------------------------------------------------------------------------- extraction

def extract_metrics(data: ReportData) -> dict[str, Metric]:
    """Every metric the documents hold, by name. Pure: reads the documents, never the machine."""
    found: dict[str, Metric] = {}
    for extractor in EXTRACTORS:
        for metric in extractor(data):
            found.setdefault(metric.name, metric)
    return dict(sorted(found.items()))


def _is_profile_document(doc: ResultDocument) -> bool:
    return _as_dict(doc.meta).get("kind") == PROFILE_KIND


def _profile_documents(data: ReportData) -> list[int]:
    with_records = {e.document for e in data.entries_for(PROFILE_BENCHMARK)}
    return sorted(with_records | {i for i, d in enumerate(data.documents) if _is_profile_document(d)})


def _ok(entries: Iterable[Entry]) -> list[Entry]:
    return [e for e in entries if e.record.status == "ok" and _finite(e.record.value)]


def _origin(record: Record) -> str:
    return f"record {record.benchmark}/{record.case}/{record.metric}, rank {record.rank}"


def _fraction(record: Record) -> float:
    value = float(record.value)
    return value / PERCENT if record.unit in PERCENT_UNITS else value


def _ceiling_text(record: Record) -> tuple[str, str]:
    c = _ceiling(record)
    return (c["label"] or f"{format_number(c['value'])} {c['unit']}", c["source"]) if c else ("", "")


def _profile_metrics(data: ReportData) -> list[Metric]:
    """The first profiled job: its lowest rank's records and what that rank told about itself."""
    documents = _profile_documents(data)
    if not documents:
        return []
    index = documents[0]
    source = data.labels[index]
    meta = _as_dict(_as_dict(data.documents[index].meta).get("profile"))
    entries = [e for e in data.entries_for(PROFILE_BENCHMARK) if e.document == index]
    case, mine, _ = _profile_case(_text_param(_as_dict(meta.get("job")), "name"), entries)
    job = case if entries else (_text_param(_as_dict(meta.get("job")), "name") or "the job")
    ranked = _ok(e for e in mine if not _train_is_aggregate(e.record))
    lowest = min((e.record.rank for e in ranked), default=None)
    main: dict[str, list[Record]] = {}
    for entry in ranked:
        if entry.record.rank == lowest:
            main.setdefault(str(entry.record.metric), []).append(entry.record)
    rank_meta = _profile_rank_meta(meta)
    rank = rank_meta.get(lowest, next(iter(rank_meta.values()), {})) if lowest is not None else \
        next(iter(rank_meta.values()), {})
    make = _maker(source, job)
    out = _profile_step_metrics(main, make)
    mfu = next(iter(main.get("mfu", [])), None)
    if mfu is not None:
        out += _like_for_like(data, "profile.gemm_fraction_at_precision", mfu, _profile_shape(rank), source, job)
    out += _profile_phase_metrics(main, rank, make)
    out += _profile_memory_metrics(main, data.documents[index].meta, make)
    out += _profile_feature_metrics(main, rank, make)
    aggregate = next((e.record for e in _ok(mine) if _train_is_aggregate(e.record)), None)
    spread = _as_dict(aggregate.params).get("rank_spread_pct") if aggregate is not None else None
    if _finite(spread):
        out.append(make("profile.rank_spread", spread / PERCENT, _origin(aggregate) + " (params.rank_spread_pct)"))
    status = _text_param(meta, "status")
    if status:
        out.append(make("profile.status", status, "meta.profile.status"))
    return out


def _maker(source: str, job: str, system: str = "") -> Callable[..., Metric]:
    def make(name: str, value: Any, origin: str, **kwargs: Any) -> Metric:
        return _make(name, value, source, origin, job=job, system=system, **kwargs)
    return make


def _profile_step_metrics(main: dict[str, list[Record]], make: Callable[..., Metric]) -> list[Metric]:
    out = []
    mfu = next(iter(main.get("mfu", [])), None)
    if mfu is not None:
        ceiling, ceiling_source = _ceiling_text(mfu)
        out.append(make("profile.mfu", _fraction(mfu), _origin(mfu), ceiling=ceiling.removeprefix("100% of "),
                        ceiling_source=ceiling_source))
    step = next(iter(main.get("step_time", [])), None)
    if step is not None:
        out.append(make("profile.step_time_s", step.value, _origin(step)))
        stats = _as_dict(step.stats)
        if _finite(stats.get("cv")) and (_int_param(stats, "n") or 0) > 1:
            out.append(make("profile.step_time_cv", stats["cv"], _origin(step) + " (stats.cv)"))
        if _finite(stats.get("p90")) and _finite(stats.get("median")) and stats["median"] > 0:
            out.append(make("profile.step_time_p90_over_median", stats["p90"] / stats["median"],
                            _origin(step) + " (stats.p90 / stats.median)"))
        world = _int_param(_as_dict(step.params), "world_size")
        if world is not None:
            out.append(make("profile.world_size", world, _origin(step) + " (params.world_size)"))
        precision = _text_param(_as_dict(step.params), "precision")
        if precision:
            out.append(make("profile.precision", precision, _origin(step) + " (params.precision)"))
    checkpoint = next(iter(main.get("checkpoint_write", [])), None)
    if checkpoint is not None:
        p = _as_dict(checkpoint.params)
        out.append(make("profile.checkpoint_write_gbs", checkpoint.value, _origin(checkpoint)))
        saves = _int_param(p, "saves")
        if _finite(p.get("seconds")) and saves:
            out.append(make("profile.checkpoint_seconds", p["seconds"] / saves,
                            _origin(checkpoint) + " (params.seconds / params.saves)"))
    return out


#: The profile's phases whose share of the step is a metric of its own.
PHASE_METRICS = {"data": "profile.data_wait_fraction", "optimizer": "profile.optimizer_fraction",
                 "checkpoint": "profile.checkpoint_fraction", "sync": "profile.sync_fraction"}
#: The phases that are the model's own arithmetic (the rest is overhead a rule may point at).
COMPUTE_PHASES = ("forward", "backward")


def _profile_phase_metrics(main: dict[str, list[Record]], rank: dict[str, Any],
                           make: Callable[..., Metric]) -> list[Metric]:
    """Shares of the step (params.share_of_step: mean phase time over mean step time)."""
    shares: dict[str, tuple[float, Record]] = {}
    for record in main.get("phase_time", []):
        p = _as_dict(record.params)
        if _finite(p.get("share_of_step")) and _text_param(p, "phase"):
            shares.setdefault(_text_param(p, "phase"), (float(p["share_of_step"]), record))
    out = [make(name, shares[phase][0], _origin(shares[phase][1]) + f" phase {phase} (params.share_of_step)")
           for phase, name in PHASE_METRICS.items() if phase in shares]
    if all(phase in shares for phase in COMPUTE_PHASES):
        out.append(make("profile.compute_fraction", sum(shares[p][0] for p in COMPUTE_PHASES),
                        "records profile/phase_time forward + backward (params.share_of_step)"))
    exposed = next(iter(main.get("exposed_comm", [])), None)
    exposed_share = _as_dict(exposed.params).get("share_of_step") if exposed is not None else None
    parts = [(shares["comm"][0], "phase comm")] if "comm" in shares else []
    if _finite(exposed_share):
        parts.append((float(exposed_share), "exposed_comm"))
    world = _int_param(rank, "world_size") or 1
    if parts:
        out.append(make("profile.comm_fraction", sum(v for v, _ in parts),
                        "records profile/" + " + ".join(n for _, n in parts) + " (params.share_of_step)"))
    elif world > 1 and shares:
        # several processes and no communication outside backward nor an exposed DDP tail was measured
        out.append(make("profile.comm_fraction", 0.0, "records profile/phase_time: no comm phase nor exposed_comm "
                                                      f"record with {world} processes"))
    return out


def _profile_memory_metrics(main: dict[str, list[Record]], doc_meta: Any,
                            make: Callable[..., Metric]) -> list[Metric]:
    """Peak memory and, when the environment recorded the memory it is a share of, that share."""
    peak = next(iter(main.get("peak_memory", [])), None)
    if peak is None or peak.unit != MEMORY_UNIT:
        return []
    out = [make("profile.memory_peak_gb", peak.value, _origin(peak))]
    environment = _as_dict(_as_dict(doc_meta).get("environment"))
    kind = _text_param(_as_dict(peak.params), "kind")
    device = _as_dict(environment.get("device"))
    if kind.startswith("CUDA") and _finite(device.get("memory_gb")) and device["memory_gb"] > 0:
        total, where, what = device["memory_gb"], "meta.environment.device.memory_gb", "device memory"
    elif kind.startswith("peak resident") and _finite(_as_dict(environment.get("cpu")).get("memory_gb")):
        total, where, what = environment["cpu"]["memory_gb"], "meta.environment.cpu.memory_gb", "host memory"
    else:
        return out
    if total > 0:
        out.append(make("profile.memory_peak_fraction", peak.value / total, _origin(peak) + f" / {where}",
                        ceiling=f"{what}, {format_number(total)} GB", ceiling_source=where))
    return out


def _profile_feature_metrics(main: dict[str, list[Record]], rank: dict[str, Any],
                             make: Callable[..., Metric]) -> list[Metric]:
    """What the job uses, as the hooks saw it (meta.profile.ranks[].features)."""
    features = _as_dict(rank.get("features"))
    if not features:
        return []
    where = f"meta.profile.ranks[rank {rank.get('rank', 0)}].features"
    out = []
    for key, name in (("grad_scaler", "profile.loss_scaling"), ("compile", "profile.compiled"),
                      ("activation_checkpointing", "profile.activation_checkpointing"),
                      ("checkpointing", "profile.checkpointing")):
        if isinstance(features.get(key), bool):
            out.append(make(name, features[key], f"{where}.{key}"))
    autocast = features.get("autocast")
    step = next(iter(main.get("step_time", [])), None)
    precision = _text_param(_as_dict(step.params), "precision") if step is not None else ""
    if isinstance(autocast, list) or precision:
        mixed = bool(autocast) or precision in ("bf16", "fp16")
        out.append(make("profile.mixed_precision", mixed, f"{where}.autocast and the step's params.precision"))
    nvidia_only = features.get("nvidia_only")
    if isinstance(nvidia_only, list):  # profiles from before this field was recorded say nothing
        names = ", ".join(str(_as_dict(n).get("module")) for n in nvidia_only) or "none"
        out.append(make("profile.nvidia_only_libraries", len(nvidia_only), f"{where}.nvidia_only ({names})"))
    ddp, fsdp = features.get("ddp"), features.get("fsdp")
    if isinstance(ddp, bool) and isinstance(fsdp, bool):
        out.append(make("profile.data_parallel", ddp or fsdp, f"{where}.ddp, .fsdp"))
        api = " and ".join(n for n, used in (("DDP", ddp), ("FSDP", fsdp)) if used) or "none"
        out.append(make("profile.distributed_api", api, f"{where}.ddp, .fsdp"))
    loader = _as_dict(features.get("dataloader"))
    if _int_param(loader, "workers") is not None:
        out.append(make("profile.dataloader_workers", loader["workers"], f"{where}.dataloader.workers"))
    if isinstance(loader.get("pin_memory"), bool):
        out.append(make("profile.pin_memory", loader["pin_memory"], f"{where}.dataloader.pin_memory"))
    return out


#: The model's step components that communication costs: the part not hidden by compute, and the
#: compute it slows while hidden (model/step.py breakdown).
COMM_PARTS = ("tp_comm", "cp_comm", "ep_comm", "pp_p2p", "dp_comm", "overlap_contention")
BUBBLE_PART = "pp_bubble"


def _extrapolation_metrics(data: ReportData) -> list[Metric]:
    """The first profile document that stores an extrapolation: per target system its prediction."""
    for index in _profile_documents(data):
        profile = _as_dict(_as_dict(data.documents[index].meta).get("profile"))
        ext = _as_dict(profile.get("extrapolation"))
        systems = ext.get("systems")
        if not isinstance(systems, list):
            continue
        job = _text_param(_as_dict(profile.get("job")), "name") or "the job"
        out: list[Metric] = []
        for position, entry in enumerate(systems):
            if isinstance(entry, dict) and _text_param(entry, "system"):
                out += _system_metrics(entry, position, _maker(data.labels[index], job, entry["system"]))
        return out
    return _standalone_extrapolation_metrics(data)


def _standalone_extrapolation_metrics(data: ReportData) -> list[Metric]:
    """Without a profile: the first workload's extrapolations from `ai-ready extrapolate -o`, per system."""
    from ai_ready.report.sections.extrapolation import EXTRAPOLATION_KEY, _standalone

    groups = _standalone(data)
    if not groups:
        return []
    profile, labels = groups[0]
    job = _text_param(_as_dict(profile.get("job")), "name") or "the workload"
    out: list[Metric] = []
    for position, (entry, label) in enumerate(zip(profile[EXTRAPOLATION_KEY]["systems"], labels)):
        if _text_param(entry, "system"):
            out += _system_metrics(entry, position, _maker(label, job, entry["system"]))
    return out


def _system_metrics(entry: dict[str, Any], position: int, make: Callable[..., Metric]) -> list[Metric]:
    name = str(entry["system"])
    key = f"extrapolation.{slug(name)}"
    where = f"meta.profile.extrapolation.systems[{position}]"
    p = _as_dict(entry.get("prediction"))
    curve = [q for q in entry.get("scaling") or [] if isinstance(q, dict)] if isinstance(entry.get("scaling"),
                                                                                       list) else []
    out = []
    if isinstance(p.get("fits_memory"), bool):
        out.append(make(f"{key}.fits_memory", p["fits_memory"], f"{where}.prediction.fits_memory"))
    elif curve and not any(q.get("fits") is True for q in curve):
        out.append(make(f"{key}.fits_memory", False, f"{where}.scaling: no point fits"))
    if _finite(p.get("mfu")):
        out.append(make(f"{key}.mfu", p["mfu"], f"{where}.prediction.mfu",
                        ceiling=f"{format_number(p.get('peak_tflops_per_gpu'))} TFLOP/s dense peak per GPU"
                        if _finite(p.get("peak_tflops_per_gpu")) else ""))
    memory, hbm = p.get("memory_gb_per_gpu"), p.get("hbm_gb_per_gpu")
    if _finite(memory) and _finite(hbm) and hbm > 0:
        out.append(make(f"{key}.memory_fraction", memory / hbm, f"{where}.prediction.memory_gb_per_gpu / "
                        "hbm_gb_per_gpu", ceiling=f"{format_number(hbm)} GB HBM per GPU"))
    out += _breakdown_metrics(key, where, p, make)
    fitting = [q for q in curve if q.get("fits") is True and _finite(q.get("efficiency")) and _finite(q.get("gpus"))]
    if fitting:
        last, first = max(fitting, key=lambda q: q["gpus"]), min(fitting, key=lambda q: q["gpus"])
        used = last.get("gpus_used") if _finite(last.get("gpus_used")) else last["gpus"]
        out.append(make(f"{key}.scaling_efficiency_at_full_system", last["efficiency"],
                        f"{where}.scaling (largest point that fits)",
                        ceiling=f"per-GPU throughput at {_count(used)} GPUs relative to "
                                f"{_count(first.get('gpus_used') or first['gpus'])} GPUs"))
    out += _run_metrics(key, where, _as_dict(p.get("run")), make)
    return out


def _count(value: Any) -> str:
    return f"{value:,.0f}" if _finite(value) and float(value).is_integer() else format_number(value)


def _breakdown_metrics(key: str, where: str, p: dict[str, Any], make: Callable[..., Metric]) -> list[Metric]:
    parts = {k: float(v) for k, v in _as_dict(p.get("breakdown")).items() if _finite(v)}
    step = p.get("step_time_s")
    if not parts or not _finite(step) or step <= 0:
        return []
    out = [make(f"{key}.comm_fraction", sum(parts.get(k, 0.0) for k in COMM_PARTS) / step,
                f"{where}.prediction.breakdown ({' + '.join(COMM_PARTS)}) / step_time_s")]
    if BUBBLE_PART in parts:
        out.append(make(f"{key}.bubble_fraction", parts[BUBBLE_PART] / step,
                        f"{where}.prediction.breakdown.{BUBBLE_PART} / step_time_s"))
    return out


def _run_metrics(key: str, where: str, run: dict[str, Any], make: Callable[..., Metric]) -> list[Metric]:
    out = []
    for field, suffix in (("goodput", "goodput"), ("checkpoint_interval_s", "checkpoint_interval_s"),
                          ("checkpoint_s", "checkpoint_s"), ("mttf_hours", "mttf_hours")):
        if _finite(run.get(field)):
            out.append(make(f"{key}.{suffix}", run[field], f"{where}.prediction.run.{field}"))
    interval, write = run.get("checkpoint_interval_s"), run.get("checkpoint_s")
    if _finite(interval) and _finite(write) and interval + write > 0:
        out.append(make(f"{key}.checkpoint_overhead", write / (interval + write),
                        f"{where}.prediction.run: checkpoint_s / (checkpoint_interval_s + checkpoint_s)"))
    return out


def _best(entries: Iterable[Entry], figure: Callable[[Record], float | None]) -> tuple[float, Entry] | None:
    scored = [(value, e) for e in entries if (value := figure(e.record)) is not None and math.isfinite(value)]
    return max(scored, key=lambda item: item[0]) if scored else None


def _pct_fraction(record: Record) -> float | None:
    pct = _pct_of_ceiling(record)
    return pct / PERCENT if pct is not None else None


def _gemm_metrics(data: ReportData) -> list[Metric]:
    from ai_ready.report.sections.gemm import GEMM_BENCHMARK, GEMM_UNIT

    entries = [e for e in _ok(data.entries_for(GEMM_BENCHMARK)) if e.record.unit == GEMM_UNIT]
    out = []
    best = _best(entries, _pct_fraction)
    if best is not None:
        value, entry = best
        ceiling, ceiling_source = _ceiling_text(entry.record)
        out.append(_make("gemm.best_fraction_of_peak", value, entry.source, _origin(entry.record),
                         ceiling=ceiling, ceiling_source=ceiling_source))
    by_dtype: dict[str, tuple[float, Entry]] = {}
    for entry in entries:
        dtype = _text_param(_as_dict(entry.record.params), "dtype")
        if dtype and (dtype not in by_dtype or entry.record.value > by_dtype[dtype][0]):
            by_dtype[dtype] = (float(entry.record.value), entry)
    for dtype, (value, entry) in sorted(by_dtype.items()):
        out.append(_make(f"gemm.{slug(dtype)}.best_tflops", value, entry.source, _origin(entry.record), dtype=dtype))
    if "bf16" in by_dtype and "fp32" in by_dtype and by_dtype["fp32"][0] > 0:
        (bf16, low), (fp32, high) = by_dtype["bf16"], by_dtype["fp32"]
        inputs = tuple(dict.fromkeys((low.source, high.source)))
        out.append(_make("gemm.bf16_over_fp32", bf16 / fp32, ", ".join(inputs),
                         f"records gemm/{low.record.case} over gemm/{high.record.case}", inputs=inputs))
    return out


#: Collectives whose bus bandwidth speaks for the link first; any other operation is used when none ran.
PREFERRED_COLLECTIVE = "all_reduce"


def _collective_metrics(data: ReportData) -> list[Metric]:
    from ai_ready.meaning import latencies, not_judgeable
    from ai_ready.report.sections.collectives import COLLECTIVES_BENCHMARK

    records = data.entries_for(COLLECTIVES_BENCHMARK)
    alphas = latencies(e.record for e in records)
    # a one-rank run or a latency-bound size says nothing about the link: such figures are not graded
    busbw = [e for e in _ok(records) if e.record.metric == "busbw" and not_judgeable(e.record, alphas) is None]
    preferred = [e for e in busbw if _text_param(_as_dict(e.record.params), "op") == PREFERRED_COLLECTIVE]
    best = _best(preferred, _pct_fraction) or _best(busbw, _pct_fraction)
    if best is None:
        return []
    value, entry = best
    ceiling, ceiling_source = _ceiling_text(entry.record)
    return [_make("collectives.busbw_fraction_of_ceiling", value, entry.source, _origin(entry.record),
                  ceiling=ceiling, ceiling_source=ceiling_source)]


#: Memory operations whose bandwidth is compared with the device's catalog peak (not host transfers).
DEVICE_MEMORY_OPS = ("d2d-copy", "copy", "scale", "add", "triad")
MEASURED_KIND = "measured"


def _memory_metrics(data: ReportData) -> list[Metric]:
    """Best bandwidth against a catalog or declared peak (a measured copy ceiling is not a peak)."""
    from ai_ready.report.sections.memory import BANDWIDTH_METRIC, MEMORY_BENCHMARK

    best: tuple[float, Entry, dict[str, Any]] | None = None
    for entry in _ok(data.entries_for(MEMORY_BENCHMARK)):
        r = entry.record
        if r.metric != BANDWIDTH_METRIC or _text_param(_as_dict(r.params), "op") not in DEVICE_MEMORY_OPS:
            continue
        for ceiling in [_as_dict(r.ceiling), *map(_as_dict, r.other_ceilings or [])]:
            if ceiling.get("kind") == MEASURED_KIND or not _finite(ceiling.get("value")) or ceiling["value"] <= 0:
                continue
            value = float(r.value) / float(ceiling["value"])
            if best is None or value > best[0]:
                best = (value, entry, ceiling)
    if best is None:
        return []
    value, entry, ceiling = best
    return [_make("memory.fraction_of_peak", value, entry.source, _origin(entry.record),
                  ceiling=str(ceiling.get("label") or f"{format_number(ceiling['value'])} GB/s"),
                  ceiling_source=str(ceiling.get("source") or ""))]


GBS = "GB/s"


def _io_metrics(data: ReportData) -> list[Metric]:
    from ai_ready.report.sections.io import IO_BENCHMARK

    entries = [e for e in _ok(data.entries_for(IO_BENCHMARK)) if e.record.metric == "bandwidth"
               and e.record.unit == GBS and _as_dict(e.record.params).get("aggregate") is not True]
    reads = [e for e in entries if _text_param(_as_dict(e.record.params), "op") == "seq_read"]
    saves = [e for e in entries if str(e.record.case).startswith("checkpoint-save")]
    out = []
    for name, group, figure in (("io.read_fraction_of_ceiling", reads, _pct_fraction),
                                ("io.seq_read_gbs", reads, lambda r: float(r.value)),
                                ("io.checkpoint_write_gbs", saves, lambda r: float(r.value))):
        best = _best(group, figure)
        if best is not None:
            value, entry = best
            ceiling, ceiling_source = _ceiling_text(entry.record) if name.endswith("ceiling") else ("", "")
            out.append(_make(name, value, entry.source, _origin(entry.record), ceiling=ceiling,
                             ceiling_source=ceiling_source))
    return out


def _train_metrics(data: ReportData) -> list[Metric]:
    """The best training run's MFU and the lowest weak-scaling efficiency."""
    entries = _ok(data.entries_for(TRAIN_BENCHMARK))
    out = []
    # the best-running workload speaks for the machine: a small preset (a CNN, a medium MoE) is far below the peak
    # on any GPU, so judging the first file given would raise a false alarm
    mfu = sorted((e for e in entries if e.record.metric == "mfu" and not _train_is_aggregate(e.record)),
                 key=lambda e: (-_fraction(e.record), e.document, e.record.rank))
    if mfu:
        record = mfu[0].record
        ceiling, ceiling_source = _ceiling_text(record)
        out.append(_make("train.mfu", _fraction(record), mfu[0].source, _origin(record), job=str(record.case),
                         ceiling=ceiling.removeprefix("100% of "), ceiling_source=ceiling_source))
        p = _as_dict(record.params)
        shape = None
        if all(_finite(p.get(k)) for k in ("batch", "seq_len", "hidden")):
            shape = (float(p["batch"]) * float(p["seq_len"]), float(p["hidden"]), float(p["hidden"]))
        out += _like_for_like(data, "train.gemm_fraction_at_precision", record, shape, mfu[0].source,
                              str(record.case))
    scaling = [e for e in entries if e.record.metric == TRAIN_SCALING_METRIC]
    if scaling:
        worst = min(scaling, key=lambda e: _fraction(e.record))
        ranks = _int_param(_as_dict(worst.record.params), "ranks") or _int_param(_as_dict(worst.record.params),
                                                                                  "world_size")
        out.append(_make("train.scaling_efficiency", _fraction(worst.record), worst.source, _origin(worst.record),
                         job=str(worst.record.case).removesuffix("-scaling"),
                         ceiling=f"ideal weak scaling at {ranks} ranks" if ranks else "ideal weak scaling"))
    return out


#: Training precision -> the GEMM dtype whose efficiency a job at that precision can reach (PyTorch runs fp32
#: matmuls in full fp32 unless the job allows TF32).
PRECISION_GEMM_DTYPE = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8"}


def _profile_shape(rank: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """(tokens per micro-batch, hidden, hidden): the profiled model's typical GEMM, when its shape is known."""
    model = _as_dict(_as_dict(rank.get("model")).get("transformer"))
    loader = _as_dict(_as_dict(rank.get("features")).get("dataloader"))
    hidden, batch, seq = model.get("hidden"), loader.get("batch_size"), rank.get("seq_len")
    if all(_finite(v) and v > 0 for v in (hidden, batch, seq)):
        return float(batch) * float(seq), float(hidden), float(hidden)
    return None


def _shape_distance(params: Mapping[str, Any], shape: tuple[float, float, float] | None) -> float:
    if shape is None or not all(_finite(params.get(k)) and params[k] > 0 for k in "mnk"):
        return 0.0
    return sum(abs(math.log(float(params[k]) / v)) for k, v in zip("mnk", shape))


def _like_for_like(data: ReportData, name: str, mfu: Record, shape: tuple[float, float, float] | None,
                   source: str, job: str) -> list[Metric]:
    """The GEMM efficiency a job could reach: measured in its own precision, on the shape closest to its typical
    GEMM (tokens × hidden × hidden); ties go to the faster shape. Nothing when that precision was not measured:
    a gain is never derived from another dtype's GEMM."""
    from ai_ready.report.sections.gemm import GEMM_BENCHMARK, GEMM_UNIT

    dtype = PRECISION_GEMM_DTYPE.get(_text_param(_as_dict(mfu.params), "precision"))
    if dtype is None:
        return []
    candidates = [e for e in _ok(data.entries_for(GEMM_BENCHMARK)) if e.record.unit == GEMM_UNIT
                  and _text_param(_as_dict(e.record.params), "dtype") == dtype and _pct_fraction(e.record) is not None]
    if not candidates:
        return []
    chosen = min(candidates, key=lambda e: (_shape_distance(_as_dict(e.record.params), shape),
                                            -float(_pct_fraction(e.record) or 0.0)))
    p = _as_dict(chosen.record.params)
    size = "×".join(str(p.get(k)) for k in "mnk")
    near = (f", closest to the job's {'×'.join(f'{v:.0f}' for v in shape)}" if shape is not None
            else ", the fastest shape (the job's shape is unknown)")
    ceiling, ceiling_source = _ceiling_text(chosen.record)
    return [_make(name, float(_pct_fraction(chosen.record) or 0.0), f"{source} + {chosen.source}",
                  f"{_origin(chosen.record)} ({dtype}, {size}{near})", job=job, dtype=dtype, ceiling=ceiling,
                  ceiling_source=ceiling_source, inputs=(source, chosen.source))]


#: The extractors, in the order their metrics are listed when names collide (the first one wins).
EXTRACTORS: tuple[Callable[[ReportData], list[Metric]], ...] = (
    _profile_metrics, _extrapolation_metrics, _gemm_metrics, _collective_metrics, _memory_metrics, _io_metrics,
    _train_metrics,
)
