"""Faults found by the fault campaign of issue 20, each on the real command:

- user strings reach the console as text, never as rich markup (a job named ``x[/]y`` crashed `profile`
  after its profile was complete);
- a baseline obeys the suite's bounds both when it is written and when it is read (a noisy history wrote
  ``lower: -1.7``, and `accept --baseline` took it);
- every report format names an incomplete input and marks what it says from it (md and json did not).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ai_ready.accept.history import open_history, store_run
from ai_ready.cli import cli
from ai_ready.cli.console import print_table
from ai_ready.cli.progress import CaseProgress
from ai_ready.records import Record, ResultDocument, new_meta
from conftest import REPO, run_cli, section_of
from helpers.accept_writer import synthetic_run, verdict
from test_profile_cli import job_dir, profile

MARKUP_NAMES = ("x[/]y", "[bold]x[/bold]")


# --------------------------------------------------------------------------- 1. console output is plain text

@pytest.mark.parametrize("name, where", [(MARKUP_NAMES[0], "option"), (MARKUP_NAMES[1], "job file")])
def test_a_job_named_like_markup_is_profiled_and_named_literally(tmp_path: Path, name: str, where: str) -> None:
    spec = f"name: {json.dumps(name)}\n" if where == "job file" else None
    folder = job_dir(tmp_path, "plain_loop.py", spec=spec)
    args = ["--name", name] if where == "option" else []
    proc, _ = profile(tmp_path, folder, *args, "--warmup-steps", "1", "--steps", "3", "--no-extrapolate", "--",
                      "python", "plain_loop.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "internal error" not in proc.stderr and "MarkupError" not in proc.stderr
    assert f"profile: {name} (rank 0" in proc.stdout, proc.stdout  # the table title, as written


def test_print_table_shows_markup_like_strings_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    print_table("title [/] [bold]t[/bold]", ["[red]col", "n"],
                [["x[/]y", "1"], ["[link=https://example.org]z[/link]", "[/]"], ["[bold]w", None]])
    out = capsys.readouterr().out
    for text in ("title [/] [bold]t[/bold]", "[red]col", "x[/]y", "[link=https://example.org]z[/link]", "[/]",
                 "[bold]w"):
        assert text in out, out


def test_live_progress_shows_a_markup_like_case_name_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    record = Record.from_samples([1.0, 1.1, 0.9], benchmark="b", case="x[/]y", params={}, metric="throughput",
                                 unit="GB/s", host="h", device="cpu")
    with CaseProgress(total=1, live=True, log_lines=False) as progress:
        progress.start("x[/]y")
        progress.done("x[/]y", [record])
    assert "x[/]y: " in capsys.readouterr().err


# --------------------------------------------------------------------------- 2. baselines within the bounds

STEADY, NOISY_HIGH, NOISY_LOW = "gemm-steady", "gemm-noisy", "step-noisy"
#: Nights whose robust spread is wider than the figure itself (a tolerance of several hundred percent).
NOISY_NIGHTS = (10.0, 190.0, 15.0, 185.0, 100.0, 20.0, 180.0, 25.0, 175.0, 100.0)
STEADY_NIGHTS = (100.0, 101.0, 99.0, 100.5, 99.5, 100.0, 100.2, 99.8, 100.1, 99.9)


def suite_file(folder: Path) -> Path:
    select = {"case": "square-2048-fp32", "metric": "throughput"}
    metrics = [{"name": STEADY, "select": select}, {"name": NOISY_HIGH, "select": select},
               {"name": NOISY_LOW, "select": select, "better": "lower"}]
    data = {"schema": "ai-ready/accept-suite", "version": 1, "name": "synthetic",
            "benchmarks": [{"name": "gemm", "results": "tonight.json", "metrics": metrics}]}
    path = folder / "synthetic.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tonight(folder: Path) -> Path:
    """Tonight's result file, which the suite judges instead of measuring."""
    record = Record.from_samples([100.0, 101.0, 99.0], benchmark="gemm", case="square-2048-fp32",
                                 params={"dtype": "fp32"}, metric="throughput", unit="GB/s", host="node01",
                                 device="cpu")
    meta = new_meta(["test"])
    meta["status"] = "complete"
    return ResultDocument(meta=meta, records=[record]).save(folder / "tonight.json")


def noisy_history(url: str) -> None:
    """Ten passing nights: one steady metric, two whose nights scatter over an order of magnitude."""
    engine = open_history(url)
    for night, (steady, noisy) in enumerate(zip(STEADY_NIGHTS, NOISY_NIGHTS)):
        rows = [verdict(STEADY, "node01", steady), verdict(NOISY_HIGH, "node01", noisy),
                verdict(NOISY_LOW, "node01", noisy, unit="s")]
        store_run(engine, synthetic_run(f"night-{night}", 1, night=night, verdicts=rows))
    engine.dispose()


def test_a_noisy_history_writes_no_tolerance_beyond_the_bounds_and_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    noisy_history(url)
    out = tmp_path / "baseline.yaml"
    made = run_cli("accept", "baseline", "--from-db", url, "--system", "local", "--suite",
                   str(suite_file(tmp_path)), "--nights", "10", "-o", str(out), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    references = yaml.safe_load(out.read_text())["references"]
    for reference in references.values():
        assert reference["lower"] is None or -1 <= reference["lower"] <= 0, reference
        assert reference["upper"] is None or 0 <= reference["upper"] <= 1, reference
    assert set(references) == {STEADY}
    for metric in (NOISY_HIGH, NOISY_LOW):
        [line] = [line for line in made.stderr.splitlines() if line.startswith(f"baseline: {metric}: ")]
        assert "10 good nights" in line and "robust sd" in line and "no reference written" in line, line
    # what was written is read back by `accept --baseline`
    tonight(tmp_path)
    judged = run_cli("accept", "--system", "local", "--results", str(tmp_path / "results"), "--suite",
                     str(tmp_path / "synthetic.yaml"), "--baseline", str(out), cwd=tmp_path)
    assert judged.returncode in (0, 1), judged.stderr


@pytest.mark.parametrize("bounds, key", [({"lower": -1.7, "upper": None}, "lower"),
                                         ({"lower": None, "upper": -0.2}, "upper")])
def test_a_baseline_file_beyond_the_bounds_is_refused_in_one_line(tmp_path: Path, bounds: dict, key: str) -> None:
    suite = suite_file(tmp_path)
    tonight(tmp_path)
    baseline = {"schema": "ai-ready/accept-baseline", "version": 1, "name": "hand", "system": "local",
                "partition": "", "suite": "synthetic",
                "references": {STEADY: {"value": 100.0, "unit": "GB/s", **bounds}}}
    path = tmp_path / "hand.yaml"
    path.write_text(yaml.safe_dump(baseline, sort_keys=False))
    done = run_cli("accept", "--system", "local", "--results", str(tmp_path / "results"), "--suite", str(suite),
                   "--baseline", str(path), cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr)
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert str(path) in line and STEADY in line and f"{key}:" in line and str(bounds[key]) in line, line
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- 3. incomplete inputs in every format

PROFILE = REPO / "tests" / "data" / "profile_myjob.json"
MARK = "from an incomplete run: status {}"


def result_with_status(folder: Path, status: str) -> Path:
    document = json.loads(PROFILE.read_text())
    document["meta"]["status"] = status
    path = folder / f"profile-{status}.json"
    path.write_text(json.dumps(document))
    return path


def report(source: Path, output: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(source), "-o", str(output)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("status", ["running", "stopped"])
def test_every_format_names_an_incomplete_input_and_marks_its_verdicts(tmp_path: Path, status: str) -> None:
    source = result_with_status(tmp_path, status)
    report(source, tmp_path / "r.json")
    summary = json.loads((tmp_path / "r.json").read_text())
    assert [(i["input"], i["status"]) for i in summary["incomplete_inputs"]] == [(str(source), status)]
    judged = [v for v in summary["verdicts"] if v["figure"]]
    assert judged and summary["recommendations"]
    for item in judged + summary["recommendations"] + summary["top"]:
        assert item["incomplete_input"] is True and item["input_status"] == status, item
    for figure in summary["key_figures"].values():
        assert figure["incomplete_input"] is True and figure["input_status"] == status, figure

    report(source, tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    head = md.split("## Readiness")[0]
    assert str(source) in head and f"status `{status}`" in head, head
    rows = [line for line in md.splitlines() if line.startswith("| ") and "—" not in line.split("|")[4]]
    verdict_rows = [r for r in rows if "Dimension" not in r and "---" not in r]
    assert verdict_rows and all(MARK.format(status) in r for r in verdict_rows), verdict_rows
    actions = [line for line in md.splitlines() if line[:3] in ("1. ", "2. ", "3. ")]
    assert actions and all(MARK.format(status) in a for a in actions), actions

    report(source, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert f"has status “{status}”" in section_of(html, "overview")
    assert MARK.format(status) in section_of(html, "summary")
    assert MARK.format(status) in section_of(html, "recommendations")


def test_a_complete_input_is_not_marked(tmp_path: Path) -> None:
    source = result_with_status(tmp_path, "complete")
    report(source, tmp_path / "r.json")
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["incomplete_inputs"] == []
    assert not any(v["incomplete_input"] for v in summary["verdicts"] + summary["recommendations"])
    report(source, tmp_path / "r.md")
    assert "incomplete" not in (tmp_path / "r.md").read_text()
    report(source, tmp_path / "r.html")
    assert MARK.format("") not in (tmp_path / "r.html").read_text()


def test_an_anomaly_from_an_incomplete_input_is_marked_in_every_format(tmp_path: Path) -> None:
    records = [Record.from_samples([value] * 5, benchmark="memory", case="triad-1g", params={"op": "triad"},
                                   metric="bandwidth", unit="GB/s", host=f"node{i}", device="cpu")
               for i, value in enumerate([100.0, 101.0, 99.0, 50.0])]  # node3: half its peers' bandwidth
    meta = new_meta(["ai-ready", "bench", "memory"])
    meta["status"] = "stopped"
    source = ResultDocument(meta=meta, records=records).save(tmp_path / "memory.json")
    report(source, tmp_path / "r.json")
    [flag] = json.loads((tmp_path / "r.json").read_text())["anomalies"]["below_peers"]
    assert flag["where"].endswith("node3 · cpu") and flag["incomplete_input"] is True
    assert flag["input_status"] == "stopped"
    report(source, tmp_path / "r.md")
    [line] = [line for line in (tmp_path / "r.md").read_text().splitlines() if "worse than" in line]
    assert line.endswith(f"({MARK.format('stopped')})"), line
    report(source, tmp_path / "r.html")
    assert MARK.format("stopped") in section_of((tmp_path / "r.html").read_text(), "anomalies")
