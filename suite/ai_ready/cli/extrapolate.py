"""`ai-ready extrapolate WORKLOAD --system NAME_OR_FILE`: a training job on a target system.

WORKLOAD is a workload YAML (name, model, training; docs/model.md) or a profile.json written by
`ai-ready profile`. With a full parallel layout (--tp --pp --dp and --microbatch) that layout is
evaluated; otherwise the fastest one that fits memory is searched for, under the given constraints.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from ai_ready import __version__
from ai_ready.catalog import load_catalog
from ai_ready.catalog.loader import load_system_file
from ai_ready.catalog.model import Catalog, System
from ai_ready.cli.console import print_table
from ai_ready.errors import InputError, yaml_problem
from ai_ready.fileio import atomic_write_text
from ai_ready.model.predict import Prediction, predict, predict_generic, scaling_curve, scaling_points
from ai_ready.model.software import default_preset, names as preset_names
from ai_ready.model.software import resolve as resolve_software
from ai_ready.model.step import ATTENTION_KINDS
from ai_ready.model.workload import RECOMPUTE_MODES, load_workload
from ai_ready.records import utc_now
# The JSON object names its kind, so `ai-ready report` can take it among its inputs.
from ai_ready.report.inputs import EXTRAPOLATION_SCHEMA, EXTRAPOLATION_VERSION

WORKLOAD_TOP_KEYS = ("name", "model", "training", "software")


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}")
    return value


def _system(catalog: Catalog, name_or_file: str) -> System:
    path = Path(name_or_file)
    if name_or_file.endswith((".yaml", ".yml")) or (path.exists() and name_or_file not in catalog.systems):
        return load_system_file(path, catalog)
    return catalog.system(name_or_file)


def _read_workload(path: Path) -> tuple[str, Any]:
    """("yaml", mapping) or ("profile", document)."""
    if not path.is_file():
        raise InputError(f"workload {path} does not exist or is not a file; give a workload YAML or the "
                         "profile.json of `ai-ready profile`")
    if path.suffix == ".json":
        from ai_ready.records import load_results

        return "profile", load_results(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"workload {path}: not valid YAML ({yaml_problem(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"workload {path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"workload {path}: must be a mapping with keys name, model, training")
    return "yaml", data


@click.command()
@click.argument("workload", type=click.Path(path_type=Path))
@click.option("--system", "system_name", required=True, metavar="NAME_OR_FILE",
              help="Catalog system name (see `ai-ready systems list`) or a system YAML file.")
@click.option("--gpus", type=int, callback=_positive, help="Use at most this many GPUs (default: the whole system).")
@click.option("--nodes", type=int, callback=_positive, help="The system's node as a cluster of this many nodes "
              "(e.g. --system dgx-h100 --nodes 64: 512 H100 on its NICs); no system file needed.")
@click.option("--tp", type=int, callback=_positive, help="Tensor-parallel size (searched if not given).")
@click.option("--pp", type=int, callback=_positive, help="Pipeline-parallel size.")
@click.option("--dp", type=int, callback=_positive, help="Data-parallel size.")
@click.option("--cp", type=int, callback=_positive, help="Context-parallel size.")
@click.option("--ep", type=int, callback=_positive, help="Expert-parallel size (MoE).")
@click.option("--microbatch", type=int, callback=_positive, help="Sequences per micro-batch.")
@click.option("--interleave", type=int, callback=_positive, help="Virtual pipeline chunks per stage.")
@click.option("--first-stage-layers", type=int, callback=_positive, help="Layers of the first pipeline stage "
              "(Megatron's --decoder-first-pipeline-num-layers); the other stages share the rest evenly.")
@click.option("--last-stage-layers", type=int, callback=_positive, help="Layers of the last pipeline stage. "
              "Where --pp does not divide the layers and neither is given, the first and last stages hold the "
              "fewer layers, as trained runs do.")
@click.option("--recompute", type=click.Choice(RECOMPUTE_MODES), help="Activation recomputation.")
@click.option("--zero", type=click.IntRange(0, 3), help="ZeRO stage (0-3).")
@click.option("--sequence-parallel/--no-sequence-parallel", default=None,
              help="Sequence parallelism (default: on whenever tp > 1).")
@click.option("--software", "software_name", metavar="PRESET", help="The training stack, replacing the "
              f"workload's `software`: {', '.join(preset_names())} (data/software.yaml, each with its sources and "
              f"its fitted kernel efficiency); default {default_preset().name}.")
@click.option("--attention", type=click.Choice(ATTENTION_KINDS), help="Attention kernels (default: the stack's).")
@click.option("--eur-per-kwh", type=float, help="Electricity price (default 0.20, an assumption).")
@click.option("--scaling", is_flag=True, help="Add the scaling curve from one node to the whole system.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the JSON object to this file.")
def extrapolate(workload: Path, system_name: str, gpus: int | None, nodes: int | None, tp: int | None,
                pp: int | None, dp: int | None, cp: int | None, ep: int | None, microbatch: int | None,
                interleave: int | None, first_stage_layers: int | None, last_stage_layers: int | None,
                recompute: str | None, zero: int | None, sequence_parallel: bool | None, software_name: str | None,
                attention: str | None, eur_per_kwh: float | None, scaling: bool, as_json: bool,
                output: Path | None) -> None:
    """Predict step time, MFU, memory, time/energy/cost to train and goodput of WORKLOAD on a system."""
    if eur_per_kwh is not None and not eur_per_kwh >= 0:
        raise InputError(f"--eur-per-kwh: must be a price >= 0, got {eur_per_kwh}")
    catalog = load_catalog()
    system = _system(catalog, system_name)
    if nodes is not None:
        system = system.with_nodes(nodes)
    fixed = {"tp": tp, "pp": pp, "dp": dp, "cp": cp, "ep": ep, "microbatch": microbatch, "interleave": interleave,
             "recompute": recompute, "zero": zero, "sequence_parallel": sequence_parallel,
             "first_stage_layers": first_stage_layers, "last_stage_layers": last_stage_layers}
    fixed = {k: v for k, v in fixed.items() if v is not None}
    layout_size = 1
    for key in ("tp", "pp", "dp", "cp"):
        layout_size *= fixed.get(key, 1)
    if layout_size > system.total_accelerators:
        per_node = int(system.accelerators_per_node.value)
        raise InputError(f"parallelism: tp·pp·dp·cp = {layout_size} GPUs, more than the "
                         f"{system.total_accelerators} of system '{system.name}' (--nodes "
                         f"{-(-layout_size // per_node)} makes it a cluster of enough {per_node}-GPU nodes)")
    if gpus is not None and gpus > system.total_accelerators:
        raise InputError(f"--gpus {gpus}: system '{system.name}' has {system.total_accelerators} GPUs")
    kind, data = _read_workload(workload)
    curve: list[dict[str, Any]] | None = None
    from ai_ready.model.from_profile import workload_json
    if kind == "yaml":
        for key in data:
            if key not in WORKLOAD_TOP_KEYS:
                raise InputError(f"workload: unknown key '{key}'; accepted: {', '.join(WORKLOAD_TOP_KEYS)}")
        software, stack_note = resolve_software(software_name if software_name else data.get("software"))
        if attention:
            software = dataclasses.replace(software, attention=attention)
        work = load_workload({k: v for k, v in data.items() if k != "software"})
        prediction = predict(work, system, gpus=gpus, fixed=fixed, software=software, eur_per_kwh=eur_per_kwh)
        prediction = dataclasses.replace(prediction, assumptions=(stack_note,) + prediction.assumptions)
        if scaling:
            limit = gpus or system.total_accelerators
            points = [n for n in scaling_points(system) if n < limit] + [limit]
            curve = scaling_curve(work, system, points=points, software=software)
        spec = workload_json(work)
    else:
        from ai_ready.model.from_profile import workload_from_profile

        work_p = workload_from_profile(data, catalog)
        spec = workload_json(work_p.transformer if work_p.transformer is not None else work_p.generic)
        software = work_p.software
        notes = work_p.notes
        if software_name:
            software, stack_note = resolve_software(software_name)
            notes = tuple(n for n in notes if not n.startswith("software: preset")) + (stack_note,)
        if attention:
            software = dataclasses.replace(software, attention=attention)
        if work_p.transformer is not None:
            prediction = predict(work_p.transformer, system, gpus=gpus, fixed=fixed, software=software,
                                 calibration=work_p.calibration, eur_per_kwh=eur_per_kwh)
            if scaling:
                curve = scaling_curve(work_p.transformer, system, calibration=work_p.calibration, software=software)
        else:
            assert work_p.generic is not None
            prediction = predict_generic(work_p.generic, system, gpus=gpus, calibration=work_p.calibration,
                                         eur_per_kwh=eur_per_kwh)
        prediction = Prediction(**{**prediction.__dict__,
                                   "assumptions": tuple(notes) + (f"workload: {work_p.source}",)
                                   + prediction.assumptions})
    result = {"schema": EXTRAPOLATION_SCHEMA, "version": EXTRAPOLATION_VERSION, **prediction.to_json(),
              "workload_spec": spec, "workload_file": str(workload), "created": utc_now(),
              "ai_ready_version": __version__, "command": ["ai-ready", *sys.argv[1:]]}
    if curve is not None:
        result["scaling"] = curve
    text = json.dumps(result, indent=2)
    if output is not None:
        atomic_write_text(output, text + "\n")
    if as_json:
        click.echo(text)
        return
    _print_human(result)


def _days(value: float) -> str:
    return f"{value:,.1f} days" if value >= 1 else f"{value * 24:,.1f} hours"


def _print_human(r: dict[str, Any]) -> None:
    p = r["parallelism"]
    layout = (f"tp{p['tp']} pp{p['pp']} dp{p['dp']} cp{p['cp']}" + (f" ep{p['ep']}" if p["ep"] > 1 else "")
              + f" mb{p['microbatch']} v{p['interleave']} {p['recompute']} ZeRO-{p['zero']}")
    stages = p.get("stage_layers") or []
    if len(set(stages)) > 1:
        layout += f" (layers per stage {stages[0]}, {len(stages) - 2} × {stages[1]}, {stages[-1]})"
    low, high = r["step_time_band_s"]
    rows = [
        ("GPUs", f"{r['gpus']:,} of {r['gpus_available']:,} {r['accelerator']}"),
        ("layout", layout),
        ("step time", f"{r['step_time_s']:.4g} s (band {low:.3g}-{high:.3g} s, ±{r['uncertainty']:.0%})"),
        ("throughput", f"{r['tokens_per_s']:,.0f} {r.get('item', 'tokens')}/s"),
        ("model TFLOP/s per GPU", f"{r['model_tflops_per_gpu']:.1f} of {r['peak_tflops_per_gpu']:g} peak "
                                  f"(MFU {r['mfu']:.1%}); hardware {r['hardware_tflops_per_gpu']:.1f}"),
        ("memory per GPU", f"{r['memory_gb_per_gpu']:.1f} GB of {r['hbm_gb_per_gpu']:g} GB"
                           + ("" if r["fits_memory"] else "  DOES NOT FIT")),
    ]
    run = r.get("run")
    if run:
        rows += [
            ("time to train", f"{_days(run['compute_days'])} of compute, {_days(run['wall_days'])} with failures "
                              f"(goodput {run['goodput']:.1%})"),
            ("failures", f"{run['failures_per_day']:.3g} per day, MTTF {run['mttf_hours']:.3g} h, checkpoint "
                         f"{run['checkpoint_s']:.3g} s every {run['checkpoint_interval_s'] / 60:.3g} min"),
            ("energy and cost", f"{run['energy_mwh']:,.0f} MWh, {run['cost_eur']:,.0f} EUR at "
                                f"{run['eur_per_kwh']:g} EUR/kWh ({run['facility_power_mw']:.3g} MW facility)"),
        ]
    print_table(f"{r['workload']} on {r['system']}", ["", ""], rows)
    total = r["step_time_s"]
    parts = [(k, f"{v:.4g} s", f"{v / total:.1%}") for k, v in r["breakdown"].items() if v > 0]
    print_table("where the step goes", ["component", "seconds", "share"], parts)
    if "scaling" in r:
        rows = []
        for point in r["scaling"]:
            if not point.get("fits"):
                rows.append((f"{point['gpus']:,}", "does not fit", "", "", ""))
                continue
            q = point["parallelism"]
            rows.append((f"{point['gpus']:,}", f"{point['tokens_per_s']:,.0f}", f"{point['mfu']:.1%}",
                         f"{point['efficiency']:.0%}", f"tp{q.get('tp', 1)} pp{q.get('pp', 1)} dp{q.get('dp', 1)}"))
        print_table("scaling", ["GPUs", "tokens/s", "MFU", "efficiency", "layout"], rows)
    click.echo("assumptions:")
    for note in r["assumptions"]:
        click.echo(f"  - {note}")
