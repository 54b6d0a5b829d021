"""Training workloads: step time, throughput, MFU, phase breakdown and weak
scaling per run. The profile section reuses these helpers, as a profiled job
is laid out like a training run.
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record
from ai_ready.report import charts
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _ceiling, _check, _coll_hosts, _cv, _finite, _int_param, _is_noisy,
    _other_row, _pct_of_ceiling, _plain, _references, _text_param, format_number,
)


TRAIN_BENCHMARK = "train"
#: The four parts of a step, in the order they run, with the name the page gives each.
TRAIN_PHASES = {"data": "data wait", "forward": "forward (with the loss)", "backward": "backward",
                "optimizer": "optimizer step"}
#: The metrics a run's block shows; an ok record of another metric is listed under "Other training records".
TRAIN_METRICS = ("step_time", "throughput", "model_tflops", "mfu", "phase_time", "model_flops", "loss",
                 "peak_memory", "exposed_comm")
#: The phases' median shares need not add to exactly 100% (medians do not add); beyond this gap it is said.
TRAIN_SHARE_GAP_PCT = 5.0
#: params that describe the run or one record rather than the model, left out of the model line.
TRAIN_RUN_PARAMS = ("arch", "preset", "batch", "steps", "warmup_steps", "precision", "workers", "parallel",
                    "world_size", "parameters", "model_flops_per_step", "item", "phase", "share_of_step",
                    "flop_counter", "analytic", "first_loss", "last_loss", "aggregate", "ranks", "per_rank",
                    "slowest_rank", "recompute", "compile", "expert_parallel", "hardware_flops_per_step",
                    "backward_synced_s", "backward_local_s", "probe_steps")
MS_PER_S = 1000.0


def build_train(data: ReportData) -> dict[str, Any] | None:
    """One block per run (document × case): what the run was, its throughput per rank and in aggregate, step
    time with its spread, model TFLOP/s and MFU beside the peak and its source, the FLOPs check, the loss,
    peak memory, where the step's time goes, and every rank's figures when several ranks ran."""
    entries = data.entries_for(TRAIN_BENCHMARK)
    if not entries:
        return None
    scaling = [e for e in entries if _train_is_scaling(e.record)]
    runs = _train_runs([e for e in entries if not _train_is_scaling(e.record)])
    several_documents = len({e.document for e in entries}) > 1
    blocks, extras = [], []
    for (document, case, _), members in sorted(runs.items(), key=lambda item: _train_run_sort(item[0])):
        block = _train_block(case, members, data.labels[document] if several_documents else "")
        extras += block.pop("extras")
        blocks.append(block)
    return {"blocks": blocks, "extras": [_other_row(e) for e in extras],
            "scaling": _train_scaling_blocks(scaling, data.labels, several_documents),
            "scaling_flag_pct": TRAIN_SCALING_FLAG_PCT,
            "references": _references(e.record for e in entries), "phases": list(TRAIN_PHASES.values()),
            "cv_threshold_pct": CV_WARN_THRESHOLD * 100, "share_gap_pct": TRAIN_SHARE_GAP_PCT}


def _train_runs(entries: list[Entry]) -> dict[tuple[int, str, int | None], list[Entry]]:
    """Records by run: document × case × world size, since a scaling sweep writes the same case at every rank
    count. A record without a world size joins its case's run when the document holds only one."""
    sizes: dict[tuple[int, str], set[int]] = {}
    for entry in entries:
        world = _int_param(_as_dict(entry.record.params), "world_size")
        if world is not None:
            sizes.setdefault((entry.document, _train_run_case(entry.record)), set()).add(world)
    runs: dict[tuple[int, str, int | None], list[Entry]] = {}
    for entry in entries:
        case = _train_run_case(entry.record)
        world = _int_param(_as_dict(entry.record.params), "world_size")
        known = sizes.get((entry.document, case), set())
        if world is None or len(known) <= 1:
            world = min(known) if known else None
        runs.setdefault((entry.document, case, world), []).append(entry)
    return runs


def _train_run_sort(key: tuple[int, str, int | None]) -> tuple[Any, ...]:
    document, case, world = key
    return (document, case, world is not None, world or 0)


def _train_is_aggregate(record: Record) -> bool:
    return _as_dict(record.params).get("aggregate") is True or str(record.case).endswith("-aggregate")


def _train_run_case(record: Record) -> str:
    """The run a record belongs to: its case, without the aggregate record's "-aggregate"."""
    case = str(record.case)
    return case.removesuffix("-aggregate") if _train_is_aggregate(record) else case


def _train_block(case: str, entries: list[Entry], source: str) -> dict[str, Any]:
    ranked = [e for e in entries if not _train_is_aggregate(e.record)]
    aggregates = [e for e in entries if _train_is_aggregate(e.record)]
    by_rank, extras, problems = _split_by_rank(ranked, TRAIN_METRICS)
    problems += [e for e in aggregates if e.record.status != "ok"]
    ranks = sorted(by_rank)
    main = by_rank[ranks[0]] if ranks else {}
    params = _train_params(entries)
    world = _int_param(params, "world_size")
    several = len(ranks) > 1
    figures = _train_figures(main)
    phases = _train_phases(main.get("phase_time", []))
    return {
        "case": case, "source": source, "hosts": _coll_hosts([e.record for e in entries]),
        "devices": ", ".join(dict.fromkeys(e.record.device for e in entries if e.record.device)),
        "run": _train_run(params, ranks, world), "main_rank": ranks[0] if ranks and several else None,
        **figures,
        "aggregate": _train_aggregate(aggregates),
        "phases": phases, "share_sum": _share_sum(phases),
        "chart": _train_chart(case, phases, source, ranks[0] if ranks and several else None),
        "per_rank": _train_rank_rows(by_rank, aggregates) if several else [],
        "problems": [_train_problem(e, several) for e in problems],
        "extras": extras,
    }


def _split_by_rank(ranked: list[Entry], metrics: Sequence[str]
                   ) -> tuple[dict[int, dict[str, list[Entry]]], list[Entry], list[Entry]]:
    """Records by rank (lowest first) and metric; ok records of a metric not in `metrics` apart (extras), and
    every failed or skipped record also listed as a problem."""
    by_rank: dict[int, dict[str, list[Entry]]] = {}
    extras, problems = [], []
    for entry in sorted(ranked, key=lambda e: e.record.rank):
        r = entry.record
        if r.status != "ok":
            problems.append(entry)
        if r.status == "ok" and r.metric not in metrics:
            extras.append(entry)
            continue
        by_rank.setdefault(r.rank, {}).setdefault(str(r.metric), []).append(entry)
    return by_rank, extras, problems


def _train_params(entries: list[Entry]) -> dict[str, Any]:
    """The run's settings: every record repeats them; the first ok record's, else any record's."""
    ordered = sorted(entries, key=lambda e: (e.record.status != "ok", _train_is_aggregate(e.record), e.record.rank))
    return _as_dict(ordered[0].record.params) if ordered else {}


def _train_run(params: dict[str, Any], ranks: list[int], world: int | None) -> dict[str, Any]:
    model = {k: v for k, v in params.items()
             if k not in TRAIN_RUN_PARAMS and not (k in ("experts", "top_k") and v in (0, None))}
    parameters = _int_param(params, "parameters")
    parallel = _text_param(params, "parallel") or "none"
    n = world if world is not None else max(len(ranks), 1)
    ep = _int_param(params, "expert_parallel")
    options = [text for flag, text in (("recompute", "full activation recomputation"),
                                       ("compile", "torch.compile (first warm-up step compiles)"))
               if params.get(flag) is True]
    batch = _int_param(params, "batch")
    seq = _int_param(params, "seq_len")
    item = _text_param(params, "item")
    per_step = f"{format_number(batch * seq)} tokens per step per rank" if batch and seq else ""
    return {
        "arch": _text_param(params, "arch") or MISSING, "preset": _text_param(params, "preset") or MISSING,
        "model": _plain(model) or MISSING,
        "parameters": f"{parameters:,}" if parameters is not None else None,
        "parameters_short": _si_count(parameters),
        "precision": _text_param(params, "precision") or MISSING,
        "parallel": parallel, "ranks": n,
        "parallel_text": (f"{parallel} × {n} ranks" if n > 1 else
                          "single process" if parallel == "none" else f"{parallel} × 1 rank")
                         + (f", experts split over {ep} ranks (all-to-all)" if ep and ep > 1 else ""),
        "options": ", ".join(options) or "none",
        "batch": batch if batch is not None else MISSING, "per_step": per_step, "item": item,
        "steps": _int_param(params, "steps"), "warmup": _int_param(params, "warmup_steps"),
        "workers": _int_param(params, "workers"),
    }


def _si_count(value: Any) -> str:
    """136960 → "137 K", 986e6 → "986 M": parameter counts as people say them."""
    if not _finite(value):
        return MISSING
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{format_number(value / factor)} {suffix}"
    return format_number(value)


def _train_fig(entries: list[Entry], scale: float = 1.0) -> dict[str, Any] | None:
    """One figure of the main rank: median with spread, ceiling and check; a failure gives its reason."""
    if not entries:
        return None
    r = entries[0].record
    ok = r.status == "ok"
    stats = _as_dict(r.stats) if ok else {}
    cv = _cv(r) if ok else None

    def scaled(v: Any) -> float | None:
        return v * scale if _finite(v) else None

    return {"ok": ok, "status": r.status, "reason": str(r.reason or "no reason recorded"),
            "value": scaled(r.value) if ok else None, "unit": str(r.unit),
            "p10": scaled(stats.get("p10")), "p90": scaled(stats.get("p90")),
            "cv_pct": cv * 100 if cv is not None else None, "noisy": _is_noisy(r),
            "n": stats.get("n") if ok else None,
            "ceiling": _ceiling(r) if ok else None, "pct": _pct_of_ceiling(r) if ok else None,
            "check": _check(r.check), "params": _as_dict(r.params), "device": r.device or "",
            "clock": str(_as_dict(r.timing).get("clock") or ""),
            "warnings": [str(w) for w in r.warnings or []]}


def _train_figures(main: dict[str, list[Entry]]) -> dict[str, Any]:
    step = _train_fig(main.get("step_time", []), MS_PER_S)
    throughput = _train_fig(main.get("throughput", []))
    tflops = _train_fig(main.get("model_tflops", []))
    mfu = _train_fig(main.get("mfu", []))
    flops = _train_fig(main.get("model_flops", []))
    loss = _train_fig(main.get("loss", []))
    memory = _train_fig(main.get("peak_memory", []))
    exposed = _train_exposed(main.get("exposed_comm", []))
    precision = _text_param((tflops or flops or step or {}).get("params", {}), "precision") or "this precision"
    device = next((f["device"] for f in (tflops, step, throughput) if f and f["device"]), "") or "this device"
    no_peak = ""
    if tflops and tflops["ok"] and tflops["ceiling"] is None:
        no_peak = next((w for w in tflops["warnings"] if "peak" in w.lower() or "ceiling" in w.lower()),
                       f"no catalog entry or declared peak for {device} at {precision}")
    return {
        "step": step, "throughput": throughput, "tflops": tflops, "no_peak": no_peak,
        "mfu": mfu, "mfu_missing": "" if mfu else (no_peak or f"no dense peak known for {device} at {precision}"),
        "flops": _train_flops(flops), "loss": _train_loss(loss), "memory": memory, "exposed": exposed,
        "memory_kind": _memory_kind(step),
        "peak": _train_peak(tflops, mfu),
    }


def _train_peak(tflops: dict[str, Any] | None, mfu: dict[str, Any] | None) -> dict[str, Any] | None:
    """The dense peak MFU divides by: the model TFLOP/s record's ceiling (the MFU record's is 100%)."""
    if tflops and tflops["ceiling"]:
        return tflops["ceiling"]
    if mfu and mfu["ceiling"]:
        return dict(mfu["ceiling"], value=None)
    return None


def _memory_kind(step: dict[str, Any] | None) -> str:
    """What peak memory means on this device: CUDA's peak allocation, or the process's resident memory."""
    clock = step["clock"] if step else ""
    if "device" in clock:
        return "CUDA peak allocated"
    return "resident memory of the process" if clock == "host" else ""


def _train_flops(fig: dict[str, Any] | None) -> dict[str, Any] | None:
    """Model FLOPs per step with the analytic count checked against FlopCounterMode."""
    if fig is None:
        return None
    p = fig["params"]
    analytic, counted = p.get("analytic"), p.get("flop_counter")
    check = fig["check"]
    ratio = check["value"] if check and _finite(check["value"]) else (
        analytic / counted if _finite(analytic) and _finite(counted) and counted else None)
    tolerance = check["tolerance"] if check and _finite(check["tolerance"]) else None
    value = fig["value"] if fig["ok"] else (analytic if _finite(analytic) else None)
    hardware = p.get("hardware_flops_per_step")
    recompute = p.get("recompute") is True and _finite(hardware)
    return {**fig, "value": value, "analytic": analytic if _finite(analytic) else None,
            "hardware": hardware if recompute else None,
            "hardware_ratio": hardware / counted if recompute and _finite(counted) and counted else None,
            "counted": counted if _finite(counted) else None, "ratio": ratio,
            "tolerance_pct": tolerance * 100 if tolerance is not None else None,
            "passed": bool(check and check["passed"]) and fig["ok"],
            "reference": check["reference"] if check else ""}


def _train_exposed(entries: list[Entry]) -> dict[str, Any] | None:
    """Communication backward could not hide: backward with gradient sync minus without, in ms and as a share
    of the step; a negative difference is below the probe's noise and said so."""
    fig = _train_fig(entries, MS_PER_S)
    if fig is None:
        return None
    p = fig["params"]
    share, synced, local = p.get("share_of_step"), p.get("backward_synced_s"), p.get("backward_local_s")
    return {**fig, "share_pct": share * 100 if _finite(share) else None,
            "synced_ms": synced * MS_PER_S if _finite(synced) else None,
            "local_ms": local * MS_PER_S if _finite(local) else None,
            "probe_steps": _int_param(p, "probe_steps"),
            "below_noise": fig["ok"] and fig["value"] is not None and fig["value"] < 0}


def _train_loss(fig: dict[str, Any] | None) -> dict[str, Any] | None:
    """First (warm-up) and last loss, flagged when training did not bring it down."""
    if fig is None:
        return None
    first, last = fig["params"].get("first_loss"), fig["params"].get("last_loss")
    first = first if _finite(first) else None
    last = last if _finite(last) else None
    return {**fig, "first": first, "last": last,
            "decreased": None if first is None or last is None else last < first}


def _train_phases(entries: list[Entry], names: dict[str, str] = TRAIN_PHASES) -> list[dict[str, Any]]:
    """Each phase's median seconds and its share of the step (recorded from means, so the shares add up),
    in the order a step runs them (the order of `names`, which also gives each phase its name on the page)."""
    order = list(names)
    rows = []
    for entry in entries:
        r = entry.record
        p = _as_dict(r.params)
        phase = _text_param(p, "phase") or str(r.case)
        share = p.get("share_of_step")
        fig = _train_fig([entry], MS_PER_S)
        rows.append({"phase": phase, "name": names.get(phase, phase), "fig": fig,
                     "share_pct": share * 100 if _finite(share) and r.status == "ok" else None})
    rows.sort(key=lambda row: (order.index(row["phase"]) if row["phase"] in order else len(order), row["phase"]))
    for index, row in enumerate(rows):
        row["slot"] = index % len(names)  # the colour of its part of the stacked bar
    return rows


def _share_sum(phases: list[dict[str, Any]]) -> dict[str, Any] | None:
    shares = [row["share_pct"] for row in phases if row["share_pct"] is not None]
    if not shares:
        return None
    total = sum(shares)
    return {"pct": total, "gap": abs(total - 100.0) > TRAIN_SHARE_GAP_PCT,
            "rest_pct": max(100.0 - total, 0.0)}


def _train_chart(case: str, phases: list[dict[str, Any]], source: str, rank: int | None) -> charts.Chart | None:
    bars = [charts.Bar(label=row["name"], value=row["share_pct"],
                       note=f"{format_number(row['fig']['value'])} ms" if row["fig"]["ok"] else "")
            for row in phases if row["share_pct"] is not None]
    if not bars:
        return None
    name = f"{case}" + (f", rank {rank}" if rank is not None else "") + (f", {source}" if source else "")
    alt = (f"Bar chart of where a training step of {case} goes: each phase's share of the "
           f"step ({', '.join(f'{b.label} {b.value:.0f}%' for b in bars)}). The table beside it holds the "
           "same figures.")
    return charts.bar_chart([charts.BarGroup(name=name, bars=bars)], title="Step-time breakdown (% of the step)",
                            xlabel="% of the step time", alt=alt)


def _train_aggregate(entries: list[Entry]) -> dict[str, Any] | None:
    """All ranks' items per second over the slowest rank's step time, with every rank's own figure."""
    if not entries:
        return None
    entry = sorted(entries, key=lambda e: e.record.rank)[0]
    r = entry.record
    p = _as_dict(r.params)
    fig = _train_fig([entry])
    per_rank = [v for v in p.get("per_rank") or [] if _finite(v)] if isinstance(p.get("per_rank"), list) else []
    slowest = _int_param(p, "slowest_rank")
    if (slowest is None or not 0 <= slowest < len(per_rank)) and per_rank:
        slowest = min(range(len(per_rank)), key=per_rank.__getitem__)
    ranks = _int_param(p, "ranks") or (len(per_rank) or None)
    return {**fig, "ranks": ranks, "slowest_rank": slowest if fig["ok"] else None,
            "per_rank": ", ".join(f"rank {i}: {format_number(v)}" for i, v in enumerate(per_rank)) if fig["ok"] else "",
            "spread_pct": (100.0 * (max(per_rank) - min(per_rank)) / max(per_rank)
                           if per_rank and max(per_rank) > 0 else None),
            "scaling_pct": (100.0 * r.value / (ranks * statistics.median(per_rank))
                            if fig["ok"] and per_rank and ranks and _finite(r.value) and statistics.median(per_rank) > 0
                            else None)}


def _train_rank_rows(by_rank: dict[int, dict[str, list[Entry]]], aggregates: list[Entry]) -> list[dict[str, Any]]:
    """Every rank's step time, throughput, MFU, memory and last loss; the slowest rank named."""
    rows = []
    for rank, metrics in sorted(by_rank.items()):
        first = next(iter(metrics.values()))[0]
        loss = _train_loss(_train_fig(metrics.get("loss", [])))
        rows.append({"rank": rank, "host": first.record.host or "", "device": first.record.device or "",
                     "step": _train_fig(metrics.get("step_time", []), MS_PER_S),
                     "throughput": _train_fig(metrics.get("throughput", [])),
                     "mfu": _train_fig(metrics.get("mfu", [])),
                     "memory": _train_fig(metrics.get("peak_memory", [])),
                     "exposed": _train_exposed(metrics.get("exposed_comm", [])),
                     "loss": loss, "slowest": False, "behind_pct": None})
    slowest = None
    if aggregates:
        p = _as_dict(sorted(aggregates, key=lambda e: e.record.rank)[0].record.params)
        slowest = _int_param(p, "slowest_rank")
    timed = [row for row in rows if row["step"] and row["step"]["ok"]]
    if slowest is None and len(timed) > 1:
        slowest = max(timed, key=lambda row: row["step"]["value"])["rank"]
    for row in rows:
        row["slowest"] = row["rank"] == slowest and len(rows) > 1
    if timed:
        fastest = min(row["step"]["value"] for row in timed)
        for row in timed:
            row["behind_pct"] = 100.0 * (row["step"]["value"] - fastest) / fastest if fastest > 0 else None
    return rows


# Weak scaling: `ai-ready train --scaling 1,2,4` writes one "<arch>-<preset>-scaling" record per rank count.

TRAIN_SCALING_METRIC = "scaling_efficiency"
TRAIN_SCALING_SUFFIX = "-scaling"
#: Below this efficiency a rank count is flagged (as `ai-ready train --scaling` does).
TRAIN_SCALING_FLAG_PCT = 80.0


def _train_is_scaling(record: Record) -> bool:
    return record.metric == TRAIN_SCALING_METRIC or str(record.case).endswith(TRAIN_SCALING_SUFFIX)


def _train_scaling_blocks(entries: list[Entry], labels: list[str], several_documents: bool) -> list[dict[str, Any]]:
    """One block per document × model × parallelism: a row per rank count, the efficiency and the total
    throughput against the rank count."""
    groups: dict[tuple[int, str, str], list[Entry]] = {}
    for entry in entries:
        r = entry.record
        p = _as_dict(r.params)
        arch, preset = _text_param(p, "arch"), _text_param(p, "preset")
        model = f"{arch}-{preset}" if arch and preset else str(r.case).removesuffix(TRAIN_SCALING_SUFFIX)
        groups.setdefault((entry.document, model, _text_param(p, "parallel") or "none"), []).append(entry)
    blocks = []
    for (document, model, parallel), members in sorted(groups.items()):
        source = labels[document] if several_documents else ""
        rows = _train_scaling_rows(members)
        item = next((row["item"] for row in rows if row["item"]), "")
        unit = f"{item}/s" if item else "items/s"
        blocks.append({"model": model, "parallel": parallel, "source": source, "unit": unit, "rows": rows,
                       "cases": ", ".join(dict.fromkeys(str(e.record.case) for e in members)),
                       "low": [row["ranks"] for row in rows if row["low"]],
                       "charts": _train_scaling_charts(model, parallel, source, unit, rows)})
    return blocks


def _train_scaling_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        r = entry.record
        p = _as_dict(r.params)
        ranks = _int_param(p, "ranks") or _int_param(p, "world_size")
        ok = r.status == "ok"
        total = p.get("throughput") if ok and _finite(p.get("throughput")) else None
        one = p.get("throughput_1") if _finite(p.get("throughput_1")) else None
        efficiency = r.value if ok and _finite(r.value) else None
        if ok and efficiency is None and total is not None and one and ranks:
            efficiency = 100.0 * total / (ranks * one)
        rows.append({"ranks": ranks, "ok": ok, "status": r.status,
                     "reason": str(r.reason or "no reason recorded") if not ok else "",
                     "total": total, "per_rank": total / ranks if total is not None and ranks else None,
                     "one": one, "efficiency": efficiency,
                     "low": efficiency is not None and efficiency < TRAIN_SCALING_FLAG_PCT,
                     "item": _text_param(p, "item"), "where": entry.where,
                     "warnings": [str(w) for w in r.warnings or []]})
    rows.sort(key=lambda row: (row["ranks"] is None, row["ranks"] or 0))
    return rows


def _train_scaling_charts(model: str, parallel: str, source: str, unit: str,
                          rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Efficiency (%) against ranks with the ideal 100% dashed, and total throughput against ranks beside the
    ideal (k × the 1-rank throughput); rank counts on a log2 axis when they are all powers of two."""
    ranked = [row for row in rows if row["ranks"]]
    eff = [(float(row["ranks"]), float(row["efficiency"])) for row in ranked if row["efficiency"] is not None]
    tput = [(float(row["ranks"]), float(row["total"])) for row in ranked if row["total"] is not None]
    if not eff and not tput:
        return []
    counts = sorted({row["ranks"] for row in ranked})
    log2 = len(counts) > 1 and all(k > 0 and k & (k - 1) == 0 for k in counts)
    name = f"{model}, {parallel}" + (f", {source}" if source else "")
    axis = dict(x_log2=log2, x_tick_format=(lambda v: f"{v:g}") if log2 else None, y_log=False)
    out = []
    if eff:
        alt = (f"Line chart of the weak-scaling efficiency of {name} against the number of ranks "
               f"({', '.join(f'{x:g} ranks {y:.0f}%' for x, y in eff)}); a dashed line marks the ideal 100%. "
               "The table beside it holds the same figures.")
        chart = charts.line_chart([charts.Line(label=name, points=eff, color_key=model)],
                                  title="Weak-scaling efficiency (%)", xlabel="ranks",
                                  ylabel="efficiency %", alt=alt, ceilings=[(100.0, "ideal")], **axis)
        out.append({"chart": chart, "caption": "Efficiency against the number of ranks; the dashed line is the "
                                               "ideal 100%."})
    if tput:
        lines = [charts.Line(label=f"measured, {name}", points=tput, color_key="measured")]
        one = next((row["one"] for row in ranked if row["one"]), None)
        if one:
            lines.append(charts.Line(label="ideal: ranks × 1-rank throughput",
                                     points=[(float(k), k * one) for k in counts], color_key="ideal", dashed=True))
        alt = (f"Line chart of the total throughput of {name} in {unit} against the number of ranks "
               f"({', '.join(f'{x:g} ranks {format_number(y)}' for x, y in tput)})"
               + ("; a dashed line shows ideal scaling" if one else "") + ". The table beside it holds the same figures.")
        chart = charts.line_chart(lines, title=f"Total throughput ({unit})", xlabel="ranks",
                                  ylabel=f"total {unit}", alt=alt, **axis)
        out.append({"chart": chart, "caption": "Total throughput against the number of ranks"
                                               + ("; dashed: ideal scaling (ranks × the 1-rank throughput)."
                                                  if one else ".")})
    return out


def _train_problem(entry: Entry, several: bool) -> dict[str, Any]:
    r = entry.record
    p = _as_dict(r.params)
    what = str(r.metric) + (f" ({p['phase']})" if p.get("phase") else "")
    return {"metric": what, "status": r.status, "reason": str(r.reason or "no reason recorded"),
            "where": entry.where if several else "", "case": str(r.case)}
