"""Your job, profiled: a user's own training job as ai-ready observed it, laid
out like a training run (its helpers come from the train section) plus what
the job uses and how it was stopped.
"""

from __future__ import annotations

import shlex
import statistics
from typing import Any

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import ResultDocument
from ai_ready.report import charts
from ai_ready.report.sections.collectives import _op_sort
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _coll_hosts, _finite, _int_param, _other_row, _plain, _references,
    _text_param, format_bytes, format_number,
)
from ai_ready.report.sections.train import (
    MS_PER_S, TRAIN_SHARE_GAP_PCT, _share_sum, _si_count, _split_by_rank, _train_aggregate, _train_chart, _train_fig,
    _train_figures, _train_is_aggregate, _train_phases, _train_problem, _train_rank_rows, _train_run_case,
)


PROFILE_BENCHMARK = "profile"
#: meta.kind of a document `ai-ready profile` wrote: such a document shows its job even when nothing was timed.
PROFILE_KIND = "profile"
#: The parts of a profiled step, in the order they run, with the name the page gives each.
PROFILE_PHASES = {"data": "data wait", "forward": "forward", "backward": "backward", "optimizer": "optimizer step",
                  "checkpoint": "checkpoint I/O", "comm": "communication (outside backward)",
                  "sync": "host–device sync", "other": "other (the rest of the step)"}
#: The metrics a job's block shows; an ok record of another metric is listed under "Other profile records".
PROFILE_METRICS = ("step_time", "phase_time", "throughput", "model_flops", "model_tflops", "mfu", "peak_memory",
                   "exposed_comm", "checkpoint_write")
#: Each status a profile may end with: how loudly it is flagged (ok, warn, bad) and what it means for the figures.
PROFILE_STATUSES: dict[str, tuple[str, str]] = {
    "complete": ("ok", "every rank measured the requested warm-up and timed steps"),
    "timeout": ("warn", "the job was stopped at the time limit; the figures cover only the steps measured before"),
    "incomplete": ("warn", "the job ended before every requested step was measured; the figures cover the steps "
                           "it took"),
    "no_steps": ("bad", "no training step was found, so nothing could be timed"),
    "stopped": ("warn", "ai-ready was stopped (a signal: Ctrl-C, kill, a CI or batch time limit) and stopped the job "
                        "with it; the figures cover only the steps measured before"),
    "failed": ("bad", "the job failed before its profile was complete; any figures are what was measured before "
                      "the failure"),
}
#: Who ended the job (meta.profile.stopped_by), in words; a job that ended by itself has none.
PROFILE_STOPPED_BY = {"profile complete": "ai-ready stopped it once the profile was complete",
                      "timeout": "ai-ready stopped it at the time limit (timeout_s)",
                      "SIGTERM": "ai-ready got SIGTERM (kill, a CI timeout, a batch time limit) and stopped the job "
                                 "with it",
                      "SIGINT": "ai-ready got SIGINT (Ctrl-C) and stopped the job with it",
                      "SIGHUP": "ai-ready got SIGHUP (its terminal closed) and stopped the job with it"}
#: How a rank may have found its steps (step_source); "cycle" is the fallback the page flags.
PROFILE_STEP_SOURCES = ("optimizer", "explicit", "cycle")
PROFILE_FALLBACK_SOURCE = "cycle"
#: At most this many ranks (the lowest) get a line in the step-time chart; the per-rank table lists them all.
PROFILE_CHART_MAX_RANKS = 8
#: At most this many of the job's marks are listed; the rest are counted.
PROFILE_MAX_MARKS = 50
#: The target model's sizes, in the order and with the names the page gives them.
TARGET_MODEL_SIZES = {"layers": "layers", "hidden": "hidden size", "heads": "attention heads",
                      "kv_heads": "key/value heads", "ffn_hidden": "feed-forward hidden size",
                      "seq_len": "sequence length", "vocab": "vocabulary", "experts": "experts",
                      "top_k": "experts per token (top-k)"}


def build_profile(data: ReportData) -> dict[str, Any] | None:
    """One block per profiled job (a document of `ai-ready profile`): whether the profile is complete and, if not,
    why (exit code, who stopped the job, its stderr tail); what ran; the lowest rank's step time, throughput, model
    FLOPs, TFLOP/s and MFU beside the peak and its source, memory, exposed communication and checkpoint writes;
    where a step's time goes; every timed step; every rank; what the job uses; and the target it is meant for.
    A failed profile without records still gets its block: the status is what the reader needs most."""
    entries = data.entries_for(PROFILE_BENCHMARK)
    documents = sorted({e.document for e in entries}
                       | {i for i, doc in enumerate(data.documents) if _is_profile_document(doc)})
    if not documents:
        return None
    several = len(documents) > 1
    blocks, extras = [], []
    for index in documents:
        block = _profile_block(data.documents[index], [e for e in entries if e.document == index],
                               data.labels[index] if several else "")
        extras += block.pop("extras")
        blocks.append(block)
    return {"blocks": blocks, "extras": [_other_row(e) for e in extras],
            "references": _references(e.record for e in entries),
            "cv_threshold_pct": CV_WARN_THRESHOLD * 100, "share_gap_pct": TRAIN_SHARE_GAP_PCT}


def _is_profile_document(doc: ResultDocument) -> bool:
    return _as_dict(doc.meta).get("kind") == PROFILE_KIND


def _profile_block(doc: ResultDocument, entries: list[Entry], source: str) -> dict[str, Any]:
    meta = _as_dict(_as_dict(doc.meta).get("profile"))
    job = _profile_job(meta)
    case, mine, extras = _profile_case(job["name"], entries)
    aggregates = [e for e in mine if _train_is_aggregate(e.record)]
    by_rank, others, problems = _split_by_rank([e for e in mine if not _train_is_aggregate(e.record)],
                                               PROFILE_METRICS)
    problems += [e for e in aggregates if e.record.status != "ok"]
    rank_meta = _profile_rank_meta(meta)
    ranks = sorted(by_rank)
    main = by_rank[ranks[0]] if ranks else {}
    main_meta = rank_meta.get(ranks[0]) if ranks and ranks[0] in rank_meta else next(iter(rank_meta.values()), {})
    several = len(set(ranks) | set(rank_meta)) > 1
    main_rank = ranks[0] if ranks and several else None
    figures = _profile_figures(main)
    phases = _train_phases(main.get("phase_time", []), PROFILE_PHASES)
    records = [e.record for e in mine]
    return {
        "case": case, "source": source, "status": _profile_status(meta), "job": job,
        "hosts": _coll_hosts(records) or ", ".join(dict.fromkeys(
            _text_param(r, "host") for r in rank_meta.values() if _text_param(r, "host"))),
        "devices": ", ".join(dict.fromkeys([r.device for r in records if r.device] + [
            _text_param(r, "device_name") for r in rank_meta.values() if _text_param(r, "device_name")])),
        "main_rank": main_rank, "timed": bool(main), **figures,
        "aggregate": _profile_aggregate(aggregates),
        "phases": phases, "share_sum": _share_sum(phases),
        "chart": _train_chart(case, phases, source, main_rank),
        "steps_chart": _profile_steps_chart(case, by_rank, source),
        "per_rank": _profile_rank_rows(by_rank, aggregates, rank_meta) if several else [],
        "uses": _profile_uses(main_meta, main, figures["precision"]),
        "target": _profile_target(meta.get("target"), meta.get("extrapolation")),
        "problems": [_train_problem(e, several) for e in problems],
        "extras": extras + others,
    }


def _profile_case(name: str, entries: list[Entry]) -> tuple[str, list[Entry], list[Entry]]:
    """The job's records (case = the job's name, its aggregate "<name>-aggregate") and any others in the document,
    which are listed rather than dropped. Without a recorded name, the first case is the job's."""
    cases = list(dict.fromkeys(_train_run_case(e.record) for e in entries))
    case = name if name in cases or not cases else cases[0]
    mine = [e for e in entries if _train_run_case(e.record) == case]
    return case or "unnamed job", mine, [e for e in entries if _train_run_case(e.record) != case]


def _profile_rank_meta(meta: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """What each rank told about itself (meta.profile.ranks), by rank, lowest first."""
    ranks = meta.get("ranks")
    out: dict[int, dict[str, Any]] = {}
    for index, rank in enumerate(ranks if isinstance(ranks, list) else []):
        if isinstance(rank, dict):
            number = _int_param(rank, "rank")
            out.setdefault(number if number is not None else index, rank)
    return dict(sorted(out.items()))


def _profile_status(meta: dict[str, Any]) -> dict[str, Any]:
    """The profile's verdict: a complete profile in one line, anything else flagged with why, the exit code,
    who stopped the job and the end of its stderr."""
    if not meta:
        return {"status": "not recorded", "level": "warn", "complete": False, "no_steps": False,
                "meaning": "the document holds profile records but no description of the job (meta.profile), so "
                           "whether the profile is complete is unknown",
                "reason": "", "exit_code": None, "stopped_by": "", "stderr_tail": ""}
    status = _text_param(meta, "status") or "not recorded"
    level, meaning = PROFILE_STATUSES.get(status, ("warn", "a status this report does not know; treat the figures "
                                                           "with care"))
    stopped = _text_param(meta, "stopped_by")
    return {"status": status, "level": level, "complete": status == "complete", "no_steps": status == "no_steps",
            "meaning": meaning, "reason": _text_param(meta, "reason"), "exit_code": _int_param(meta, "exit_code"),
            "stopped_by": PROFILE_STOPPED_BY.get(stopped, f"stopped by {stopped}") if stopped else
                          "the job ended by itself",
            "stderr_tail": str(meta.get("stderr_tail") or "")}


def _argv_text(argv: Any) -> str:
    if isinstance(argv, (list, tuple)):
        return shlex.join(str(a) for a in argv)
    return "" if argv is None else str(argv)


def _profile_job(meta: dict[str, Any]) -> dict[str, Any]:
    """What ran, how it was launched, the environment it was given and how much of it was measured."""
    job, settings = _as_dict(meta.get("job")), _as_dict(meta.get("settings"))
    launcher = _text_param(job, "launcher") or "none"
    nproc = _int_param(job, "nproc")
    command, argv = _argv_text(job.get("command")), _argv_text(job.get("argv"))
    launch = ("one process, no launcher" if launcher == "none" and (nproc or 1) == 1 else
              f"{launcher} × {nproc if nproc is not None else '?'} process{'es' if nproc != 1 else ''}")
    timeout, duration = settings.get("timeout_s"), meta.get("duration_s")
    return {"recorded": bool(job), "name": _text_param(job, "name"), "command": command,
            "argv": argv if argv != command else "", "directory": _text_param(job, "directory"),
            "spec": _text_param(job, "source"), "launch": launch,
            "env": [(str(k), _plain(v)) for k, v in _as_dict(job.get("env")).items()],
            "warmup": _int_param(settings, "warmup_steps"), "steps": _int_param(settings, "steps"),
            "timeout_s": timeout if _finite(timeout) else None, "trace": settings.get("trace") is True,
            "duration_s": duration if _finite(duration) else None}


def _profile_figures(main: dict[str, list[Entry]]) -> dict[str, Any]:
    """The training section's figures of the main rank, plus what a profile adds: where the FLOPs come from, what
    peak memory measures, how exposed communication is defined and the checkpoint writes."""
    figures = _train_figures(main)
    step, flops, memory = figures["step"], figures["flops"], figures["memory"]
    figures["precision"] = _text_param(step["params"], "precision") if step else ""
    no_flops = ""
    if flops is not None:
        flops["source"] = _text_param(flops["params"], "source")
        if not flops["ok"]:
            no_flops = "no model FLOPs per step (see above)"
    figures["tflops_missing"] = no_flops
    if no_flops and figures["mfu"] is None:
        figures["mfu_missing"] = no_flops
    figures["memory_kind"] = (_text_param(memory["params"], "kind") if memory else "") or figures["memory_kind"]
    if figures["throughput"]:
        p = figures["throughput"]["params"]
        per_step = p.get("per_step")
        figures["throughput"]["per_step"] = (f"{format_number(per_step)} {_text_param(p, 'item') or 'items'} per step"
                                             if _finite(per_step) else "")
    if figures["exposed"]:
        figures["exposed"]["definition"] = _text_param(figures["exposed"]["params"], "definition")
    figures["checkpoint"] = _profile_checkpoint(main.get("checkpoint_write", []))
    return figures


def _profile_checkpoint(entries: list[Entry]) -> dict[str, Any] | None:
    fig = _train_fig(entries)
    if fig is None:
        return None
    p = fig["params"]
    seconds = p.get("seconds")
    return {**fig, "saves": _int_param(p, "saves"), "bytes": format_bytes(p.get("bytes")),
            "ms": seconds * MS_PER_S if _finite(seconds) else None}


def _profile_aggregate(entries: list[Entry]) -> dict[str, Any] | None:
    """The training section's aggregate, with the spread and per-rank step times a profile stores instead of
    every rank's throughput."""
    aggregate = _train_aggregate(entries)
    if aggregate is None:
        return None
    p = aggregate["params"]
    if aggregate["spread_pct"] is None and _finite(p.get("rank_spread_pct")):
        aggregate["spread_pct"] = float(p["rank_spread_pct"])
    times = sorted(((str(rank), seconds) for rank, seconds in _as_dict(p.get("step_time_per_rank")).items()
                    if _finite(seconds)), key=lambda item: (not item[0].isdigit(), int(item[0]) if item[0].isdigit()
                                                            else 0, item[0]))
    aggregate["step_times"] = (", ".join(f"rank {rank}: {format_number(s * MS_PER_S)} ms" for rank, s in times)
                               if aggregate["ok"] else "")
    return aggregate


def _profile_rank_rows(by_rank: dict[int, dict[str, list[Entry]]], aggregates: list[Entry],
                       rank_meta: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The training section's per-rank rows, with each rank's own status; a rank that timed no step still has
    its row."""
    rows = _train_rank_rows(by_rank, aggregates)
    for rank in rank_meta.keys() - {row["rank"] for row in rows}:
        rows.append({"rank": rank, "host": "", "device": "", "step": None, "throughput": None, "mfu": None,
                     "memory": None, "exposed": None, "loss": None, "slowest": False, "behind_pct": None})
    for row in rows:
        meta = rank_meta.get(row["rank"], {})
        row["host"] = row["host"] or _text_param(meta, "host")
        row["device"] = row["device"] or _text_param(meta, "device_name")
        row["status"] = _text_param(meta, "status")
        row["timed_steps"] = _int_param(meta, "timed_steps")
    return sorted(rows, key=lambda row: row["rank"])


def _profile_steps_chart(case: str, by_rank: dict[int, dict[str, list[Entry]]], source: str) -> dict[str, Any] | None:
    """Every timed step's time (the step_time record's samples), one line per rank, the main rank's median
    dashed: whether the steps are steady, drift or spike."""
    series = []
    for rank, metrics in sorted(by_rank.items()):
        record = next((e.record for e in metrics.get("step_time", []) if e.record.status == "ok"), None)
        raw = record.samples if record is not None and isinstance(record.samples, list) else []
        samples = [float(s) * MS_PER_S for s in raw if _finite(s)]
        if samples:
            series.append((rank, samples))
    if not series:
        return None
    shown = series[:PROFILE_CHART_MAX_RANKS]
    several = len(series) > 1
    lines = [charts.Line(label=f"rank {rank}" if several else "each timed step",
                         points=[(float(i), s) for i, s in enumerate(samples, 1)], color_key=f"rank {rank}")
             for rank, samples in shown]
    rank, samples = series[0]
    median = statistics.median(samples)
    lines.append(charts.Line(label=f"median{f' of rank {rank}' if several else ''}: {format_number(median)} ms",
                             points=[(1.0, median), (float(len(samples)), median)], color_key="median", dashed=True))
    name = case + (f", {source}" if source else "")
    alt = (f"Line chart of the time of each timed step of {name} in milliseconds: {len(samples)} steps"
           + (f" of rank {rank}" if several else "")
           + f", median {format_number(median)} ms, from {format_number(min(samples))} to "
             f"{format_number(max(samples))} ms"
           + (f"; one line per rank for the lowest {len(shown)} of {len(series)} ranks" if several else "")
           + ". Warm-up steps are not shown; the summary table holds the same statistics.")
    chart = charts.line_chart(lines, title="Time of each timed step (ms)", xlabel="timed step",
                              ylabel="step time ms", alt=alt, y_log=False)
    return {"chart": chart, "steps": len(samples), "ranks": len(shown), "left_out": len(series) - len(shown)}


def _yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "not recorded"


def _profile_uses(rank: dict[str, Any], main: dict[str, list[Entry]], precision: str) -> dict[str, Any]:
    """What the job is and does, as its main rank saw it: features, how steps were found, the model, the
    collectives it called, its checkpoint I/O, its marks and the trace file."""
    step = next((e.record for e in main.get("step_time", [])), None)
    source = _text_param(rank, "step_source") or (_text_param(_as_dict(step.params), "step_source") if step else "")
    io = _as_dict(rank.get("checkpoint_io"))
    return {
        "recorded": bool(rank), "rank": _int_param(rank, "rank"),
        "features": _profile_features(_as_dict(rank.get("features")), io, precision),
        "step_source": source, "fallback": source == PROFILE_FALLBACK_SOURCE,
        "known_source": source in PROFILE_STEP_SOURCES,
        "counts": [(label, _int_param(rank, key)) for key, label in (
            ("optimizer_steps", "optimizer steps"), ("forward_calls", "forward passes"),
            ("backward_calls", "backward passes"), ("steps_recorded", "steps recorded"),
            ("timed_steps", "timed steps")) if _int_param(rank, key) is not None],
        "model": _profile_model(_as_dict(rank.get("model"))),
        "transformer": _profile_transformer(_as_dict(rank.get("model")).get("transformer"), rank.get("seq_len")),
        "collectives": _profile_collectives(rank.get("collectives")),
        "checkpoint_io": _profile_checkpoint_io(io),
        **_profile_marks(rank.get("marks")),
        "trace_file": _text_param(rank, "trace_file"),
    }


def _profile_features(features: dict[str, Any], io: dict[str, Any], precision: str) -> list[dict[str, Any]]:
    """The training features the hooks saw, each as a line a reader can act on."""
    autocast = features.get("autocast")
    casts = []
    for entry in autocast if isinstance(autocast, list) else []:
        device, sep, dtype = str(entry).partition(":")
        casts.append(f"{dtype} on {device}" if sep else str(entry))
    mixed = f"autocast to {', '.join(casts)}" if casts else "no autocast"
    if precision:
        mixed += f"; MFU uses the {precision} peak"
    ddp, fsdp = features.get("ddp") is True, features.get("fsdp") is True
    parallel = " and ".join(name for name, used in (("DDP", ddp), ("FSDP", fsdp)) if used) or \
        "none seen (no DistributedDataParallel or FSDP wrapper)"
    accumulation = _int_param(features, "grad_accumulation")
    compiled = features.get("compile") is True
    saves = _as_dict(io.get("save"))
    checkpointing = _yes_no(features.get("checkpointing"))
    if features.get("checkpointing") is True and _int_param(saves, "count"):
        checkpointing += f": torch.save called {saves['count']} times, {format_bytes(saves.get('bytes'))} in all"
    return [
        {"name": "Mixed precision", "value": mixed},
        {"name": "Loss scaling (GradScaler)", "value": _yes_no(features.get("grad_scaler"))},
        {"name": "torch.compile", "value": _yes_no(features.get("compile")) + (
            ": FlopCounterMode cannot see inside compiled graphs" if compiled else "")},
        {"name": "Data parallelism", "value": parallel},
        {"name": "Activation checkpointing", "value": _yes_no(features.get("activation_checkpointing"))},
        {"name": "Gradient accumulation", "value": (
            "not recorded" if accumulation is None else
            "none: one backward pass per optimizer step" if accumulation <= 1 else
            f"{accumulation} backward passes per optimizer step")},
        {"name": "DataLoader", "value": _profile_dataloader(features.get("dataloader"))},
        {"name": "Checkpointing", "value": checkpointing},
    ]


def _profile_dataloader(value: Any) -> str:
    loader = _as_dict(value)
    if not loader:
        return "not seen: the batches do not come from a torch.utils.data.DataLoader"
    workers, batch = _int_param(loader, "workers"), _int_param(loader, "batch_size")
    parts = [f"{workers if workers is not None else '?'} workers"
             + (" (batches are loaded in the training process)" if workers == 0 else ""),
             f"pinned memory {_yes_no(loader.get('pin_memory'))}"]
    if batch is not None:
        parts.append(f"batch size {batch}")
    if loader.get("persistent_workers") is True:
        parts.append("persistent workers")
    return ", ".join(parts)


def _profile_model(model: dict[str, Any]) -> dict[str, Any] | None:
    if not model:
        return None
    parameters, trainable = _int_param(model, "parameters"), _int_param(model, "trainable")
    matmul = _int_param(model, "matmul_parameters")
    dtypes = _as_dict(model.get("dtypes"))
    return {"class": _text_param(model, "class") or MISSING, "wrapper": _text_param(model, "wrapper"),
            "parameters_short": _si_count(parameters),
            "parameters": f"{parameters:,}" if parameters is not None else None,
            "trainable": f"{trainable:,}" if trainable is not None else None,
            "matmul": f"{matmul:,}" if matmul is not None else None,
            "dtypes": ", ".join(f"{name} ({_plain(count)} tensors)" for name, count in dtypes.items())}


def _profile_transformer(shape: Any, seq_len: Any) -> list[tuple[str, str]]:
    """The transformer shape the hooks recognised (empty when none was), with the sequence length seen."""
    shape = _as_dict(shape)
    if not shape:
        return []
    rows = [(label, shape.get(key)) for key, label in (("layers", "layers"), ("hidden", "hidden size"),
                                                       ("heads", "attention heads"), ("vocab", "vocabulary"),
                                                       ("block", "block"))]
    rows.append(("sequence length", seq_len))
    return [(label, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _plain(value))
            for label, value in rows if value not in (None, "")]


def _profile_collectives(value: Any) -> list[dict[str, Any]]:
    rows = []
    for op, counts in _as_dict(value).items():
        c = _as_dict(counts)
        seconds = c.get("seconds")
        rows.append({"op": str(op), "count": _int_param(c, "count"), "bytes": format_bytes(c.get("bytes")),
                     "ms": seconds * MS_PER_S if _finite(seconds) else None})
    return sorted(rows, key=lambda row: _op_sort(row["op"]))


def _profile_checkpoint_io(io: dict[str, Any]) -> list[dict[str, Any]]:
    """torch.save and torch.load during the profile, when the job called them."""
    rows = []
    for kind, name in (("save", "torch.save"), ("load", "torch.load")):
        c = _as_dict(io.get(kind))
        count, seconds, size = _int_param(c, "count"), c.get("seconds"), c.get("bytes")
        if count:
            rows.append({"kind": name, "count": count, "bytes": format_bytes(size),
                         "ms": seconds * MS_PER_S if _finite(seconds) else None,
                         "gbs": size / seconds / 1e9 if _finite(size) and _finite(seconds) and seconds > 0 else None})
    return rows


def _profile_marks(value: Any) -> dict[str, Any]:
    marks = [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
    rows = [{"name": str(m.get("name") if m.get("name") is not None else ""), "step": _int_param(m, "step"),
             "t_s": m.get("t_s") if _finite(m.get("t_s")) else None} for m in marks[:PROFILE_MAX_MARKS]]
    return {"marks": rows, "marks_left_out": max(len(marks) - PROFILE_MAX_MARKS, 0)}


def _profile_target(value: Any, extrapolation: Any = None) -> dict[str, Any] | None:
    """What the user means to train at scale: the model, the token budget and the systems to extrapolate to, and
    whether the extrapolation ran (the next section shows it)."""
    target = _as_dict(value)
    if not target:
        return None
    model = _as_dict(target.get("model"))
    sizes = [(label, f"{model[key]:,}" if isinstance(model[key], int) and not isinstance(model[key], bool)
              else _plain(model[key])) for key, label in TARGET_MODEL_SIZES.items() if model.get(key) is not None]
    sizes += [(str(k), _plain(v)) for k, v in model.items()
              if k not in TARGET_MODEL_SIZES and k != "kind" and v is not None]
    tokens, systems = target.get("tokens"), target.get("systems")
    return {"kind": _text_param(model, "kind"), "sizes": sizes,
            "tokens": f"{tokens:,.0f}" if _finite(tokens) else None, "tokens_short": _si_count(tokens),
            "systems": [str(s) for s in systems] if isinstance(systems, list) else [],
            "extrapolated": extrapolation is not None}
