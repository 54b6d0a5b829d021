"""Turn the ranks' raw profiles into one result document: records per rank, the aggregate, and the job.

The document is an ordinary ``ai-ready/results`` v1 file (so ``ai-ready report``
and pandas read it like any benchmark) with ``meta.kind = "profile"`` and a
``meta.profile`` block describing the job: status, command, features, model
shape, collectives, checkpoint I/O, marks and the stderr tail of a failure.
Figures are medians over the timed steps (warm-up and the FLOP-counting step
excluded); every rank's raw step times are kept as samples.
"""

from __future__ import annotations

import statistics
from typing import Any

from ai_ready.bench.ceiling import apply_ceiling, mfu_ceiling
from ai_ready.records import Record, ResultDocument
from ai_ready.profile.agent import PHASES
from ai_ready.profile.jobspec import JobSpec
from ai_ready.profile.runner import JobOutcome

BENCHMARK = "profile"
KIND = "profile"
ALL_PHASES = PHASES + ("other",)
FLOPS_AGREEMENT = 0.05
#: Attention score and value matmuls per token and layer, forward + backward (2·2·s·h forward, × 3).
ATTENTION_FLOPS_FACTOR = 12
CYCLE_ADVICE = ("the job never called optimizer.step(): steps were taken as forward/backward cycles; for exact "
                "step boundaries wrap each step of the loop in `with ai_ready.step():` (import ai_ready)")
TRAIN_FLOPS_PER_PARAM_TOKEN = 6  # forward 2, backward 4 (Kaplan et al. 2020; Narayanan et al. 2021)


def precision_of(rank: dict[str, Any]) -> str:
    """The precision the job's matmuls run in: autocast's dtype, else the parameters' dtype."""
    autocast = rank.get("features", {}).get("autocast") or []
    for dtype, name in (("bfloat16", "bf16"), ("float16", "fp16")):
        if any(entry.endswith(dtype) for entry in autocast):
            return name
    dtypes = (rank.get("model") or {}).get("dtypes") or {}
    main = max(dtypes, key=dtypes.get) if dtypes else "float32"
    return {"bfloat16": "bf16", "float16": "fp16"}.get(main, "fp32")


#: Where a step's work is read, in order of trust: (item, key of the raw step, source named in the profile).
#: What entered the model counts micro-batches without a DataLoader and reads keyword batches.
WORK_SOURCES = (("tokens", "model_tokens", "model inputs"), ("tokens", "tokens", "DataLoader batches"),
                ("samples", "model_samples", "model inputs"), ("samples", "samples", "DataLoader batches"))


def work_source(steps: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """(item, raw key, source) of the first source that counted every one of these steps, or None."""
    for item, key, source in WORK_SOURCES:
        if steps and all(s.get(key) for s in steps):
            return item, key, source
    return None


def timed_steps(rank: dict[str, Any]) -> list[dict[str, Any]]:
    wanted = set(rank.get("timed_steps") or [])
    return [s for s in rank.get("steps", []) if s.get("index") in wanted]


def analytic_flops(rank: dict[str, Any], tokens_per_step: float) -> float | None:
    """6 · matmul parameters · tokens + attention (12 · layers · seq · hidden per token), for a recognised
    transformer; None otherwise."""
    model = rank.get("model") or {}
    shape = model.get("transformer")
    seq = rank.get("seq_len")
    if not shape or not seq or not tokens_per_step or not model.get("matmul_parameters"):
        return None
    per_token = (TRAIN_FLOPS_PER_PARAM_TOKEN * model["matmul_parameters"]
                 + ATTENTION_FLOPS_FACTOR * shape["layers"] * seq * shape["hidden"])
    return per_token * tokens_per_step


def rank_records(rank: dict[str, Any], case: str, ceiling: dict[str, Any] | None) -> list[Record]:
    """One rank's figures over its timed steps."""
    steps = timed_steps(rank)
    if not steps:
        return []
    fields = dict(benchmark=BENCHMARK, case=case, rank=int(rank.get("rank", 0)), host=str(rank.get("host", "")),
                  device=str(rank.get("device_name") or rank.get("device") or ""))
    base = {"precision": precision_of(rank), "step_source": rank.get("step_source"), "steps": len(steps),
            "world_size": rank.get("world_size", 1)}
    totals = [s["total_s"] for s in steps]
    mean_total = statistics.fmean(totals)
    warnings = [CYCLE_ADVICE] if rank.get("step_source") == "cycle" else []
    records = [Record.from_samples(totals, params=dict(base), metric="step_time", unit="s", warnings=list(warnings),
                                   timing={"clock": "host (time.perf_counter) at step boundaries",
                                           "cache": "warm (steady-state steps)",
                                           "warmup_steps": rank.get("settings", {}).get("warmup_steps_taken")},
                                   **fields)]
    for phase in ALL_PHASES:
        values = [s["phases"].get(phase, 0.0) for s in steps]
        if phase not in ("data", "forward", "backward", "optimizer", "other") and not any(values):
            continue
        share = statistics.fmean(values) / mean_total if mean_total > 0 else 0.0
        records.append(Record.from_samples(values, warn_noise=False, params=dict(base, phase=phase,
                                           share_of_step=share), metric="phase_time", unit="s", **fields))
    found = work_source(steps)
    if found is not None:
        item, key, source = found
        counts = [s[key] for s in steps]
        records.append(Record.from_samples([c / t for c, t in zip(counts, totals)], warn_noise=False,
                                           params=dict(base, item=item, per_step=statistics.median(counts),
                                                       source=source),
                                           metric="throughput", unit=f"{item}/s", **fields))
    exposed = [s.get("exposed_comm", 0.0) for s in steps]
    if any(exposed):
        records.append(Record.from_samples(exposed, warn_noise=False, params=dict(
            base, share_of_step=statistics.fmean(exposed) / mean_total if mean_total > 0 else 0.0,
            definition="DDP: from the last gradient bucket ready to backward's return"),
            metric="exposed_comm", unit="s", **fields))
    records += _flops_records(rank, steps, totals, base, fields, ceiling)
    memory = rank.get("memory") or {}
    if memory.get("peak_gb") is not None:
        records.append(Record(params=dict(base, kind=memory.get("kind")), metric="peak_memory", unit="GB",
                              value=float(memory["peak_gb"]), **fields))
    io = (rank.get("checkpoint_io") or {}).get("save") or {}
    if io.get("count") and io.get("seconds", 0) > 0 and io.get("bytes", 0) > 0:
        records.append(Record(params=dict(base, saves=io["count"], bytes=io["bytes"], seconds=io["seconds"]),
                              metric="checkpoint_write", unit="GB/s", value=io["bytes"] / io["seconds"] / 1e9,
                              **fields))
    return records


def _flops_records(rank: dict[str, Any], steps: list[dict[str, Any]], totals: list[float], base: dict[str, Any],
                   fields: dict[str, Any], ceiling: dict[str, Any] | None) -> list[Record]:
    flops = rank.get("flops") or {}
    counted = flops.get("counted")
    found = work_source(steps)
    tokens = statistics.median(s[found[1]] for s in steps) if found and found[0] == "tokens" else 0
    analytic = analytic_flops(rank, tokens)
    per_step = counted if counted else analytic
    if not per_step:
        return [Record(params=dict(base), metric="model_flops", unit="FLOP/step", status="skipped",
                       reason=flops.get("note") or "FLOPs not counted and the model is not a recognised transformer",
                       **fields)]
    check = None
    if counted and analytic:
        ratio = analytic / counted
        check = {"passed": abs(ratio - 1) <= FLOPS_AGREEMENT, "metric": "analytic / FlopCounterMode",
                 "value": ratio, "tolerance": FLOPS_AGREEMENT,
                 "reference": "6 × matmul parameters × tokens + attention (Narayanan et al. 2021)"}
    method = flops.get("method") or "FlopCounterMode"
    source = ("FlopCounterMode on one step" if method == "FlopCounterMode" else method) if counted else \
        "analytic (recognised transformer)"
    params = dict(base, flop_counter=counted, analytic=analytic, source=source, counted_step=flops.get("step"))
    warnings = [] if check is None or check["passed"] else [
        f"analytic FLOPs differ from FlopCounterMode's by {abs(check['value'] - 1):.0%}: the model is not the "
        "plain transformer the formula assumes; MFU uses the counted figure"]
    records = [Record(params=params, metric="model_flops", unit="FLOP/step", value=float(per_step), check=check,
                      warnings=warnings, **fields)]
    achieved = Record.from_samples([per_step / t / 1e12 for t in totals], warn_noise=False, params=dict(base),
                                   metric="model_tflops", unit="TFLOP/s", **fields)
    records.append(apply_ceiling(achieved, ceiling))
    if ceiling:
        peak = ceiling["value"] * 1e12
        mfu = Record.from_samples([100.0 * per_step / t / peak for t in totals], warn_noise=False,
                                  params=dict(base), metric="mfu", unit="%", **fields)
        mfu.ceiling = mfu_ceiling(ceiling)
        mfu.pct_of_ceiling = mfu.value
        records.append(mfu)
    return records


def aggregate_record(ranks: list[dict[str, Any]], case: str) -> Record | None:
    """All ranks' items per second over the slowest rank's step time, step by step; slowest rank named."""
    per_rank = [(r, timed_steps(r)) for r in ranks]
    per_rank = [(r, s) for r, s in per_rank if s]
    if len(per_rank) < 2:
        return None
    n = min(len(s) for _, s in per_rank)
    found = work_source([step for _, s in per_rank for step in s[:n]])
    if found is None:
        return None
    item, key, _ = found
    samples = [sum(s[i][key] for _, s in per_rank) / max(s[i]["total_s"] for _, s in per_rank) for i in range(n)]
    medians = {int(r.get("rank", 0)): statistics.median(step["total_s"] for step in s) for r, s in per_rank}
    slowest = max(medians, key=medians.__getitem__)
    fastest = min(medians.values())
    return Record.from_samples(samples, benchmark=BENCHMARK, case=f"{case}-aggregate", metric="throughput",
                               unit=f"{item}/s", params={"aggregate": True, "ranks": len(per_rank), "item": item,
                                                        "slowest_rank": slowest,
                                                        "rank_spread_pct": 100.0 * (medians[slowest] - fastest) / fastest
                                                        if fastest > 0 else None,
                                                        "step_time_per_rank": medians})


def job_meta(spec: JobSpec, outcome: JobOutcome) -> dict[str, Any]:
    """What the report needs to describe the job and its profile (everything here is user data: escape it)."""
    ranks = []
    for r in outcome.ranks:
        ranks.append({key: r.get(key) for key in ("rank", "world_size", "host", "device", "device_name", "status",
                                                   "step_source", "optimizer_steps", "forward_calls",
                                                   "backward_calls", "flops", "model", "seq_len", "memory",
                                                   "features", "collectives", "checkpoint_io", "marks",
                                                   "trace_file", "wall_s", "settings")}
                     | {"steps_recorded": len(r.get("steps", [])), "timed_steps": len(timed_steps(r))})
    target = None
    if spec.target is not None:
        model = spec.target.model
        target = {"model": None if model is None else {k: v for k, v in vars(model).items() if v is not None},
                  "tokens": spec.target.tokens, "systems": list(spec.target.systems),
                  "global_batch": spec.target.global_batch, "precision": spec.target.precision,
                  "tokens_per_step": spec.target.tokens_per_step, "software": spec.target.software}
    return {
        "job": {"name": spec.name, "directory": str(spec.directory), "command": list(spec.command),
                "launcher": spec.launcher, "nproc": spec.nproc, "env": dict(spec.env),
                "argv": outcome.argv, "source": str(spec.source) if spec.source else None},
        "settings": {"warmup_steps": spec.profile.warmup_steps, "steps": spec.profile.steps,
                     "timeout_s": spec.profile.timeout_s, "trace": spec.profile.trace},
        "status": outcome.status, "reason": outcome.reason, "exit_code": outcome.exit_code,
        "stopped_by": outcome.stopped_by, "stderr_tail": outcome.stderr_tail if outcome.status != "complete" else "",
        "duration_s": outcome.duration_s, "ranks": ranks, "target": target,
    }


def build_document(spec: JobSpec, outcome: JobOutcome, meta: dict[str, Any],
                   ceiling: dict[str, Any] | None) -> ResultDocument:
    records: list[Record] = []
    for rank in outcome.ranks:
        records += rank_records(rank, spec.name, ceiling)
    aggregate = aggregate_record(outcome.ranks, spec.name)
    if aggregate is not None:
        records.append(aggregate)
    meta = dict(meta, kind=KIND, profile=job_meta(spec, outcome),
                status=outcome.status if outcome.status in ("complete", "stopped") else "partial")
    return ResultDocument(meta=meta, records=records)
