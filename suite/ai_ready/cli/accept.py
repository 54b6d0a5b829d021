"""`ai-ready accept`: the nightly system acceptance run, and `ai-ready accept baseline`.

    ai-ready accept --system NAME [--suite quick|full|FILE.yaml] [--db URL] [--junit FILE.xml]
                    [--report FILE.html] [--baseline NAME] [--prometheus FILE.prom] [--results DIR]
    ai-ready accept baseline --from-db URL --system NAME --nights N [--suite ...] [-o FILE.yaml] [--name NAME]

Runs the suite's benchmarks, judges every metric on every node (reference, history, change point,
fleet outliers), stores the run in the history database, and writes JUnit XML, a Prometheus text file
and an HTML trend report. Exit 0 when everything passes, 1 on a failure, regression or outlier or an
output the system refused to write (a full disk; one line naming the file), 2 on a usage or setup error (bad
suite, database URL or system, a history database or output place that cannot be written; one line, no
traceback), found before anything is measured. A --results folder holding an earlier run's files is never
overwritten: the run goes into a new subfolder named after its start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ai_ready import __version__
from ai_ready.cli.console import is_quiet, note, print_table
from ai_ready.errors import InputError
from ai_ready.fileio import atomic_write_text, check_writable_file, ensure_writable_dir, write_errors
from ai_ready.stop import Stopped, deferred, received
from ai_ready.stop import signal_name as stop_signal_name

EXIT_FAILED = 1
DEFAULT_OUTPUT_DIR = Path("reports")
PROMETHEUS_FILE = "accept.prom"
SUMMARY_FILE = "accept.json"
RUN_OPTIONS = ("system_name", "suite_choice", "db", "junit", "report", "baseline", "prometheus", "results")


@click.group("accept", invoke_without_command=True)
@click.option("--system", "system_name", metavar="NAME[:PARTITION]",
              help="Catalog system this runs on (see 'ai-ready systems list'); 'local' is this machine.")
@click.option("--suite", "suite_choice", default="quick", show_default=True, metavar="quick|full|FILE.yaml",
              help="quick: one node in a few minutes; full: for real nights; or your own suite file.")
@click.option("--db", default=None, metavar="URL",
              help="History database: sqlite:///PATH or postgresql://USER@HOST/DB "
                   "[default: sqlite:///reports/accept-history.sqlite].")
@click.option("--junit", type=click.Path(path_type=Path), metavar="FILE.xml",
              help="Write JUnit XML: one test case per metric and node.")
@click.option("--report", type=click.Path(path_type=Path), metavar="FILE.html",
              help="Write the HTML trend report: history charts per metric with the references.")
@click.option("--baseline", metavar="NAME|FILE.yaml",
              help="Judge against a baseline written by 'ai-ready accept baseline' (a file, or a name stored in --db).")
@click.option("--prometheus", type=click.Path(path_type=Path), metavar="FILE.prom",
              help="Prometheus text file for dashboards [default: accept.prom in the results folder].")
@click.option("--results", type=click.Path(path_type=Path), metavar="DIR",
              help="Folder for the benchmarks' result files and logs. An earlier run's files in it are never "
                   "overwritten: a fixed --results (a nightly job) gets each later run in a new subfolder named "
                   "after its start, DIR/YYYYMMDD-HHMMSS [default: reports/accept-SYSTEM-TIME].")
@click.pass_context
def accept(ctx: click.Context, system_name: str | None, suite_choice: str, db: str | None, junit: Path | None,
           report: Path | None, baseline: str | None, prometheus: Path | None, results: Path | None) -> None:
    """Nightly system acceptance: run a suite, judge every metric on every node against its reference,
    its history and the fleet, keep the run in a history database, write JUnit, Prometheus and HTML.
    Exit 0 all pass, 1 a failure or regression, 2 a usage or setup error."""
    if ctx.invoked_subcommand is not None:
        given = [name for name in RUN_OPTIONS if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"options of the acceptance run ({', '.join('--' + _flag(n) for n in given)}) do "
                                   f"not apply to 'accept {ctx.invoked_subcommand}'; give that command its own options")
        return
    if not system_name:
        raise click.UsageError("Missing option '--system' (a catalog system such as 'local'; see "
                               "'ai-ready systems list')")
    code = run_acceptance(system_name, suite_choice, db, junit, report, baseline, prometheus, results)
    if code:
        raise SystemExit(code)


def _flag(name: str) -> str:
    return {"system_name": "system", "suite_choice": "suite"}.get(name, name)


def _default_db() -> str:
    from ai_ready.accept.history import DEFAULT_URL

    return DEFAULT_URL


@dataclass
class _Run:
    """What one acceptance run works with, all checked before anything is measured."""

    target: Any
    suite: Any
    engine: Any
    references: dict[str, Any] | None
    results_dir: Path
    environment: dict[str, Any]
    started: datetime
    host: str = field(default_factory=socket.gethostname)


def run_acceptance(system_name: str, suite_choice: str, db: str | None, junit: Path | None, report: Path | None,
                   baseline: str | None, prometheus: Path | None, results: Path | None) -> int:
    """The whole run; returns the exit code (0 or 1). Setup problems raise InputError before anything runs."""
    from ai_ready.accept.history import store_run

    run = _prepare(system_name, suite_choice, db, baseline, results, (junit, report, prometheus))
    prometheus = prometheus or run.results_dir / PROMETHEUS_FILE
    try:
        benchmarks = _measure(run)
        verdict, row = _judge(run, benchmarks, baseline)
        _write_outputs(verdict, row, run.suite, run.target, benchmarks, junit, prometheus, run.results_dir)
        store_run(run.engine, row)
        if report is not None:
            _write_report(run, verdict, row.uid, report)
    finally:
        run.engine.dispose()
    _summarise(verdict, run.target.label(), run.suite.name, junit, report, prometheus)
    return 0 if verdict.passed else EXIT_FAILED


def _prepare(system_name: str, suite_choice: str, db: str | None, baseline: str | None, results: Path | None,
             outputs: tuple[Path | None, Path | None, Path | None]) -> _Run:
    """Check every input (outputs, system, suite, database opened for writing, baseline, results folder), in
    that order, so a problem with any of them is found before anything is measured."""
    from ai_ready.accept.history import open_history
    from ai_ready.env.detect import detect

    started = datetime.now(timezone.utc)
    for option, path in zip(("--junit", "--report", "--prometheus"), outputs):
        _check_output(option, path)
    environment = detect()
    target, suite = _target_and_suite(system_name, suite_choice, environment)
    engine = open_history(db or _default_db())
    try:
        references = _baseline_references(baseline, engine, target) if baseline else None
        results_dir = _results_dir(results, suite, target.system, started)
    except BaseException:
        engine.dispose()
        raise
    return _Run(target, suite, engine, references, results_dir, environment, started)


def _measure(run: _Run) -> list[Any]:
    """Every benchmark of the suite, each writing only inside a scratch folder removed afterwards."""
    from ai_ready.accept.run import run_suite

    scratch_root = _scratch_root(run.suite.scratch_for(run.target), run.results_dir)
    kind = "cuda" if (run.environment.get("device") or {}).get("kind") == "cuda" else "cpu"
    note(f"accept: {run.target.label()} with suite {run.suite.name} ({len(run.suite.benchmarks)} benchmarks); "
         f"results in {run.results_dir}")
    done: list[Any] = []
    try:
        return run_suite(run.suite, run.target, kind, run.results_dir, scratch_root, note, done)
    except (Stopped, KeyboardInterrupt):
        with deferred():
            _write_stopped(run, done)
        raise
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


def _write_stopped(run: _Run, done: list[Any]) -> None:
    """A run stopped part-way (a batch time limit, Ctrl-C): the summary says so and which benchmarks finished,
    whose result files stay in the results folder. The night is neither judged nor stored in the history: a
    partial night would read as missing metrics, and a baseline drawn from it would be skewed."""
    signal_name = stop_signal_name(received() or 2)
    summary = {"system": run.target.label(), "suite": run.suite.name, "outcome": "stopped", "stopped_by": signal_name,
               "started": run.started.isoformat(timespec="seconds"),
               "benchmarks": [{"name": r.spec.name, "status": r.status, "reason": r.reason,
                               "seconds": round(r.seconds, 3),
                               "result_file": str(r.result_file) if r.result_file else None} for r in done],
               "stored_in_history": False}
    path = atomic_write_text(run.results_dir / SUMMARY_FILE, json.dumps(summary, indent=1, default=str) + "\n",
                             what="run summary")
    click.echo(f"accept: stopped by {signal_name} after {len(done)} of {len(run.suite.benchmarks)} benchmarks; "
               f"their files are in {run.results_dir} ({path.name}); the night is not judged and not stored in "
               "the history", err=True)


def _judge(run: _Run, benchmarks: list[Any], baseline: str | None) -> tuple[Any, Any]:
    """The verdict of every case, and the run as it is stored in the history."""
    from ai_ready.accept.history import RunRow, load_past
    from ai_ready.accept.verdict import judge

    past = load_past(run.engine, run.target.system, run.target.partition, run.suite.name)
    verdict = judge(run.suite, run.target, benchmarks, past, run.host, run.references)
    records = [dict(r.to_dict(), suite_entry=b.spec.name) for b in benchmarks for r in b.records]
    row = RunRow(system=run.target.system, partition=run.target.partition, gpu_model=run.target.gpu_model,
                 suite=run.suite.name, started=run.started, finished=datetime.now(timezone.utc),
                 nodes=sorted({r["host"] for r in records if r.get("host")}) or [run.host],
                 versions=_versions(run.environment), outcome="pass" if verdict.passed else "fail", records=records,
                 verdicts=[c.to_row() for c in verdict.cases],
                 meta=_run_meta(run.suite, run.results_dir, benchmarks, baseline, run.host))
    return verdict, row


def _write_report(run: _Run, verdict: Any, uid: str, report: Path) -> None:
    """The trend report, from the stored history (tonight drawn from the verdict just stored)."""
    from ai_ready.accept.history import describe_url, load_past
    from ai_ready.accept.trend import TREND_NIGHTS, build_trend, write_trend

    history = load_past(run.engine, run.target.system, run.target.partition, run.suite.name, TREND_NIGHTS,
                        before_uid=uid)
    descriptions = {m.name: m.description for m in run.suite.metrics()}
    page = build_trend(verdict, history, run.target.label(), run.suite.name, describe_url(run.engine),
                       str(run.results_dir), descriptions)
    with write_errors("report", report):
        write_trend(report, page)


def _target_and_suite(system_name: str, suite_choice: str, environment: dict[str, Any]) -> tuple[Any, Any]:
    from ai_ready.accept.suite import NAME_PATTERN, Target, load_suite
    from ai_ready.catalog import load_catalog

    catalog = load_catalog()
    name, _, partition = system_name.partition(":")
    if name not in catalog.systems:
        raise InputError(f"--system {system_name}: unknown system '{name}'; accepted: "
                         f"{', '.join(sorted(catalog.systems))} (optionally NAME:PARTITION)")
    if partition and not NAME_PATTERN.match(partition):
        raise InputError(f"--system {system_name}: partition '{partition}' is not a usable name; accepted: letters, "
                         "digits, '.', '_' and '-'")
    device = environment.get("device") or {}
    gpu_model = ""
    if device.get("kind") == "cuda":
        matched = catalog.match_accelerator(str(device.get("name") or ""))
        system = catalog.system(name, environment if name == "local" else None)
        gpu_model = matched.name if matched else system.accelerator.name
    from ai_ready.catalog.local import LOCAL_CPU, UNKNOWN_GPU

    suite = load_suite(suite_choice, known_systems=list(catalog.systems),
                       known_accelerators=[*catalog.accelerators, LOCAL_CPU, UNKNOWN_GPU])
    return Target(system=name, partition=partition, gpu_model=gpu_model), suite


def _check_output(option: str, path: Path | None) -> None:
    if path is not None:
        check_writable_file(path, option)


def _results_dir(results: Path | None, suite: Any, system: str, started: datetime) -> Path:
    """A folder this run has to itself, so the files an earlier run stored in the history still hold that run:
    --results as given unless it holds an earlier run's files, then a new subfolder named after this run's
    start; without --results, a new reports/accept-SYSTEM-TIME."""
    stamp = f"{started.astimezone():%Y%m%d-%H%M%S}"
    if results is None:
        return _new_folder(DEFAULT_OUTPUT_DIR.absolute(), f"accept-{system}-{stamp}")
    folder = ensure_writable_dir(results.absolute(), option="--results")
    earlier = sorted(name for name in _run_files(suite) if (folder / name).exists())
    if not earlier:
        return folder
    fresh = _new_folder(folder, stamp)
    note(f"accept: --results {folder} holds an earlier run ({', '.join(earlier)}); this run writes into {fresh}")
    return fresh


def _run_files(suite: Any) -> set[str]:
    """The files a run writes straight into its results folder."""
    return {SUMMARY_FILE, PROMETHEUS_FILE} | {f"{b.name}{ext}" for b in suite.benchmarks for ext in (".json", ".log")}


def _new_folder(parent: Path, name: str) -> Path:
    """parent/name, else name-2, name-3, ...: created here, so no other run (even one started in the same
    second) shares it."""
    ensure_writable_dir(parent, option="--results")
    attempt = 1
    while True:
        folder = parent / (name if attempt == 1 else f"{name}-{attempt}")
        with write_errors("results folder", folder):
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                attempt += 1


def _scratch_root(configured: Path | None, results_dir: Path) -> Path:
    """Where benchmarks write: the suite's scratch folder for this system, else the results folder;
    always a new subfolder of it that this run owns."""
    from ai_ready.bench.io.scratch import check_path

    parent = check_path(configured) if configured is not None else results_dir.resolve()
    root = parent / f"accept-scratch-{socket.gethostname()}-{os.getpid()}"
    root.mkdir(mode=0o700, exist_ok=False)
    return root


def _baseline_references(choice: str, engine: Any, target: Any) -> dict[str, Any]:
    from ai_ready.accept.baseline import parse_baseline, read_baseline_file
    from ai_ready.accept.history import baseline_names, load_baseline

    path = Path(choice)
    if path.is_file():
        return read_baseline_file(path, target)
    stored = load_baseline(engine, choice)
    if stored is None:
        known = baseline_names(engine)
        raise InputError(f"--baseline {choice}: neither a file nor a baseline stored in the database; accepted: a "
                         "baseline file" + (f" or one of {', '.join(known)}" if known else
                                            " (the database holds no named baselines)"))
    return parse_baseline(stored, choice, target)


def _versions(environment: dict[str, Any]) -> dict[str, Any]:
    versions = dict(environment.get("versions") or {})
    versions["ai_ready"] = __version__
    device = environment.get("device") or {}
    for key in ("driver", "cuda", "name"):
        if device.get(key):
            versions[f"device_{key}"] = device[key]
    return versions


def _run_meta(suite: Any, results_dir: Path, runs: list[Any], baseline: str | None, host: str) -> dict[str, Any]:
    return {"suite_source": suite.source, "results": str(results_dir.resolve()), "host": host,
            "command": ["ai-ready", *sys.argv[1:]], "baseline": baseline,
            "benchmarks": [{"name": r.spec.name, "status": r.status, "reason": r.reason, "seconds": round(r.seconds, 3),
                            "argv": r.argv, "result_file": str(r.result_file) if r.result_file else None}
                           for r in runs]}


def _write_outputs(verdict: Any, row: Any, suite: Any, target: Any, runs: list[Any], junit: Path | None,
                   prometheus: Path, results_dir: Path) -> None:
    """JUnit, Prometheus and the run's summary JSON, each atomically, before the database write (so CI
    still gets its verdict if the database is unreachable at the end)."""
    from ai_ready.accept.junit import build_junit, write_junit
    from ai_ready.accept.prometheus import write_prometheus

    if junit is not None:
        properties = {"system": target.label(), "suite": suite.name, "gpu_model": target.gpu_model or "none",
                      "nodes": ",".join(row.nodes), "started": row.started.isoformat(timespec="seconds"),
                      "ai_ready": __version__, "run_uid": row.uid}
        seconds = {r.spec.name: r.seconds for r in runs}
        document = build_junit(verdict, suite.name, target.label(), properties, seconds)
        with write_errors("JUnit file", junit):
            write_junit(junit, document)
    with write_errors("Prometheus file", prometheus):
        write_prometheus(prometheus, verdict, target.label(), suite.name, row.finished)
    summary = {"system": target.label(), "suite": suite.name, "run_uid": row.uid, "outcome": row.outcome,
               "started": row.started.isoformat(timespec="seconds"), "nodes": row.nodes,
               "counts": verdict.counts(), "cases": row.verdicts, "benchmarks": row.meta["benchmarks"]}
    atomic_write_text(results_dir / SUMMARY_FILE, json.dumps(summary, indent=1, default=str) + "\n",
                      what="run summary")


def _summarise(verdict: Any, system: str, suite: str, junit: Path | None, report: Path | None,
               prometheus: Path) -> None:
    if not is_quiet():
        rows = []
        for case in verdict.cases:
            value = f"{case.value:.4g}" if case.value is not None else ""
            reference = f"{case.reference.value:.4g}" if case.reference else ""
            rows.append((case.name, case.node, value, case.unit, reference, case.outcome.upper()
                         if case.failing else case.outcome, _short(case.message())))
        print_table(f"acceptance: {system}, suite {suite}", ["case", "node", "figure", "unit", "reference",
                                                               "verdict", "why"], rows)
    counts = verdict.counts()
    words = ", ".join(f"{counts[k]} {k}" for k in ("pass", "fail", "regression", "outlier", "skipped") if counts.get(k))
    outputs = [f"{label}: {path}" for label, path in (("junit", junit), ("report", report), ("prometheus", prometheus))
               if path is not None]
    click.echo(f"accept: {'PASS' if verdict.passed else 'FAIL'} ({words}); " + "; ".join(outputs), err=True)
    for case in verdict.failed:
        click.echo(f"accept: {case.outcome}: {case.name} on {case.node}: {case.message()}", err=True)


def _short(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- baseline

@accept.command("baseline")
@click.option("--from-db", "db", required=True, metavar="URL", help="History database to read.")
@click.option("--system", "system_name", required=True, metavar="NAME[:PARTITION]", help="System whose history to use.")
@click.option("--nights", type=click.IntRange(min=3, max=100_000), required=True, metavar="N",
              help="Good nights per metric to take the reference from (the most recent ones).")
@click.option("--suite", "suite_choice", default="quick", show_default=True, metavar="quick|full|FILE.yaml",
              help="Suite whose history and metrics to use.")
@click.option("-o", "--output", type=click.Path(path_type=Path), metavar="FILE.yaml",
              help="Write the baseline here (else print it).")
@click.option("--name", metavar="NAME", help="Also store it in the database under NAME, for 'accept --baseline NAME'.")
def accept_baseline(db: str, system_name: str, nights: int, suite_choice: str, output: Path | None,
                    name: str | None) -> None:
    """Write reference values from good history: per metric the median of its last N good nights (the
    metric passed on every node), with a tolerance from their spread on the worse side."""
    from ai_ready.accept.baseline import dump_baseline, lookback, make_baseline
    from ai_ready.accept.history import describe_url, load_past, open_history, store_baseline, suites_of
    from ai_ready.accept.suite import NAME_PATTERN

    if name is not None and not NAME_PATTERN.match(name):
        raise InputError(f"--name {name}: accepted: letters, digits, '.', '_' and '-'")
    _check_output("-o", output)
    target, suite = _target_and_suite(system_name, suite_choice, {})
    engine = open_history(db, write=name is not None)
    try:
        past = load_past(engine, target.system, target.partition, suite.name, lookback(nights))
        if not past.runs:
            stored = suites_of(engine, target.system, target.partition)
            raise InputError(f"--from-db {describe_url(engine)} holds no runs of {target.label()} with suite "
                             f"{suite.name}"
                             + (f"; it has suites {', '.join(stored)} for this system" if stored else ""))
        label = name or (output.stem if output else f"{target.system}-{suite.name}")
        document, notes = make_baseline(past, suite, target, nights, label, describe_url(engine))
        if not document["references"]:
            raise InputError(f"no metric of suite {suite.name} has enough good nights in {describe_url(engine)} for a "
                             f"baseline ({'; '.join(notes)})")
        text = dump_baseline(document)
        if name is not None:
            store_baseline(engine, name, target.system, text)
    finally:
        engine.dispose()
    for line in notes:
        note(f"baseline: {line}")
    if output is not None:
        atomic_write_text(output, text, what="baseline file")
        note(f"baseline: {len(document['references'])} references from up to {nights} good nights: {output}"
             + (f" (stored in the database as '{name}')" if name else ""))
    elif name is not None:
        note(f"baseline: {len(document['references'])} references stored in the database as '{name}'")
    else:
        click.echo(text, nl=False)
