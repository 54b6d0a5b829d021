"""At scale: a profiled job extrapolated to its target systems by the performance model.

`ai-ready profile` stores the extrapolation in the profile document (meta.profile.extrapolation, written by
:func:`ai_ready.model.from_profile.extrapolate_profile`); this section lays it out: what was extrapolated (the
workload, its source, batch, token budget, precision, calibration), a comparison of the systems, then per system
the prediction on the whole system (layout, step time with its band, throughput, MFU, memory, time, energy and cost
to train, goodput and what failures cost), where a step's time goes, the scaling curve from one node to the whole
system and the model's assumptions. Every name, note and error is user data and reaches the page escaped.
"""

from __future__ import annotations

from typing import Any

from ai_ready.report import charts
from ai_ready.report.sections.common import MISSING, ReportData, _as_dict, _finite, _int_param, _text_param, \
    format_number
from ai_ready.report.sections.train import _si_count

#: Where `ai-ready profile` stores the extrapolation, under meta.profile.
EXTRAPOLATION_KEY = "extrapolation"
#: The step's components the model reports (seconds per step), in step order, with the name the page gives each.
BREAKDOWN_NAMES = {
    "compute": "compute (forward, backward)", "forward": "forward", "backward": "backward",
    "recompute": "activation recomputation", "grad_accumulate": "gradient accumulation (micro-batches)",
    "tp_comm": "tensor-parallel communication", "cp_comm": "context-parallel communication",
    "ep_comm": "expert-parallel all-to-all", "pp_p2p": "pipeline send/receive", "pp_bubble": "pipeline bubble",
    "dp_comm": "data-parallel communication (not hidden)",
    "overlap_contention": "compute slowed by hidden communication", "optimizer": "optimizer step",
}
#: The target model's sizes, in the order and with the names the page gives them.
MODEL_SIZES = {"layers": "layers", "hidden": "hidden size", "heads": "attention heads", "kv_heads": "key/value heads",
               "ffn_hidden": "feed-forward hidden size", "seq_len": "sequence length", "vocab": "vocabulary",
               "experts": "experts", "top_k": "experts per token"}
#: The CLI advice a search failure ends with; the page has no such flags to fix, so it is cut.
SEARCH_ADVICE = "; fix fewer of"
SECONDS_PER_MINUTE = 60.0
SECONDS_PER_HOUR = 3600.0


def build_extrapolation(data: ReportData) -> dict[str, Any] | None:
    """One block per profile document that stores an extrapolation; None when none does."""
    found = []
    for index, doc in enumerate(data.documents):
        profile = _as_dict(_as_dict(doc.meta).get("profile"))
        if EXTRAPOLATION_KEY in profile and profile[EXTRAPOLATION_KEY] is not None:
            found.append((index, profile))
    standalone = _standalone(data)
    if not found and not standalone:
        return None
    several = len(found) + len(standalone) > 1
    blocks = [_block(profile, data.labels[index] if several else "") for index, profile in found]
    blocks += [_block(profile, ", ".join(labels) if several else "") for profile, labels in standalone]
    return {"blocks": blocks}


def _standalone(data: ReportData) -> list[tuple[dict[str, Any], list[str]]]:
    """Extrapolations from `ai-ready extrapolate -o`, one block per workload with every system it was run for.

    Each is reshaped like a profile's stored extrapolation, so one layout serves both.
    """
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for doc, label in zip(data.documents, data.labels):
        meta = _as_dict(doc.meta)
        ext = _as_dict(meta.get("extrapolation"))
        if meta.get("kind") != "extrapolation" or not ext:
            continue
        spec = _as_dict(ext.get("workload_spec")) or {"name": _text_param(ext, "workload")}
        name = _text_param(spec, "name") or _text_param(ext, "workload") or "unnamed workload"
        key = repr(sorted(spec.items()))
        if key not in groups:
            stored = {"workload": spec, "source": f"ai-ready extrapolate {_text_param(ext, 'workload_file')}".strip(),
                      "calibration": _as_dict(ext.get("calibration")), "notes": [], "systems": []}
            groups[key] = ({"job": {"name": name}, EXTRAPOLATION_KEY: stored}, [])
        profile, labels = groups[key]
        prediction = {k: v for k, v in ext.items() if k not in ("scaling", "workload_spec")}
        scaling = ext.get("scaling") if isinstance(ext.get("scaling"), list) else []
        profile[EXTRAPOLATION_KEY]["systems"].append(
            {"system": _text_param(ext, "system"), "prediction": prediction, "error": None, "scaling": scaling})
        labels.append(label)
    return list(groups.values())


def _block(profile: dict[str, Any], source: str) -> dict[str, Any]:
    ext = profile[EXTRAPOLATION_KEY]
    name = _text_param(_as_dict(profile.get("job")), "name") or "unnamed job"
    block: dict[str, Any] = {"case": name, "source": source, "error": "", "workload": None, "notes": [],
                             "systems": [], "comparison": [], "chart": None, "calibration": None}
    if not isinstance(ext, dict):
        block["error"] = "the stored extrapolation is not readable (meta.profile.extrapolation is not a mapping)"
        return block
    if ext.get("error"):
        block["error"] = _one_line(ext["error"])
        return block
    workload = _as_dict(ext.get("workload"))
    block["workload"] = _workload(workload, _text_param(ext, "source"))
    block["calibration"] = _calibration(_as_dict(ext.get("calibration")))
    block["notes"] = [str(n) for n in ext.get("notes") or [] if n] if isinstance(ext.get("notes"), list) else []
    entries = [e for e in ext.get("systems") or [] if isinstance(e, dict)] if isinstance(ext.get("systems"),
                                                                                         list) else []
    unit = _unit(workload)
    block["systems"] = [_system(entry, unit) for entry in entries]
    block["comparison"] = [s["compare"] for s in block["systems"]]
    block["unit"] = unit
    block["chart"] = _scaling_chart(name, block["systems"], unit, source)
    if not entries:
        block["error"] = "no target system was given (target.systems in ai-ready.yaml, or --system NAME)"
    return block


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())
    return text or "the extrapolation failed without a message"


def _unit(workload: dict[str, Any]) -> str:
    if workload.get("kind") == "generic":
        return f"{_text_param(workload, 'item') or 'items'}/s"
    return "tokens/s"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else \
        format_number(value) if _finite(value) else MISSING


# --------------------------------------------------------------------------- the workload

def _workload(w: dict[str, Any], source: str) -> dict[str, Any]:
    """What was extrapolated, as rows (label, value, detail)."""
    rows: list[tuple[str, str, str]] = []
    kind = _text_param(w, "kind") or "not recorded"
    if kind == "transformer":
        model = _as_dict(w.get("model"))
        sizes = [f"{label} {_count(model.get(key))}" for key, label in MODEL_SIZES.items()
                 if model.get(key) not in (None, 0) or key in ("layers", "hidden", "heads")]
        ffn = _text_param(model, "ffn")
        rows.append(("Model", "transformer" + (f" ({ffn} feed-forward)" if ffn else ""), " · ".join(sizes)))
        batch, seq = w.get("global_batch"), model.get("seq_len")
        per_step = batch * seq if _finite(batch) and _finite(seq) else None
        rows.append(("Global batch", f"{_count(batch)} sequences",
                     f"{_si_count(per_step)} tokens per step" if per_step else ""))
        rows.append(("Token budget", f"{_si_count(w.get('tokens'))} tokens" if _finite(w.get("tokens")) else
                     "not given", "" if _finite(w.get("tokens")) else
                     "set target.tokens in ai-ready.yaml for the time, energy and cost to train"))
    else:
        item = _text_param(w, "item") or "items"
        rows.append(("Model", "not a transformer the profile recognised", "extrapolated from the measured totals"))
        rows.append(("FLOPs per " + item.rstrip("s"), format_number(w.get("flops_per_item")), ""))
        rows.append(("Parameters", _si_count(w.get("parameters")), ""))
        activation = w.get("activation_bytes_per_item")
        rows.append(("Activation memory per " + item.rstrip("s"),
                     f"{format_number(activation / 1e6)} MB" if _finite(activation) else MISSING, ""))
        rows.append(("Batch per GPU", f"{_count(w.get('items_per_gpu_step'))} {item} per step",
                     "kept per GPU as the job grows (weak scaling)"))
        rows.append(("Budget", f"{_si_count(w.get('tokens'))} {item}" if _finite(w.get("tokens")) else "not given",
                     "" if _finite(w.get("tokens")) else
                     f"set target.tokens in ai-ready.yaml (in {item}) for the time, energy and cost to train"))
    rows.append(("Precision", _text_param(w, "precision") or MISSING, ""))
    rows.append(("Source", source or "not recorded", ""))
    return {"kind": kind, "name": _text_param(w, "name"), "rows": rows}


def _calibration(c: dict[str, Any]) -> dict[str, Any]:
    ratio, raw = c.get("ratio"), c.get("raw_ratio")
    return {"note": _text_param(c, "note") or "not recorded", "calibrated": _finite(raw),
            "ratio": format_number(ratio) if _finite(ratio) else MISSING,
            "raw": format_number(raw) if _finite(raw) else ""}


# --------------------------------------------------------------------------- one system

def layout_text(parallelism: Any, kind: str = "transformer", full: bool = True) -> str:
    """"tp4 pp10 dp512" (and, with `full`, micro-batch, interleave, ZeRO, recomputation, sequence parallelism);
    a generic job's layout is DDP or FSDP (with `full`: over how many GPUs)."""
    p = _as_dict(parallelism)
    if kind == "generic":
        dp = _int_param(p, "dp")
        kind_text = "FSDP (ZeRO-3)" if (_int_param(p, "zero") or 0) >= 3 else "DDP"
        return f"{kind_text} over {_count(dp) if dp is not None else '?'} GPUs" if full else kind_text
    core = [f"{key}{p[key]}" for key in ("tp", "pp", "dp") if _int_param(p, key) is not None]
    core += [f"{key}{p[key]}" for key in ("cp", "ep") if (_int_param(p, key) or 1) > 1]
    parts = [" ".join(core)] if core else []
    if full:
        if _int_param(p, "interleave") and p["interleave"] > 1:
            parts.append(f"interleave {p['interleave']}")
        if _int_param(p, "microbatch") is not None:
            parts.append(f"micro-batch {p['microbatch']}")
        if _int_param(p, "zero"):
            parts.append(f"ZeRO-{p['zero']}")
        recompute = _text_param(p, "recompute")
        if recompute and recompute != "none":
            parts.append(f"{recompute} recomputation")
        if p.get("sequence_parallel") is True:
            parts.append("sequence parallel")
    return " · ".join(parts) if parts else MISSING


def _system(entry: dict[str, Any], unit: str) -> dict[str, Any]:
    name = _text_param(entry, "system") or "unnamed system"
    p = _as_dict(entry.get("prediction"))
    out: dict[str, Any] = {"name": name, "error": "", "rows": [], "breakdown": [], "scaling": [], "assumptions": [],
                           "fits": True, "accelerator": ""}
    out["scaling"] = _scaling_rows(entry.get("scaling"), unit)
    if entry.get("error") or not p:
        out["error"] = _one_line(entry.get("error") or "no prediction was stored")
        out["compare"] = {"name": name, "error": out["error"]}
        return out
    kind = _text_param(p, "kind") or "transformer"
    run = _as_dict(p.get("run"))
    out["uncertainty"] = float(p["uncertainty"]) if _finite(p.get("uncertainty")) else 0.0
    out["accelerator"] = _text_param(p, "accelerator")
    out["fits"] = p.get("fits_memory") is not False
    out["rows"] = _summary_rows(p, run, kind, unit)
    out["breakdown"] = _breakdown(p.get("breakdown"), p.get("step_time_s"))
    out["assumptions"] = [str(a) for a in p.get("assumptions") or [] if a] if isinstance(p.get("assumptions"),
                                                                                          list) else []
    out["compare"] = {
        "name": name, "error": "", "fits": out["fits"],
        "gpus": f"{_count(p.get('gpus'))} of {_count(p.get('gpus_available'))}",
        "layout": layout_text(p.get("parallelism"), kind, full=False),
        "step_ms": p["step_time_s"] * 1e3 if _finite(p.get("step_time_s")) else None,
        "throughput": _si_count(p.get("tokens_per_s")),
        "mfu_pct": 100.0 * p["mfu"] if _finite(p.get("mfu")) else None,
        "time": _days(run.get("wall_days")) if run else "no token budget",
        "energy_mwh": run.get("energy_mwh") if _finite(run.get("energy_mwh")) else None,
        "cost_eur": run.get("cost_eur") if _finite(run.get("cost_eur")) else None,
        "goodput_pct": 100.0 * run["goodput"] if _finite(run.get("goodput")) else None,
    }
    return out


def _pct(value: Any) -> str:
    return f"{100.0 * value:.1f}%" if _finite(value) else MISSING


def _days(value: Any) -> str:
    if not _finite(value):
        return MISSING
    return f"{format_number(value)} days" if value >= 1 else f"{format_number(value * 24)} hours"


def _seconds(value: Any) -> str:
    if not _finite(value):
        return MISSING
    if value < 1:
        return f"{format_number(value * 1e3)} ms"
    if value < 2 * SECONDS_PER_MINUTE:
        return f"{format_number(value)} s"
    if value < 2 * SECONDS_PER_HOUR:
        return f"{format_number(value / SECONDS_PER_MINUTE)} min"
    return f"{format_number(value / SECONDS_PER_HOUR)} h"


def _summary_rows(p: dict[str, Any], run: dict[str, Any], kind: str, unit: str) -> list[dict[str, Any]]:
    """The prediction on the whole system as (key, label, value, detail, flag) rows."""
    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, value: str, sub: str = "", flag: str = "", flag_text: str = "") -> None:
        rows.append({"key": key, "label": label, "value": value, "sub": sub, "flag": flag, "flag_text": flag_text})

    gpus, available = p.get("gpus"), p.get("gpus_available")
    share = f"{gpus / available:.0%} of the system" if _finite(gpus) and _finite(available) and available else ""
    search = _as_dict(p.get("search"))
    searched = (f"; the fastest of {_count(search.get('evaluated'))} layouts evaluated "
                f"({_count(search.get('fitting'))} fit memory)" if search.get("evaluated") else "")
    add("gpus", "GPUs used", f"{_count(gpus)} of {_count(available)} {_text_param(p, 'accelerator')}".rstrip(),
        share + searched)
    software = _as_dict(p.get("software"))
    soft = ", ".join(part for part in (
        f"{software['attention']} attention" if software.get("attention") else "",
        "gradient reduction overlapped" if software.get("overlap_grad_reduce") else "",
        "weight gathers overlapped" if software.get("overlap_param_gather") else "") if part)
    add("layout", "Layout", layout_text(p.get("parallelism"), kind), soft)
    band = p.get("step_time_band_s")
    low, high = (band[0], band[1]) if isinstance(band, list) and len(band) == 2 else (None, None)
    add("step", "Step time", _seconds(p.get("step_time_s")),
        f"band {_seconds(low)} – {_seconds(high)} (± {_pct(p.get('uncertainty'))}: the model's cross-validated 80% band)"
        if _finite(low) and _finite(high) else "")
    per_gpu = p["tokens_per_s"] / gpus if _finite(p.get("tokens_per_s")) and _finite(gpus) and gpus else None
    add("throughput", "Throughput", f"{_si_count(p.get('tokens_per_s'))} {unit}",
        f"{format_number(per_gpu)} {unit} per GPU" if per_gpu is not None else "")
    tflops, hw, peak = p.get("model_tflops_per_gpu"), p.get("hardware_tflops_per_gpu"), p.get("peak_tflops_per_gpu")
    detail = f"{format_number(tflops)} model TFLOP/s per GPU of the {format_number(peak)} TFLOP/s dense peak"
    if _finite(hw) and _finite(tflops) and abs(hw - tflops) > 1e-6 * max(abs(tflops), 1.0):
        detail += f"; {format_number(hw)} TFLOP/s with recomputation"
    add("mfu", "MFU", _pct(p.get("mfu")), detail if _finite(tflops) else "")
    memory, hbm = p.get("memory_gb_per_gpu"), p.get("hbm_gb_per_gpu")
    parts = _as_dict(p.get("memory_breakdown_gb"))
    add("memory", "Memory per GPU", f"{format_number(memory)} GB of {format_number(hbm)} GB HBM",
        ", ".join(f"{k} {format_number(v)} GB" for k, v in parts.items() if _finite(v)),
        "ok" if p.get("fits_memory") is not False else "bad",
        "fits" if p.get("fits_memory") is not False else "does not fit")
    if not run:
        add("run", "Time, energy and cost to train", "not computed",
            "no token budget: set target.tokens in ai-ready.yaml")
        return rows
    steps, tokens = run.get("steps"), run.get("tokens")
    add("time", "Time to train", _days(run.get("wall_days")),
        f"wall-clock, failures and checkpoints included; {_days(run.get('compute_days'))} of pure compute; "
        f"{_si_count(steps)} steps for {_si_count(tokens)} {unit.removesuffix('/s')}")
    add("energy", "Energy", f"{format_number(run.get('energy_mwh'))} MWh",
        f"at {format_number(run.get('facility_power_mw'))} MW facility power (cooling included)"
        if _finite(run.get("facility_power_mw")) else "")
    add("cost", "Electricity cost", f"{format_number(run.get('cost_eur'))} EUR",
        f"at {format_number(run.get('eur_per_kwh'))} EUR/kWh; electricity only, not the machine"
        if _finite(run.get("eur_per_kwh")) else "electricity only, not the machine")
    goodput = run.get("goodput")
    add("goodput", "Goodput", _pct(goodput), "share of the wall time that trains; the rest is checkpoints, "
        "restarts and work lost to failures", "warn" if _finite(goodput) and goodput < 0.8 else "",
        "below 80%" if _finite(goodput) and goodput < 0.8 else "")
    mttf = run.get("mttf_hours")
    add("mttf", "Mean time to failure", f"{format_number(mttf)} hours" if _finite(mttf) else MISSING,
        f"{format_number(run.get('failures_per_day'))} failures per day over the job's nodes"
        if _finite(run.get("failures_per_day")) else "")
    add("checkpoint", "Checkpoints", f"every {_seconds(run.get('checkpoint_interval_s'))}",
        f"{_seconds(run.get('checkpoint_s'))} per checkpoint; the interval minimises the time lost to "
        "checkpoints and failures (Young/Daly)")
    add("interruptions", "Interruptions", f"{format_number(run.get('interruptions'))} expected",
        "failures during the run, each restarting from the last checkpoint")
    return rows


def _breakdown(value: Any, step: Any) -> list[dict[str, Any]]:
    """Each component's milliseconds and share of the step, biggest first; components at zero are left out."""
    parts = {str(k): float(v) for k, v in _as_dict(value).items() if _finite(v) and v > 0}
    total = sum(parts.values()) or (step if _finite(step) else 0.0)
    rows = [{"name": BREAKDOWN_NAMES.get(k, k), "ms": v * 1e3, "share_pct": 100.0 * v / total if total else None}
            for k, v in parts.items()]
    return sorted(rows, key=lambda row: -row["ms"])


def _scaling_rows(value: Any, unit: str) -> list[dict[str, Any]]:
    rows = []
    for point in value if isinstance(value, list) else []:
        q = _as_dict(point)
        if not _finite(q.get("gpus")):
            continue
        fits = q.get("fits") is True
        has_figures = _finite(q.get("tokens_per_s"))
        reason = _text_param(q, "reason").split(SEARCH_ADVICE)[0]
        if not fits and not reason:
            reason = "does not fit memory"
        parallelism = _as_dict(q.get("parallelism"))
        kind = "generic" if parallelism and "tp" not in parallelism else "transformer"
        rows.append({
            "gpus": q["gpus"], "gpus_text": _count(q["gpus"]),
            "used": _count(q.get("gpus_used")) if _finite(q.get("gpus_used")) else MISSING,
            "used_value": q["gpus_used"] if _finite(q.get("gpus_used")) else q["gpus"],
            "fits": fits, "figures": has_figures, "reason": reason,
            "layout": layout_text(parallelism, kind) if parallelism else MISSING,
            "batch": _count(q.get("global_batch")) if _finite(q.get("global_batch")) else MISSING,
            "step": _seconds(q.get("step_time_s")),
            "tokens_per_s": q.get("tokens_per_s") if has_figures else None,
            "throughput": f"{_si_count(q.get('tokens_per_s'))}" if has_figures else MISSING,
            "mfu_pct": 100.0 * q["mfu"] if _finite(q.get("mfu")) else None,
            "efficiency": q.get("efficiency") if _finite(q.get("efficiency")) else None,
            "efficiency_pct": 100.0 * q["efficiency"] if _finite(q.get("efficiency")) else None,
        })
    return sorted(rows, key=lambda row: row["gpus"])


def _scaling_chart(name: str, systems: list[dict[str, Any]], unit: str, source: str) -> charts.Chart | None:
    """One chart for every system: throughput and per-GPU efficiency against GPUs, misfits marked."""
    series, described = [], []
    for s in systems:
        fitting = [(float(r["used_value"]), float(r["tokens_per_s"]), float(r["efficiency"])) for r in s["scaling"]
                   if r["fits"] and r["tokens_per_s"] is not None and r["efficiency"] is not None]
        misfits = [float(r["gpus"]) for r in s["scaling"] if not r["fits"]]
        if not fitting and not misfits:
            continue
        size = max(float(r["gpus"]) for r in s["scaling"])
        series.append(charts.ScalingSeries(s["name"], fitting, misfits, size, s.get("uncertainty") or 0.0))
        text = ", ".join(f"{x:,.0f} GPUs {_si_count(y)} {unit} ({100 * e:.0f}%)" for x, y, e in fitting)
        if misfits:
            text += ("; " if text else "") + "nothing fits on " + ", ".join(f"{x:,.0f}" for x in misfits) + " GPUs"
        described.append(f"{s['name']}: {text}")
    if not series:
        return None
    who = name + (f", {source}" if source else "")
    alt = (f"Scaling of {who} from one node to the whole of each target system, predicted by the performance "
           f"model. Top: total throughput in {unit}, shaded over the model's uncertainty band; bottom: per-GPU "
           f"efficiency against the first point that fits. "
           + "; ".join(described) + ". The tables below hold the same figures.")
    return charts.scaling_chart(series, title=f"Scaling to the whole system ({unit})", throughput_label=unit, alt=alt)
