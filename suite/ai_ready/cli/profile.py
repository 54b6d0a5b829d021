"""`ai-ready profile DIR`: run a user's training job unmodified for a few steps and report where time goes."""

from __future__ import annotations

import math
import shutil
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ai_ready import stop
from ai_ready.bench.ceiling import mfu_peak_label
from ai_ready.cli.bench import DEFAULT_OUTPUT_DIR
from ai_ready.cli.console import is_quiet, note, print_table
from ai_ready.errors import InputError
from ai_ready.profile.jobspec import LAUNCHERS, load_job
from ai_ready.records import Record, ResultDocument, new_meta

if TYPE_CHECKING:
    from ai_ready.catalog.model import Catalog

EXIT_PROFILE_FAILED = 1


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("directory", type=click.Path(path_type=Path))
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="Where <name>/profile.json, the ranks' raw profiles and <name>.html go.")
@click.option("--name", help="Job name (default: ai-ready.yaml's name, else the folder's name).")
@click.option("--launcher", type=click.Choice(LAUNCHERS), help="How to start the ranks (overrides the file).")
@click.option("--nproc", type=click.IntRange(min=1, max=4096), help="Ranks on this node (overrides the file).")
@click.option("--warmup-steps", type=click.IntRange(min=0, max=100_000), help="Steps before timing (default 3).")
@click.option("--steps", type=click.IntRange(min=1, max=1_000_000), help="Timed steps (default 20).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), help="Seconds before a hung job is "
              "stopped (default 900).")
@click.option("--trace/--no-trace", default=None, help="Also export a torch.profiler trace of 3 steps "
              "(Chrome/Perfetto format, readable by HolisticTraceAnalysis).")
@click.option("--run-to-completion", is_flag=True, help="Let the job finish instead of stopping it once the "
              "profile is complete.")
@click.option("--extrapolate/--no-extrapolate", default=True, show_default=True, help="Extrapolate the job to "
              "its target systems (target.systems of ai-ready.yaml, or --system) with the performance model and "
              "add it to the profile and the report.")
@click.option("--system", "systems", multiple=True, metavar="NAME", help="Extrapolate to this catalog system "
              "instead of the target's systems (repeatable; see `ai-ready systems list`).")
@click.pass_context
def profile(ctx: click.Context, directory: Path, command: tuple[str, ...], output_dir: Path, name: str | None,
            launcher: str | None, nproc: int | None, warmup_steps: int | None, steps: int | None,
            timeout_s: float | None, trace: bool | None, run_to_completion: bool, extrapolate: bool,
            systems: tuple[str, ...]) -> None:
    """Profile the training job in DIRECTORY (its ai-ready.yaml says how to run it), or the command after
    `--`: `ai-ready profile DIR -- python train.py --lr 3e-4`. The job's files are never edited."""
    from ai_ready.bench.ceiling import peak_ceiling
    from ai_ready.catalog import load_catalog
    from ai_ready.env.detect import detect
    from ai_ready.fileio import ensure_writable_dir
    from ai_ready.profile import merge
    from ai_ready.profile.runner import run_job

    if command and command[0] == "--":
        command = command[1:]
    spec = load_job(directory, list(command) or None,
                    dict(name=name, launcher=launcher, nproc=nproc, warmup_steps=warmup_steps, steps=steps,
                         timeout_s=timeout_s, trace=trace))
    catalog = load_catalog()
    if spec.target is not None and spec.target.software is not None:  # fails now, not after the job has run
        from ai_ready.model.software import preset

        try:
            preset(spec.target.software)
        except InputError as exc:
            raise InputError(f"{spec.source or 'ai-ready.yaml'}: target.{exc}") from None
    if extrapolate:
        for system in systems:  # a misspelt --system fails now, not after the job has run
            try:
                catalog.system(system)
            except InputError as exc:
                raise InputError(f"--system: {exc}") from None
    job_dir = ensure_writable_dir(output_dir / _slug(spec.name))
    rank_dir = job_dir / "ranks"
    if rank_dir.exists():
        shutil.rmtree(rank_dir)  # a previous profile of this job: its ranks must not mix with this one's
    quiet = bool(ctx.find_root().obj and ctx.find_root().obj.get("quiet"))
    note(f"profiling {spec.name}: {' '.join(spec.command)} ({spec.launcher}, {spec.nproc} rank(s)); "
         f"{spec.profile.warmup_steps} warm-up + {spec.profile.steps} steps, timeout {spec.profile.timeout_s:g} s")
    outcome = run_job(spec, rank_dir, run_to_completion=run_to_completion, quiet=quiet)
    with stop.deferred():  # a stop signal now waits until what was measured is written
        environment = detect()
        precision = merge.precision_of(outcome.ranks[0]) if outcome.ranks else "fp32"
        ceiling = peak_ceiling(catalog, catalog.system("local", environment), precision)
        document = merge.build_document(spec, outcome, new_meta(["ai-ready", *sys.argv[1:]], environment), ceiling)
        if extrapolate:
            _extrapolate(document, catalog, systems)
        result_path = document.save(job_dir / "profile.json")
        report_path = output_dir / f"{_slug(spec.name)}.html"
        from ai_ready.report import write_report

        write_report([document], report_path, title=f"ai-ready profile: {spec.name}", sources=[str(result_path)])
    _summarise(document, outcome.status, outcome.reason, outcome.stderr_tail)
    _summarise_extrapolation(document)
    note(f"profile: {result_path}")
    note(f"report: {report_path}")
    signum = stop.received()
    if signum is not None:  # the job was stopped with ai-ready: exit as the signal says (143, 130, 129)
        raise stop.stop_exception(signum)
    if outcome.status != "complete":
        raise SystemExit(EXIT_PROFILE_FAILED)


def _extrapolate(document: ResultDocument, catalog: Catalog, systems: tuple[str, ...]) -> None:
    """Store the job's extrapolation to its target systems (or `systems`) in meta.profile.extrapolation. Nothing
    it raises may cost the profile: a failure is stored as {"error": one line} and said in one warning line."""
    profile = document.meta.get("profile")
    if not isinstance(profile, dict):
        return
    target = profile.get("target") if isinstance(profile.get("target"), dict) else {}
    names = tuple(systems) or tuple(str(s) for s in target.get("systems") or ())
    if not names:
        note("ai-ready: no extrapolation: ai-ready.yaml names no target.systems (add them, or give --system NAME)")
        return
    note(f"extrapolating {profile.get('job', {}).get('name', 'the job')} to {', '.join(names)} "
         f"with the performance model")
    try:
        from ai_ready.model.from_profile import extrapolate_profile

        result = _json_safe(extrapolate_profile(document, catalog, systems=names))
    except Exception as exc:  # noqa: BLE001 - whatever the model raises, the profile is kept
        stop.reraise_if_stopping(exc)
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, InputError):
            message = f"{type(exc).__name__}: {message}"
        profile["extrapolation"] = {"error": message}
        note(f"ai-ready: warning: the extrapolation failed (the profile is kept): {message}")
        return
    profile["extrapolation"] = result


def _json_safe(value: Any) -> Any:
    """The extrapolation with every non-finite number as None: profile.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _summarise_extrapolation(document: ResultDocument) -> None:
    """One line per target system: layout, MFU, time, energy and cost to train, goodput."""
    if is_quiet():
        return
    profile = document.meta.get("profile")
    result = profile.get("extrapolation") if isinstance(profile, dict) else None
    if not isinstance(result, dict):
        return
    if result.get("error"):
        click.echo(f"at scale: not extrapolated: {result['error']}")
        return
    from ai_ready.report.sections.extrapolation import layout_text

    lines = []
    for entry in result.get("systems") or []:
        p = entry.get("prediction")
        if entry.get("error") or not p:
            lines.append(f"  {entry.get('system')}: not extrapolated: {entry.get('error')}")
            continue
        parts = [f"{_figure(p.get('gpus'), '{:,}')} of {_figure(p.get('gpus_available'), '{:,}')} GPUs "
                 f"{layout_text(p.get('parallelism'), p.get('kind', 'transformer'), full=False)}",
                 _figure(p.get("mfu"), "MFU {:.0%}")]
        run = p.get("run")
        if run:
            parts += [_duration(run.get("wall_days")), _figure(run.get("energy_mwh"), "{:,.0f} MWh"),
                      _figure(run.get("cost_eur"), "{:,.0f} EUR"), _figure(run.get("goodput"), "goodput {:.0%}")]
        else:
            parts.append(_figure(p.get("step_time_s"), "step {:.3g} s") + " (no target.tokens: no time to train)")
        lines.append(f"  {entry.get('system')}: " + ", ".join(parts))
    if lines:
        click.echo("at scale (performance model; the report's \"At scale\" section has the details):")
        click.echo("\n".join(lines))


def _figure(value: Any, form: str) -> str:
    """`value` in `form` ("{:,.0f} MWh"), or the form with "?" when the value is missing."""
    return form.format(value) if isinstance(value, (int, float)) else form.split("{")[0] + "?" + form.split("}")[-1]


def _duration(days: Any) -> str:
    if not isinstance(days, (int, float)):
        return "? days"
    return f"{days:,.0f} days" if days >= 10 else f"{days:.2g} days" if days >= 0.1 else f"{days * 24:.2g} hours"


def _slug(name: str) -> str:
    """A file-name-safe form of the job name (the name itself is kept, escaped, in the report)."""
    text = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-") or "job"
    return text[:80]


def _summarise(document: ResultDocument, status: str, reason: str | None, stderr_tail: str) -> None:
    """Step time, throughput, MFU and the breakdown of the lowest rank; the aggregate when several ran."""
    records = document.records
    main_rank = min((r.rank for r in records if not r.params.get("aggregate")), default=0)
    mine = [r for r in records if r.rank == main_rank and not r.params.get("aggregate")]
    by_metric: dict[str, Record] = {r.metric: r for r in mine if r.metric != "phase_time"}
    rows = []
    step = by_metric.get("step_time")
    if step is not None and step.stats:
        rows.append(("step time", f"{step.value * 1e3:.4g} ms",
                     f"p10–p90 {step.stats['p10'] * 1e3:.4g}–{step.stats['p90'] * 1e3:.4g} ms over "
                     f"{step.stats['n']} steps"))
    tput = by_metric.get("throughput")
    if tput is not None:
        rows.append(("throughput", f"{tput.value:.4g} {tput.unit}", f"{tput.params.get('per_step', 0):.4g} "
                     f"{tput.params.get('item')} per step"))
    for r in records:
        if r.params.get("aggregate"):
            rows.append((f"throughput, {r.params['ranks']} ranks", f"{r.value:.4g} {r.unit}",
                         f"slowest rank {r.params['slowest_rank']}"))
    flops = by_metric.get("model_flops")
    if flops is not None and flops.status == "ok":
        rows.append(("model FLOPs per step", f"{flops.value:.4g}", str(flops.params.get("source"))))
    mfu = by_metric.get("mfu")
    if mfu is not None:
        rows.append(("MFU", f"{mfu.value:.3g}%", mfu_peak_label(mfu.ceiling)))
    elif by_metric.get("model_tflops") is not None:
        rows.append(("model TFLOP/s", f"{by_metric['model_tflops'].value:.4g}", "no peak known for this device"))
    memory = by_metric.get("peak_memory")
    if memory is not None:
        rows.append(("peak memory", f"{memory.value:.3g} GB", str(memory.params.get("kind"))))
    exposed = by_metric.get("exposed_comm")
    if exposed is not None:
        rows.append(("exposed communication", f"{exposed.value * 1e3:.4g} ms",
                     f"{exposed.params['share_of_step']:.1%} of the step"))
    for r in mine:
        if r.metric == "phase_time" and r.params.get("share_of_step", 0) > 0:
            rows.append((f"  {r.params['phase']}", f"{statistics.fmean(r.samples) * 1e3:.4g} ms",
                         f"{r.params['share_of_step']:.0%} of the step (mean)"))
    if rows:
        print_table(f"profile: {records[0].case if records else ''} (rank {main_rank}, medians over timed steps)",
                    ["figure", "value", "notes"], rows)
    advice = next((w for r in mine if r.metric == "step_time" for w in r.warnings if "ai_ready.step()" in w), None)
    if advice:
        note(f"ai-ready: {advice}")
    if status != "complete":
        note(f"ai-ready: profile {status}: {reason}")
        tail = [line for line in stderr_tail.strip().splitlines() if line.strip()][-8:]
        if tail:
            note("last lines of the job's stderr:\n  " + "\n  ".join(tail))
