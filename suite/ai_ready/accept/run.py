"""Run a suite's benchmarks, each as its own `ai-ready` process, and collect their result documents.

A separate process per benchmark keeps one benchmark's crash, hang, MPI or torch.distributed state
away from the others and from the acceptance run itself; its log goes to ``<results>/<name>.log`` and
its result document to ``<results>/<name>.json`` (written atomically by the benchmark, after every
case). A benchmark that fails, times out or cannot start becomes failed records with the reason, and
the next benchmark still runs. Each benchmark writes only inside its own scratch folder, removed after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ai_ready
from ai_ready import proctree
from ai_ready.accept.suite import BenchmarkSpec, Suite, Target
from ai_ready.errors import InputError
from ai_ready.records import Record, load_results

COMPLETE, FAILED, SKIPPED = "complete", "failed", "skipped"
#: Seconds a benchmark gets to end after SIGTERM (it removes its scratch files) before SIGKILL.
TERMINATE_GRACE_S = 20.0
#: Exit code with which a benchmark says its options were wrong (ai_ready.errors.InputError).
EXIT_SETUP = 2


@dataclass
class BenchmarkRun:
    """What became of one benchmark entry."""

    spec: BenchmarkSpec
    status: str
    records: list[Record] = field(default_factory=list)
    reason: str | None = None
    result_file: Path | None = None
    log_file: Path | None = None
    seconds: float = 0.0
    returncode: int | None = None
    argv: list[str] = field(default_factory=list)


def run_suite(suite: Suite, target: Target, device_kind: str, results_dir: Path, scratch_root: Path,
              note: Callable[[str], None] = lambda _: None,
              done: list[BenchmarkRun] | None = None) -> list[BenchmarkRun]:
    """Every benchmark of `suite` in order; `device_kind` is "cuda" or "cpu" (entries for others are skipped).
    Each finished benchmark is appended to `done` (when given) at once, so a stopped run knows what finished."""
    launcher = suite.launcher_for(target)
    out: list[BenchmarkRun] = [] if done is None else done
    for spec in suite.benchmarks:
        if device_kind not in spec.devices:
            reason = ("needs a CUDA GPU and none is visible here" if spec.devices == ("cuda",)
                      else f"runs on {', '.join(spec.devices)} only; this node has {device_kind}")
            note(f"accept: {spec.name}: skipped ({reason})")
            out.append(BenchmarkRun(spec, SKIPPED, reason=reason))
            continue
        if spec.results is not None:
            out.append(_stored(spec))
            continue
        note(f"accept: {spec.name}: running ai-ready {' '.join(spec.command)} ...")
        run = _execute(spec, launcher if spec.parallel else (), results_dir, scratch_root)
        note(f"accept: {spec.name}: {run.status} in {run.seconds:.1f} s, {len(run.records)} records"
             + (f" ({run.reason})" if run.reason else ""))
        out.append(run)
    return out


def _stored(spec: BenchmarkSpec) -> BenchmarkRun:
    """A `results:` entry: judge a stored result document instead of measuring."""
    assert spec.results is not None
    try:
        document = load_results(spec.results)
    except InputError as exc:
        return BenchmarkRun(spec, FAILED, reason=str(exc), result_file=spec.results)
    status = COMPLETE if document.meta.get("status", "complete") == "complete" else FAILED
    reason = None if status == COMPLETE else f"the stored run ended '{document.meta.get('status')}'"
    return BenchmarkRun(spec, status, records=document.records, reason=reason, result_file=spec.results)


def _execute(spec: BenchmarkSpec, launcher: tuple[str, ...], results_dir: Path, scratch_root: Path) -> BenchmarkRun:
    output = results_dir / f"{spec.name}.json"
    log = results_dir / f"{spec.name}.log"
    scratch = scratch_root / spec.name
    scratch.mkdir(parents=True, exist_ok=True)
    argv = [*launcher, sys.executable, "-m", "ai_ready", "--quiet", *spec.argv(scratch, output)]
    start = time.monotonic()
    returncode: int | None = None
    reason = None
    try:
        with open(log, "w", encoding="utf-8") as handle:
            returncode = _wait(argv, handle, scratch, spec.timeout_s)
    except FileNotFoundError as exc:
        reason = f"cannot start {argv[0]}: {exc.strerror}"
    except subprocess.TimeoutExpired:
        reason = f"timed out after {spec.timeout_s:.0f} s (the suite's timeout for {spec.name}); stopped"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - start
    records, document_status = _read(output)
    if reason is None and returncode not in (0, None):
        reason = f"exited with code {returncode}: {proctree.last_error_line(log)}"
    elif reason is None and document_status not in (None, COMPLETE):
        reason = f"its result document says '{document_status}'"
    elif reason is None and document_status is None:
        reason = f"wrote no result file ({proctree.last_error_line(log)})"
    return BenchmarkRun(spec, COMPLETE if reason is None else FAILED, records=records, reason=reason,
                        result_file=output if output.exists() else None, log_file=log, seconds=seconds,
                        returncode=returncode, argv=argv)


def _wait(argv: list[str], log: object, cwd: Path, timeout_s: float) -> int:
    """Run `argv` as its own process tree; a timeout or a stop signal to the acceptance run (a batch job's
    time limit, Ctrl-C) stops the whole tree first: the stop signal is forwarded, the benchmark removes its
    scratch files and saves what it measured, SIGKILL follows after the grace period."""
    env = dict(os.environ)
    package_parent = str(Path(ai_ready.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return proctree.run(argv, timeout_s=timeout_s, grace_s=TERMINATE_GRACE_S, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, cwd=cwd, env=env)


def _read(output: Path) -> tuple[list[Record], str | None]:
    if not output.exists():
        return [], None
    try:
        document = load_results(output)
    except InputError:
        return [], "unreadable"
    return document.records, str(document.meta.get("status", COMPLETE))
