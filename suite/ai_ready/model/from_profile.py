"""From a job profile (``profile.json`` of ``ai-ready profile``) to what the model extrapolates.

- The workload: the ``target.model`` of the job's ai-ready.yaml when it is a transformer (the run the
  user plans); else the profiled transformer itself (its layers, hidden size, heads and vocabulary as
  the profile found them); else a :class:`~ai_ready.model.predict.GenericWorkload` from measured
  totals (FLOPs per step, parameters, memory).
- The calibration: when the job ran on a GPU the catalog knows, the profiled step is modelled on that
  GPU and measured/modelled carries over to targets (bounded); on a CPU nothing is calibrated and the
  predictions use catalog efficiencies, which the notes say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai_ready.catalog.model import Catalog, Figure, System
from ai_ready.errors import InputError
from ai_ready.model.hardware import hardware_for
from ai_ready.model.predict import (Calibration, GenericWorkload, Prediction, predict, predict_generic,
                                   scaling_curve, scaling_points)
from ai_ready.model.search import search
from ai_ready.model.software import resolve as resolve_software
from ai_ready.model.step import Software
from ai_ready.model.workload import Training, TransformerModel, Workload

#: Global batch when the target names none: about 4M tokens, Llama 2's pre-training batch (Touvron et
#: al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models", §2.2).
DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024
BATCH_ASSUMPTION = ("global batch of about 4M tokens (Llama 2's pre-training batch, Touvron et al. 2023); "
                    "set target.global_batch in ai-ready.yaml")
PRECISION_ASSUMPTION = "bf16 mixed precision (set target.precision in ai-ready.yaml)"


@dataclass(frozen=True)
class ProfileWorkload:
    """What a profile extrapolates: one of the two workload kinds, where it came from, the calibration."""

    transformer: Workload | None
    generic: GenericWorkload | None
    source: str
    calibration: Calibration
    notes: tuple[str, ...]
    systems: tuple[str, ...]
    software: Software = Software()


def _profile(document: Any) -> tuple[dict[str, Any], list[Any]]:
    meta = document.meta if hasattr(document, "meta") else document["meta"]
    records = document.records if hasattr(document, "records") else document.get("records", [])
    profile = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profile, dict) or not profile.get("ranks"):
        raise InputError("not a job profile: meta.profile with ranks is missing (give the profile.json that "
                         "`ai-ready profile` wrote)")
    return profile, list(records)


def _record(records: list[Any], metric: str) -> Any:
    for r in records:
        name = r.metric if hasattr(r, "metric") else r.get("metric")
        params = r.params if hasattr(r, "params") else r.get("params", {})
        rank = r.rank if hasattr(r, "rank") else r.get("rank", 0)
        if name == metric and not params.get("aggregate") and (rank in (0, None)):
            return r
    return None


def _value(record: Any) -> float:
    return float(record.value if hasattr(record, "value") else record["value"])


def _params(record: Any) -> dict[str, Any]:
    return dict(record.params if hasattr(record, "params") else record.get("params", {}))


def workload_from_profile(document: Any, catalog: Catalog) -> ProfileWorkload:
    """The workload, its source and calibration from a profile document (Results or its dict)."""
    profile, records = _profile(document)
    rank = profile["ranks"][0]
    target = profile.get("target") or {}
    notes: list[str] = []
    name = str(profile.get("job", {}).get("name", "job"))
    step = _record(records, "step_time")
    if step is None:
        raise InputError(f"the profile has no step_time record: the job finished no timed step (profile status "
                         f"{profile.get('status')!r}), so there is nothing to extrapolate")
    per_step, item = _work_per_step(_record(records, "throughput"), target, notes)
    precision = target.get("precision") or "bf16"
    if not target.get("precision"):
        notes.append(f"precision: assumption: {PRECISION_ASSUMPTION}")
    tokens = target.get("tokens")
    measured = rank.get("model", {}).get("transformer") if isinstance(rank.get("model"), dict) else None
    seq_len = rank.get("seq_len")
    target_model = target.get("model") or None
    workload = generic = None
    if target_model and target_model.get("kind") == "transformer":
        sizes = {k: v for k, v in target_model.items() if k != "kind"}
        model = TransformerModel(**sizes).validate()
        source = "target.model of ai-ready.yaml"
    elif profiled_model(measured, seq_len) is not None:
        model = profiled_model(measured, seq_len)
        source = "the profiled model (no transformer target.model in ai-ready.yaml)"
    else:
        model = None
        source = ("measured totals of the profiled job (" + _unrecognised(measured, seq_len) + ")")
    if model is not None:
        batch = target.get("global_batch")
        if batch is None:
            batch = max(1, round(DEFAULT_BATCH_TOKENS / model.seq_len))
            notes.append(f"global batch: {batch} sequences; assumption: {BATCH_ASSUMPTION}")
        workload = Workload(name, model, Training(int(batch), tokens, precision).validate())
    else:
        flops = _record(records, "model_flops")
        if flops is None or per_step <= 0:
            raise InputError("the profile counted no FLOPs per step, so a generic job cannot be extrapolated")
        world = int(rank.get("world_size", 1) or 1)
        params = float(rank.get("model", {}).get("parameters", 0) or 0)
        peak = _record(records, "peak_memory")
        memory = _value(peak) * 1e9 if peak is not None else 0.0
        activations = max(0.0, memory - 16.0 * params)
        per_gpu = max(1, round(per_step / world)) if per_step >= world else 1
        generic = GenericWorkload(name, _value(flops) / per_step, params, activations / max(per_gpu, 1), per_gpu,
                                  item, tokens, precision)
        notes.append("activation memory: the profile's peak memory less 16 bytes per parameter (weights, "
                     "gradients, Adam states), per item")
    calibration = _calibrate(profile, records, catalog, workload, measured, seq_len, per_step)
    systems = tuple(target.get("systems") or ())
    software, stack_note = resolve_software(target.get("software") or stack_of(rank))
    notes.append(stack_note)
    return ProfileWorkload(workload, generic, source, calibration, tuple(notes), systems, software)


def stack_of(rank: dict[str, Any]) -> str:
    """The plain PyTorch stack the profiled job ran on (FSDP or DDP as its features say): a job the model has
    not seen is not credited with a tuned stack such as Megatron-Core."""
    features = rank.get("features") or {}
    return "pytorch-ddp" if features.get("ddp") and not features.get("fsdp") else "pytorch-fsdp2"


def _calibrate(profile: dict[str, Any], records: list[Any], catalog: Catalog, workload: Workload | None,
               measured: dict[str, Any] | None, seq_len: int | None, per_step: float) -> Calibration:
    rank = profile["ranks"][0]
    device = str(rank.get("device", "cpu"))
    if not device.startswith("cuda"):
        return Calibration(note=f"not calibrated: the job was profiled on {device}, not a GPU; catalog "
                                f"efficiencies used")
    accelerator = catalog.match_accelerator(str(rank.get("device_name", "")))
    if accelerator is None:
        return Calibration(note=f"not calibrated: {rank.get('device_name')} is not in the catalog")
    if not (measured and seq_len and per_step > 0):
        return Calibration(note="not calibrated: the profiled model is not a transformer the model can rebuild")
    step = _record(records, "step_time")
    world = int(rank.get("world_size", 1) or 1)
    model = profiled_model(measured, seq_len)
    if model is None:
        return Calibration(note="not calibrated: " + _unrecognised(measured, seq_len))
    unlike = _unlike(model, workload.model if workload is not None else None)
    if unlike:
        return Calibration(note=f"not calibrated: {unlike}; catalog efficiencies used")
    batch = max(world, int(round(per_step / seq_len)) * world)
    precision = "bf16" if rank.get("features", {}).get("autocast") else "fp32"
    node = _node_system(accelerator, world)
    try:
        hw = hardware_for(node, precision)
        fixed = {"tp": 1, "pp": 1, "dp": world, "cp": 1, "recompute": "none", "zero": 0,
                 "microbatch": batch // world}
        modelled = search(model, Training(batch, precision=precision), hw, gpus=world, fixed=fixed).best
    except InputError as exc:
        return Calibration(note=f"not calibrated: the profiled step could not be modelled ({exc})")
    return Calibration.from_measurement(_value(step), modelled.step_time_s,
                                        f"{world} × {accelerator.model} running the profiled model")


#: The sizes a profiled transformer must show before the model can rebuild it.
PROFILED_SIZES = ("layers", "hidden", "heads", "vocab")


def profiled_model(measured: dict[str, Any] | None, seq_len: int | None) -> TransformerModel | None:
    """The profiled transformer as the performance model describes it (grouped-query attention, SwiGLU and
    experts where the profile found them), or None when a size is missing or the shape is not one it knows."""
    if not (measured and seq_len and all(measured.get(k) for k in PROFILED_SIZES)):
        return None
    base = {k: int(measured[k]) for k in PROFILED_SIZES} | {"seq_len": int(seq_len)}
    extra: dict[str, Any] = {}
    if measured.get("kv_heads"):
        extra["kv_heads"] = int(measured["kv_heads"])
    if measured.get("ffn") in ("gelu", "swiglu"):
        extra["ffn"] = measured["ffn"]
    if measured.get("ffn_hidden"):
        extra["ffn_hidden"] = int(measured["ffn_hidden"])
    if measured.get("experts") and measured.get("top_k"):
        extra |= {"experts": int(measured["experts"]), "top_k": int(measured["top_k"])}
    for sizes in (base | extra, base):  # a detail the model cannot take must not cost the whole shape
        try:
            return TransformerModel(**sizes).validate()
        except (InputError, TypeError, ValueError):
            continue
    return None


def _unrecognised(measured: dict[str, Any] | None, seq_len: int | None) -> str:
    """Why the profiled model cannot be rebuilt as a transformer, in words."""
    if not measured:
        return "not a transformer the profile recognised: no token embedding or no repeated attention blocks"
    missing = [k for k in PROFILED_SIZES if not measured.get(k)] + ([] if seq_len else ["sequence length"])
    if missing:
        return (f"the profiled transformer's {', '.join(missing)} could not be read; give target.model in "
                "ai-ready.yaml")
    return "the profiled transformer's shape is not one the performance model can rebuild"


def _work_per_step(throughput: Any, target: dict[str, Any], notes: list[str]) -> tuple[float, str]:
    """(items per step, item) measured by the profile, else ``target.tokens_per_step`` from ai-ready.yaml."""
    if throughput is not None:
        params = _params(throughput)
        return float(params.get("per_step", 0.0)), str(params.get("item", "samples"))
    given = target.get("tokens_per_step")
    if given:
        notes.append("tokens per step: target.tokens_per_step of ai-ready.yaml (the profile could not count them)")
        return float(given), "tokens"
    raise InputError("tokens per step unknown: no tokens or samples were seen entering the model's forward or "
                     "coming from a DataLoader; pass target.tokens_per_step in ai-ready.yaml")


#: A profiled model calibrates a target only when their matrix shapes are alike: hidden sizes within this
#: factor. GEMM efficiency depends on the shapes (a 128-wide model runs its GEMMs at a few % of peak, an
#: 8192-wide one at most of it), so a toy job's efficiency says nothing about a 70B target's.
CALIBRATION_HIDDEN_RATIO = 2.0


def _unlike(profiled: TransformerModel, target: TransformerModel | None) -> str | None:
    """Why the profiled model's measured efficiency does not carry over to the target, or None."""
    if target is None:
        return None
    ratio = max(target.hidden, profiled.hidden) / min(target.hidden, profiled.hidden)
    if ratio > CALIBRATION_HIDDEN_RATIO:
        return (f"the profiled model (hidden {profiled.hidden}) and the target (hidden {target.hidden}) run "
                f"matrices of very different shapes, so the job's measured efficiency says nothing about the "
                f"target's (profile a model of the target's width, or run `ai-ready bench gemm --llm` on the GPU)")
    return None


def _node_system(accelerator: Any, gpus: int) -> System:
    """A one-node system of ``gpus`` of ``accelerator``: the node the job was profiled on."""
    definition = ("definition",)
    return System(name=f"profiled-{accelerator.name}", accelerator=accelerator,
                  nodes=Figure(1, source=definition), accelerators_per_node=Figure(max(1, gpus), source=definition))


def extrapolate_profile(document: Any, catalog: Catalog, systems: tuple[str, ...] | None = None,
                        scaling: bool = True) -> dict[str, Any]:
    """Everything the report shows at scale, JSON-ready: per target system the prediction on the whole
    system (or the reason it failed) and the scaling curve from one node."""
    work = workload_from_profile(document, catalog)
    names = systems or work.systems
    out: dict[str, Any] = {
        "workload": _workload_json(work), "source": work.source, "calibration": work.calibration.to_json(),
        "notes": list(work.notes), "systems": [],
    }
    for name in names:
        entry: dict[str, Any] = {"system": name, "prediction": None, "error": None, "scaling": []}
        try:
            system = catalog.system(name)
            prediction: Prediction
            if work.transformer is not None:
                prediction = predict(work.transformer, system, calibration=work.calibration, software=work.software)
                if scaling:
                    entry["scaling"] = scaling_curve(work.transformer, system, calibration=work.calibration,
                                                     software=work.software)
            else:
                assert work.generic is not None
                prediction = predict_generic(work.generic, system, calibration=work.calibration)
                if scaling:
                    entry["scaling"] = _generic_curve(work.generic, system, work.calibration)
            entry["prediction"] = prediction.to_json()
        except InputError as exc:
            entry["error"] = str(exc)
        out["systems"].append(entry)
    return out


def _generic_curve(work: GenericWorkload, system: System, calibration: Calibration) -> list[dict[str, Any]]:
    curve, reference = [], None
    for n in scaling_points(system):
        p = predict_generic(work, system, gpus=n, calibration=calibration).step
        per_gpu = p.tokens_per_s / p.gpus
        reference = reference or per_gpu
        curve.append({"gpus": n, "gpus_used": n, "fits": p.fits_memory, "step_time_s": p.step_time_s,
                      "tokens_per_s": p.tokens_per_s, "mfu": p.mfu, "efficiency": per_gpu / reference,
                      "global_batch": p.tokens_per_step, "parallelism": {"dp": n, "zero": p.parallelism.zero}})
    return curve


def workload_json(work: Workload | GenericWorkload) -> dict[str, Any]:
    """What is being extrapolated, JSON-ready: the report's "what was extrapolated" rows read this."""
    if isinstance(work, Workload):
        m = work.model
        return {"kind": "transformer", "name": work.name,
                "model": {"layers": m.layers, "hidden": m.hidden, "heads": m.heads, "kv_heads": m.resolved_kv_heads,
                          "ffn_hidden": m.resolved_ffn_hidden, "ffn": m.ffn, "vocab": m.vocab, "seq_len": m.seq_len,
                          "experts": m.experts, "top_k": m.top_k},
                "global_batch": work.training.global_batch, "tokens": work.training.tokens,
                "precision": work.training.precision}
    g = work
    return {"kind": "generic", "name": g.name, "flops_per_item": g.flops_per_item, "parameters": g.parameters,
            "activation_bytes_per_item": g.activation_bytes_per_item, "items_per_gpu_step": g.items_per_step,
            "item": g.item, "tokens": g.tokens, "precision": g.precision}


def _workload_json(work: ProfileWorkload) -> dict[str, Any]:
    chosen = work.transformer if work.transformer is not None else work.generic
    assert chosen is not None
    return workload_json(chosen)
