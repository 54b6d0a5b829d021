"""`ai-ready validate`: the analytic model against published large-scale training runs.

Predicts every case of the validation set shipped with the package
(``ai_ready/model/data/published_runs.yaml``), prints predicted next to published with the
signed error of each, then the median and the largest absolute error against the target.
Exit 0 when the model meets the target, 1 when it misses it, 2 on bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ai_ready.catalog import load_catalog
from ai_ready.cli.console import is_quiet, print_table
from ai_ready.errors import InputError
from ai_ready.fileio import atomic_write_text
from ai_ready.model.published import OUT_OF_SAMPLE_BAND, SECONDS, CaseResult, ValidationReport, load_published
from ai_ready.model.published import validate as run_validation

EXIT_MISSED_TARGET = 1
PARALLELISM_FIELDS = ("tp", "pp", "dp", "cp", "ep", "microbatch", "interleave", "recompute", "zero",
                      "sequence_parallel")


def layout(result: CaseResult) -> str:
    """The chosen layout in one short phrase: ``tp8 pp8 dp1 mb1 v3 selective``."""
    p = result.parallelism
    words = [f"tp{p.tp}", f"pp{p.pp}", f"dp{p.dp}"]
    if p.cp > 1:
        words.append(f"cp{p.cp}")
    if p.ep > 1:
        words.append(f"ep{p.ep}")
    words += [f"mb{p.microbatch}", f"v{p.interleave}", p.recompute]
    if p.sequence_parallel:
        words.append("sp")
    if p.zero:
        words.append(f"zero{p.zero}")
    return " ".join(words)


def _figure(value: float, metric: str) -> str:
    return f"{value:.3f}" if metric == SECONDS else f"{value:.1f}"


def report_json(report: ValidationReport) -> dict[str, Any]:
    """The report as one JSON-ready object: tables (with their sources), cases and the summary."""
    tables = [{"id": t.id, "title": t.title, "role": t.role, "source": dict(t.source), "system": t.system,
               "metric": t.metric,
               "unit": t.unit, "software": {"attention": t.software.attention,
                                            "overlap_grad_reduce": t.software.overlap_grad_reduce,
                                            "overlap_param_gather": t.software.overlap_param_gather,
                                            "tp_overlap": t.software.tp_overlap}}
              for t in report.tables]
    cases = []
    for r in report.cases:
        c = r.case
        cases.append({"table": c.table, "name": c.name, "variant": c.variant, "metric": c.metric, "unit": c.unit,
                      "system": c.system, "gpus": c.gpus, "nodes": r.nodes,
                      "published": r.published, "predicted": r.predicted, "error": r.error,
                      "parallelism": {key: getattr(r.parallelism, key) for key in PARALLELISM_FIELDS},
                      "step_time_s": r.step.step_time_s, "fits_memory": r.step.fits_memory})
    held = report.out_of_sample.cases if report.out_of_sample else 0
    summary = {"cases": len(report.cases) - held, "median_abs_error": report.median_abs_error,
               "max_abs_error": report.max_abs_error, "target_median": report.target_median,
               "target_max": report.target_max, "within_target": report.within_target,
               "out_of_sample": None if report.out_of_sample is None else {
                   "cases": report.out_of_sample.cases, "median_abs_error": report.out_of_sample.median_abs_error,
                   "max_abs_error": report.out_of_sample.max_abs_error,
                   "within_band": report.out_of_sample.within_band, "band": OUT_OF_SAMPLE_BAND}}
    return {"tables": tables, "cases": cases, "summary": summary}


def _print_human(report: ValidationReport) -> None:
    if is_quiet():
        return
    for table in report.tables:
        results = [r for r in report.cases if r.case.table == table.id]
        rows = [(r.case.name, r.case.variant, r.case.gpus, layout(r), _figure(r.published, r.case.metric),
                 _figure(r.predicted, r.case.metric), f"{r.error:+.1%}") for r in results]
        print_table(f"{table.id}: {table.metric} ({table.unit})",
                    ["name", "variant", "GPUs", "layout chosen", "published", "predicted", "error"], rows)
        per_node = results[0].gpus_per_node if results else 0
        click.echo(f"  source: {table.citation()}")
        click.echo(f"  system: {table.system} nodes of {per_node} GPUs, as many as each row's GPUs need; "
                   f"software: attention {table.software.attention}, "
                   f"overlap_grad_reduce {str(table.software.overlap_grad_reduce).lower()}, "
                   f"overlap_param_gather {str(table.software.overlap_param_gather).lower()}, "
                   f"tp_overlap {table.software.tp_overlap:g}")
        click.echo("")


def _summary_line(report: ValidationReport) -> str:
    held = report.out_of_sample
    judged = len(report.cases) - (held.cases if held else 0)
    line = (f"median |error| {report.median_abs_error:.1%} (target <= {report.target_median:.0%}), "
            f"max {report.max_abs_error:.1%} (target <= {report.target_max:.0%}) over {judged} cases")
    if held is None:
        return line
    return (f"in sample (the tables the model was developed against): {line}\n"
            f"out of sample (tables never used to choose a constant): median |error| {held.median_abs_error:.1%}, "
            f"max {held.max_abs_error:.1%}, {held.within_band:.0%} of {held.cases} cases within "
            f"{OUT_OF_SAMPLE_BAND:.0%}")


def _write(path: Path, document: dict[str, Any]) -> None:
    if path.is_dir():
        raise InputError(f"-o {path}: is a folder; accepted: a file path such as validate.json")
    try:
        atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        raise InputError(f"-o {path}: cannot write the result ({exc.strerror or exc})") from None


@click.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: every case and the summary.")
@click.option("--table", "tables", multiple=True, metavar="ID",
              help="Only this table of the validation set (repeatable).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the JSON object to this file.")
def validate(as_json: bool, tables: tuple[str, ...], output: Path | None) -> None:
    """Predict published large-scale training runs with the analytic model and report the errors.

    Every row of the validation set (Narayanan et al. 2021, Korthikanti et al. 2022, Megatron-Core's
    H100 README) is predicted with its published layout; micro-batch size and interleaving are
    chosen by the model where the source does not publish them. Each run spans as many catalog
    nodes as its row's GPU count needs. Target: median |error| <= 8%, every case <= 15%.
    Exit 0 when met, 1 when missed, 2 on bad input.
    """
    known = [table.id for table in load_published().tables]
    for table_id in tables:
        if table_id not in known:
            raise InputError(f"--table {table_id}: no such table in the validation set; accepted: {', '.join(known)}")
    report = run_validation(load_catalog(), tables=list(tables) or None)
    document = report_json(report)
    if output is not None:
        _write(output, document)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        _print_human(report)
        click.echo(_summary_line(report))
    if output is not None and not as_json:
        click.echo(f"results: {output}", err=True)
    if not report.within_target:
        click.echo("ai-ready: the model misses its target: " + "; ".join(report.misses()), err=True)
        raise SystemExit(EXIT_MISSED_TARGET)
