"""`ai-ready validate`: the analytic model against published large-scale training runs.

Predicts every case of the validation set shipped with the package
(``ai_ready/model/data/published_runs.yaml``) twice: with each stack's kernel efficiency fitted on
every source (in sample) and fitted without the case's own source (leave one source out,
:mod:`ai_ready.model.fit`). Prints both next to the published figure, the fitted efficiencies, and
the summaries; the target is judged on the cross-validated errors. Exit 0 when the model meets the
target, 1 when it misses it, 2 on bad input.
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
from ai_ready.model.fit import ValidationReport, fit_document
from ai_ready.model.fit import validate as run_validation
from ai_ready.model.published import OUT_OF_SAMPLE_BAND, SECONDS, CaseResult, ErrorSummary, load_published
from ai_ready.model.software import fitted

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


def _summary(summary: ErrorSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {"cases": summary.cases, "median_abs_error": summary.median_abs_error, "max_abs_error": summary.max_abs_error,
            "within_band": summary.within_band, "band": OUT_OF_SAMPLE_BAND}


def report_json(report: ValidationReport) -> dict[str, Any]:
    """The report as one JSON-ready object: tables (with their sources), cases and the summary."""
    tables = [{"id": t.id, "title": t.title, "role": t.role, "source_id": t.source_id, "source": dict(t.source),
               "system": t.system, "metric": t.metric, "unit": t.unit, "software_preset": t.preset,
               "software": {"attention": t.software.attention, "overlap_grad_reduce": t.software.overlap_grad_reduce,
                            "overlap_param_gather": t.software.overlap_param_gather,
                            "tp_overlap": t.software.tp_overlap, "grad_reduce_bytes": t.software.grad_reduce_bytes,
                            "interleaved_pipeline": t.software.interleaved_pipeline}}
              for t in report.tables]
    cases = []
    for r, left in zip(report.cases, report.cross_validated):
        c = r.case
        cases.append({"table": c.table, "source_id": c.source_id, "name": c.name, "variant": c.variant,
                      "metric": c.metric, "unit": c.unit, "system": c.system, "gpus": c.gpus, "nodes": r.nodes,
                      "published": r.published, "predicted": r.predicted, "error": r.error,
                      "efficiency": r.step.software.efficiency,
                      "cross_validated": {"predicted": left.predicted, "error": left.error,
                                          "efficiency": left.step.software.efficiency},
                      "parallelism": {key: getattr(r.parallelism, key) for key in PARALLELISM_FIELDS},
                      "step_time_s": r.step.step_time_s, "fits_memory": r.step.fits_memory})
    summary = {
        "in_sample": _summary(report.in_sample),
        "cross_validated": {**(_summary(report.loso) or {}), "method": "leave one source out",
                            "sources": len(report.source_fits),
                            "by_role": {role: _summary(s) for role, s in report.loso_by_role.items()}},
        "target_median": report.target_median, "target_within": report.target_within,
        "within_target": report.within_target,
        "stack_efficiencies": {name: {"efficiency": e.efficiency, "basis": e.basis, "sources": list(e.sources)}
                               for name, e in report.efficiencies.items()},
        "source_efficiencies": {s: {"preset": f.preset, "cases": f.cases, "efficiency": f.efficiency}
                                for s, f in report.source_fits.items()},
        "step_time_band": {"low": report.band[0], "high": report.band[1], "coverage": report.band_coverage,
                           "meaning": "published over predicted step time, cross-validated cases"},
    }
    return {"tables": tables, "cases": cases, "summary": summary}


def _print_human(report: ValidationReport) -> None:
    if is_quiet():
        return
    for table in report.tables:
        pairs = [(r, left) for r, left in zip(report.cases, report.cross_validated) if r.case.table == table.id]
        rows = [(r.case.name, r.case.variant, r.case.gpus, layout(r), _figure(r.published, r.case.metric),
                 _figure(r.predicted, r.case.metric), f"{r.error:+.1%}", _figure(left.predicted, r.case.metric),
                 f"{left.error:+.1%}") for r, left in pairs]
        print_table(f"{table.id}: {table.metric} ({table.unit})",
                    ["name", "variant", "GPUs", "layout chosen", "published", "predicted", "error",
                     "source left out", "error"], rows)
        per_node = pairs[0][0].gpus_per_node if pairs else 0
        sw = table.software
        click.echo(f"  source: {table.citation()}")
        click.echo(f"  system: {table.system} nodes of {per_node} GPUs, as many as each row's GPUs need; "
                   f"software: preset {table.preset} (attention {sw.attention}, "
                   f"overlap_grad_reduce {str(sw.overlap_grad_reduce).lower()}, "
                   f"overlap_param_gather {str(sw.overlap_param_gather).lower()}, tp_overlap {sw.tp_overlap:g}, "
                   f"grad_reduce_bytes {sw.grad_reduce_bytes}); source id {table.source_id}")
        click.echo("")


def _summary_line(report: ValidationReport) -> str:
    lines = ["stack kernel efficiencies (the one constant fitted on these runs):"]
    for name, e in report.efficiencies.items():
        lines.append(f"  {name}: {e.efficiency:.3f}, {e.basis}")
    s, x = report.in_sample, report.loso
    lines.append(f"in sample (every stack fitted on all {len(report.source_fits)} sources): median |error| "
                 f"{s.median_abs_error:.1%}, max {s.max_abs_error:.1%}, {s.within_band:.0%} of {s.cases} cases within "
                 f"{OUT_OF_SAMPLE_BAND:.0%}")
    lines.append(f"leave one source out (each source predicted from the others' fits): median |error| "
                 f"{x.median_abs_error:.1%} (target <= {report.target_median:.0%}), max {x.max_abs_error:.1%}, "
                 f"{x.within_band:.0%} of {x.cases} cases within {OUT_OF_SAMPLE_BAND:.0%} "
                 f"(target >= {report.target_within:.0%})")
    for role, summary in report.loso_by_role.items():
        lines.append(f"  {role} tables: median |error| {summary.median_abs_error:.1%}, max "
                     f"{summary.max_abs_error:.1%}, {summary.within_band:.0%} of {summary.cases} within "
                     f"{OUT_OF_SAMPLE_BAND:.0%}")
    low, high = report.band
    lines.append(f"step-time band of a prediction: x{low:.2f} to x{high:.2f} (published over predicted step time, "
                 f"10th to 90th percentile of the cross-validated cases; holds {report.band_coverage:.0%})")
    return "\n".join(lines)


def stale_fit(report: ValidationReport) -> bool:
    """Whether data/stack_fit.yaml differs from the fit just made (a source or a term changed since)."""
    return fitted() != fit_document(report)


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

    Every row of the validation set (seven sources: Megatron-LM, Megatron-Core, BLOOM, OPT,
    torchtitan, MosaicML MPT runs) is predicted with its published layout and stack; micro-batch size
    and interleaving are chosen by the model where the source does not publish them. Each stack's
    kernel efficiency is fitted on the runs; every source is also predicted with the efficiencies
    fitted without it. Target, on those cross-validated errors: median |error| <= 10% and at least
    80% of cases within 25%. Exit 0 when met, 1 when missed, 2 on bad input.
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
    if not tables and stale_fit(report):
        click.echo("ai-ready: data/stack_fit.yaml does not match this fit (a table or a model term changed): "
                   "predictions use the stored efficiencies until `python -m ai_ready.model.fit` rewrites it", err=True)
    if not report.within_target:
        click.echo("ai-ready: the model misses its target: " + "; ".join(report.misses()), err=True)
        raise SystemExit(EXIT_MISSED_TARGET)
