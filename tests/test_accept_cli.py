"""`ai-ready accept` end to end, as CI runs it: real processes, exit codes, JUnit parsed with junitparser,
the Prometheus file, the trend report, history that grows, a planted regression, noise-only history,
a slow node named, baselines, and one-line setup errors (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import yaml
from junitparser import Failure, JUnitXml, Skipped

from ai_ready.accept.detect import Night
from ai_ready.accept.history import all_runs, open_history, store_run
from ai_ready.accept.suite import SUITES_DIR
from ai_ready.accept.synthetic import STEP_MODEL, history
from ai_ready.records import Record, ResultDocument, new_meta
from conftest import run_cli
from helpers.accept_writer import history_runs

METRIC = "gemm-fp32-2048"
NIGHTS = 20
#: A Prometheus text-format sample line: name{labels} value.
PROM_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? \S+$')


# --------------------------------------------------------------------------- helpers

def stored_suite(folder: Path, name: str = "synthetic", reference: dict | None = None,
                 margin: float | None = None) -> Path:
    """A suite that judges a stored result file (tonight.json) instead of measuring."""
    metric: dict = {"name": METRIC, "select": {"case": "square-2048-fp32", "metric": "throughput"}}
    if reference:
        metric["reference"] = reference
    if margin:
        metric["outlier_margin"] = margin
    data = {"schema": "ai-ready/accept-suite", "version": 1, "name": name,
            "benchmarks": [{"name": "gemm", "results": "tonight.json", "metrics": [metric]}]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tonight(folder: Path, values: dict[str, Sequence[float]]) -> Path:
    """Tonight's result document: per host, one GEMM record with these samples."""
    records = [Record.from_samples(samples, benchmark="gemm", case="square-2048-fp32", params={"dtype": "fp32"},
                                   metric="throughput", unit="TFLOP/s", host=host, device="cpu")
               for host, samples in values.items()]
    meta = new_meta(["test"])
    meta["status"] = "complete"
    return ResultDocument(meta=meta, records=records).save(folder / "tonight.json")


def plant_history(url: str, nights: Sequence[Night], node: str = "node01", suite: str = "synthetic") -> None:
    engine = open_history(url)
    for run in history_runs(nights, METRIC, node=node, unit="TFLOP/s", suite=suite):
        store_run(engine, run)
    engine.dispose()


def accept(tmp_path: Path, *args: str) -> object:
    return run_cli("accept", "--system", "local", "--results", str(tmp_path / "results"), *args, cwd=tmp_path)


def junit_cases(path: Path) -> dict[tuple[str, str], object]:
    xml = JUnitXml.fromfile(str(path))
    return {(case.name, case.classname): case for suite in xml for case in suite}


def failures(case: object) -> list[Failure]:
    return [r for r in case.result if isinstance(r, Failure)]  # type: ignore[attr-defined]


def synthetic_nights(seed: int) -> tuple[list[Night], list[float]]:
    """NIGHTS noise-only nights of STEP_MODEL (3% samples, 1% nights) and one more night's samples."""
    nights = history(np.random.default_rng(seed), STEP_MODEL, NIGHTS + 1)
    return nights[:-1], list(nights[-1].samples)


# --------------------------------------------------------------------------- the real quick suite

def test_quick_suite_runs_here_and_a_second_run_adds_history(tmp_path: Path) -> None:
    """The packaged quick suite on this machine (CPU): every CPU benchmark runs, GPU-only entries are
    skipped with their reason; a second run (a tiny suite, for time) finds the first in the history."""
    db = f"sqlite:///{tmp_path / 'h.sqlite'}"
    junit, report = tmp_path / "j.xml", tmp_path / "a.html"
    done = run_cli("accept", "--system", "local", "--suite", "quick", "--db", db, "--junit", str(junit),
                   "--report", str(report), cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "accept: PASS" in done.stderr and "Traceback" not in done.stderr
    cases = junit_cases(junit)
    names = {name for name, _ in cases}
    assert {"gemm-fp32-2048", "memory-triad", "allreduce-busbw-2M", "io-seq-write-16M",
            "train-gpt-tiny-throughput", "gemm/sanity", "train/sanity"} <= names
    skipped = {name: r.message for (name, _), c in cases.items() for r in c.result if isinstance(r, Skipped)}
    assert "needs a CUDA GPU" in skipped["gemm-gpu-bf16-8192"] and "kernels/sanity" in skipped
    assert not any(failures(c) for c in cases.values())
    results = next((tmp_path / "reports").glob("accept-local-*"))
    assert {"gemm.json", "io.json", "train.json", "accept.prom", "accept.json"} <= {p.name for p in results.iterdir()}
    assert not list(results.glob("accept-scratch-*"))  # scratch folders are gone
    html = report.read_text()
    assert "data:image/svg+xml;base64," in html and "gemm-fp32-2048" in html

    engine = open_history(db)
    assert len(all_runs(engine, "local")) == 1
    engine.dispose()
    suite = tmp_path / "again.yaml"
    quick = yaml.safe_load((SUITES_DIR / "quick.yaml").read_text())
    quick["benchmarks"] = [b for b in quick["benchmarks"] if b["name"] == "gemm"]
    quick["benchmarks"][0]["args"].update({"sizes": "2048", "dtype": "fp32", "min-time": 0.2})
    quick["benchmarks"][0]["metrics"] = quick["benchmarks"][0]["metrics"][:1]
    suite.write_text(yaml.safe_dump(quick))
    again = run_cli("accept", "--system", "local", "--suite", str(suite), "--db", db, "--junit", str(junit),
                    cwd=tmp_path, timeout=600)
    assert again.returncode in (0, 1), again.stderr[-2000:]
    engine = open_history(db)
    assert len(all_runs(engine, "local")) == 2
    engine.dispose()
    text = junit_cases(junit)[("gemm-fp32-2048", "accept.local." + _node(cases))].system_out
    assert "history (node, 1 nights" in text


def _node(cases: dict) -> str:
    return next(classname for name, classname in cases if name == "gemm-fp32-2048").rsplit(".", 1)[1]


# --------------------------------------------------------------------------- verdicts from stored results

def test_a_planted_regression_fails_with_the_metric_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    past, samples = synthetic_nights(seed=11)
    plant_history(url, past)
    tonight(tmp_path, {"node01": [s * 0.90 for s in samples]})  # -10% with 3% noise
    suite = stored_suite(tmp_path)
    done = accept(tmp_path, "--suite", str(suite), "--db", url, "--junit", str(tmp_path / "j.xml"),
                  "--report", str(tmp_path / "a.html"))
    assert done.returncode == 1, done.stderr
    assert f"accept: regression: {METRIC} on node01" in done.stderr
    case = junit_cases(tmp_path / "j.xml")[(METRIC, "accept.local.node01")]
    [failure] = failures(case)
    assert failure.type == "regression" and METRIC in failure.message and "worse" in failure.message
    assert "figure:" in failure.text and "reference: none" in failure.text
    assert f"history (node, {NIGHTS} nights" in failure.text
    html = (tmp_path / "a.html").read_text()
    assert "regression" in html and METRIC in html


def test_noise_only_history_passes(tmp_path: Path) -> None:
    for seed in (21, 22, 23):
        folder = tmp_path / str(seed)
        folder.mkdir()
        url = f"sqlite:///{folder / 'h.sqlite'}"
        past, samples = synthetic_nights(seed)
        plant_history(url, past)
        tonight(folder, {"node01": samples})
        done = accept(folder, "--suite", str(stored_suite(folder)), "--db", url, "--junit", str(folder / "j.xml"))
        assert done.returncode == 0, done.stderr
        case = junit_cases(folder / "j.xml")[(METRIC, "accept.local.node01")]
        assert not failures(case) and "history: median" in case.system_out


def test_a_slow_node_is_named_against_the_fleet(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    values = {f"node{i:02d}": list(100 * (1 + 0.02 * rng.standard_normal(10))) for i in range(1, 7)}
    values["node04"] = [v * 0.8 for v in values["node04"]]
    tonight(tmp_path, values)
    done = accept(tmp_path, "--suite", str(stored_suite(tmp_path)), "--db", f"sqlite:///{tmp_path / 'h.sqlite'}",
                  "--junit", str(tmp_path / "j.xml"))
    assert done.returncode == 1
    cases = junit_cases(tmp_path / "j.xml")
    [failure] = failures(cases[(METRIC, "accept.local.node04")])
    assert failure.type == "outlier" and "node node04 is an outlier" in failure.message
    assert all(not failures(cases[(METRIC, f"accept.local.node{i:02d}")]) for i in (1, 2, 3, 5, 6))


def test_a_reference_is_checked_and_a_missing_one_says_history_only(tmp_path: Path) -> None:
    tonight(tmp_path, {"node01": [90.0, 91.0, 89.0, 90.5, 90.2]})
    suite = stored_suite(tmp_path, reference={"local": {"value": 100.0, "lower": -0.05, "upper": None,
                                                        "unit": "TFLOP/s"}})
    done = accept(tmp_path, "--suite", str(suite), "--db", f"sqlite:///{tmp_path / 'h.sqlite'}",
                  "--junit", str(tmp_path / "j.xml"))
    assert done.returncode == 1
    [failure] = failures(junit_cases(tmp_path / "j.xml")[(METRIC, "accept.local.node01")])
    assert failure.type == "fail" and "below 95" in failure.message and "reference for local" in failure.text
    ok = accept(tmp_path, "--suite", str(stored_suite(tmp_path, name="noref")), "--db",
                f"sqlite:///{tmp_path / 'h2.sqlite'}", "--junit", str(tmp_path / "j2.xml"))
    assert ok.returncode == 0
    text = junit_cases(tmp_path / "j2.xml")[(METRIC, "accept.local.node01")].system_out
    assert "checked against history only" in text


def test_a_benchmark_that_fails_fails_its_cases_and_the_rest_still_run(tmp_path: Path) -> None:
    data = {"schema": "ai-ready/accept-suite", "version": 1, "name": "broken", "benchmarks": [
        {"name": "io", "run": ["bench", "io"], "args": {"path": str(tmp_path / "no-such-folder"), "quick": True},
         "metrics": [{"name": "io-write", "select": {"case": "seq-write-16M"}}]},
        {"name": "stored", "results": "tonight.json",
         "metrics": [{"name": METRIC, "select": {"case": "square-2048-fp32"}}]}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    tonight(tmp_path, {"node01": [100.0] * 5})
    done = accept(tmp_path, "--suite", str(tmp_path / "s.yaml"), "--db", f"sqlite:///{tmp_path / 'h.sqlite'}",
                  "--junit", str(tmp_path / "j.xml"))
    assert done.returncode == 1
    cases = junit_cases(tmp_path / "j.xml")
    sanity = next(c for (name, _), c in cases.items() if name == "io/sanity")
    assert "exited with code 2: ai-ready: error: --path" in failures(sanity)[0].message
    write = next(c for (name, _), c in cases.items() if name == "io-write")
    assert "not measured: io exited with code 2" in failures(write)[0].message
    assert not failures(cases[(METRIC, "accept.local.node01")])
    assert "does not exist" in (tmp_path / "results" / "io.log").read_text()


def test_prometheus_file_is_valid_text_format(tmp_path: Path) -> None:
    tonight(tmp_path, {'node"01\\': [100.0] * 5})
    prom = tmp_path / "out" / "accept.prom"
    done = accept(tmp_path, "--suite", str(stored_suite(tmp_path)), "--db", f"sqlite:///{tmp_path / 'h.sqlite'}",
                  "--prometheus", str(prom))
    assert done.returncode == 0, done.stderr
    lines = prom.read_text().splitlines()
    assert lines and all(line.startswith("# HELP ") or line.startswith("# TYPE ") or PROM_SAMPLE.match(line)
                         for line in lines), lines
    assert 'node="node\\"01\\\\"' in prom.read_text()
    assert not list(prom.parent.glob(".*.tmp"))  # written atomically, nothing left over


def test_prometheus_file_parses_with_the_reference_parser(tmp_path: Path) -> None:
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is not installed")
    tonight(tmp_path, {"node01": [100.0] * 5})
    prom = tmp_path / "accept.prom"
    assert accept(tmp_path, "--suite", str(stored_suite(tmp_path)), "--db", f"sqlite:///{tmp_path / 'h.sqlite'}",
                  "--prometheus", str(prom)).returncode == 0
    families = {f.name: f for f in parser.text_string_to_metric_families(prom.read_text())}
    assert families["ai_ready_accept_value"].samples[0].value == 100.0


def test_the_trend_report_escapes_what_the_records_say(tmp_path: Path) -> None:
    tonight(tmp_path, {"<script>alert(1)</script>": [100.0] * 5})
    report = tmp_path / "a.html"
    done = accept(tmp_path, "--suite", str(stored_suite(tmp_path)), "--db", f"sqlite:///{tmp_path / 'h.sqlite'}",
                  "--report", str(report))
    assert done.returncode == 0, done.stderr
    html = report.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Content-Security-Policy" in html


# --------------------------------------------------------------------------- baselines

def test_baseline_from_good_history_then_judged_against_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    past, samples = synthetic_nights(seed=31)
    plant_history(url, past)
    stored_suite(tmp_path)
    out = tmp_path / "baseline.yaml"
    made = run_cli("accept", "baseline", "--from-db", url, "--system", "local", "--suite",
                   str(tmp_path / "synthetic.yaml"), "--nights", "10", "-o", str(out), "--name", "good", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    document = yaml.safe_load(out.read_text())
    reference = document["references"][METRIC]
    assert reference["value"] == pytest.approx(100.0, rel=0.03)
    assert reference["lower"] < 0 and reference["upper"] is None
    assert reference["nights"] == 10
    tonight(tmp_path, {"node01": [s * 0.85 for s in samples]})
    for choice in (str(out), "good"):
        done = accept(tmp_path, "--suite", str(tmp_path / "synthetic.yaml"), "--db", url, "--baseline", choice,
                      "--junit", str(tmp_path / "j.xml"))
        assert done.returncode == 1, done.stderr
        [failure, *_] = failures(junit_cases(tmp_path / "j.xml")[(METRIC, "accept.local.node01")])
        assert "baseline" in failure.text


def test_baseline_without_history_is_a_setup_error(tmp_path: Path) -> None:
    done = run_cli("accept", "baseline", "--from-db", f"sqlite:///{tmp_path / 'empty.sqlite'}", "--system", "local",
                   "--nights", "5", cwd=tmp_path)
    assert done.returncode == 2 and "holds no runs of local" in done.stderr


# --------------------------------------------------------------------------- usage and setup errors

@pytest.mark.parametrize("args, words", [
    (["accept", "--system", "nowhere"], "unknown system 'nowhere'; accepted:"),
    (["accept", "--system", "local", "--suite", "nosuch"], "no such suite file; accepted: quick, full"),
    (["accept", "--system", "local", "--db", "mysql://x@y/z"], "unsupported database"),
    (["accept", "--system", "local", "--db", "nonsense"], "is not a database URL"),
    (["accept", "--suite", "quick"], "Missing option '--system'"),
    (["accept", "--system", "local", "baseline", "--from-db", "sqlite:///x.db", "--system", "local",
      "--nights", "5"], "do not apply to 'accept baseline'"),
    (["accept", "--system", "local", "--baseline", "missing"], "neither a file nor a baseline stored"),
])
def test_setup_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert words in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1
    assert not [p for p in (tmp_path / "reports").glob("accept-*") if p.is_dir()]  # nothing ran


def test_a_bad_suite_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"schema": "ai-ready/accept-suite", "version": 1, "name": "b",
                                   "benchmarks": [{"name": "g", "run": "bench gemm", "args": {"sizez": 1}}]}))
    done = run_cli("accept", "--system", "local", "--suite", str(bad), "--db", f"sqlite:///{tmp_path / 'h.db'}",
                   cwd=tmp_path)
    assert done.returncode == 2 and "args.sizez is not an option of 'ai-ready bench gemm'" in done.stderr
    assert not (tmp_path / "h.db").exists()  # checked before the database is touched
