"""`ai-ready report` inputs and formats: extrapolations as inputs, --format json|md, --rules, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ai_ready.cli import cli
from ai_ready.cli import main as cli_main
from ai_ready.report.assess import DIMENSIONS
from conftest import REPO, section_of

PROFILE = REPO / "tests" / "data" / "profile_myjob.json"
WORKLOAD = REPO / "examples" / "workloads" / "gpt3-175b.yaml"
HOSTILE = "<script>alert(1)</script>|x"


def run(*args: str) -> tuple[int, str]:
    """The console entry point, as a user runs it: exit code and what it printed (stderr included)."""
    runner = CliRunner()
    result = runner.invoke(cli, list(args), catch_exceptions=True, standalone_mode=False)
    return (0 if result.exception is None else 1), result.output


def main_exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.err + captured.out


@pytest.fixture(scope="module")
def extrapolation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ext") / "gpt3-jupiter.json"
    code, out = run("extrapolate", str(WORKLOAD), "--system", "jupiter-booster", "--gpus", "1024", "--scaling",
                    "-o", str(path), "--json")
    assert code == 0, out
    return path


@pytest.fixture()
def hostile_profile(tmp_path: Path) -> Path:
    doc = json.loads(PROFILE.read_text())
    doc["meta"]["profile"]["job"]["name"] = HOSTILE
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(doc))
    return path


def test_an_extrapolation_is_a_report_input_with_its_own_outlook(extrapolation: Path, tmp_path: Path) -> None:
    data = json.loads(extrapolation.read_text())
    assert data["schema"] == "ai-ready/extrapolation" and data["workload_spec"]["model"]["layers"] == 96
    out = tmp_path / "r.html"
    code, text = run("report", str(extrapolation), "-o", str(out))
    assert code == 0, text
    html = out.read_text()
    outlook = section_of(html, "extrapolation")
    assert "gpt3-175b" in outlook and "jupiter-booster" in outlook and "ext-scaling-chart" in outlook
    assert "shaded over the model&#39;s uncertainty band" in outlook  # the band is drawn, and said so
    assert '<section id="part-outlook"' in html and '<section id="part-sources"' in html
    sources = section_of(html, "sources")
    assert "assumption" in sources and "S5" in sources  # the catalog source the model cited, resolved


def test_json_format_holds_verdicts_actions_figures_and_what_is_missing(hostile_profile: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    code, text = run("report", str(hostile_profile), "-o", str(out))  # the suffix chooses the format
    assert code == 0, text
    summary = json.loads(out.read_text())
    assert summary["schema"] == "ai-ready/report-summary"
    assert [v["dimension"] for v in summary["verdicts"]] == [d.key for d in DIMENSIONS]
    assert {v["status"] for v in summary["verdicts"]} <= {"red", "amber", "green", "unknown"}
    assert all(r in summary["recommendations"] for r in summary["top"]) and len(summary["top"]) <= 3
    assert all(r["gain"] is None or r["gain"] > 0 for r in summary["top"])
    assert "profile.mfu" in summary["key_figures"]
    assert {m["title"] for m in summary["missing"]} >= {"This system, measured", "Scaling outlook"}


def test_markdown_summary_escapes_what_came_from_the_job(hostile_profile: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.md"
    code, text = run("report", str(hostile_profile), "--format", "md", "-o", str(out), "--title", HOSTILE)
    assert code == 0, text
    md = out.read_text()
    assert md.startswith("# &lt;script&gt;alert(1)&lt;/script&gt;\\|x")
    assert "<script>" not in md and "## Readiness" in md and "| Software practices |" in md
    for line in md.splitlines():
        if line.startswith("| "):  # every table row keeps its four cells
            assert line.replace("\\|", "").count("|") == 5, line


def test_a_centre_rule_file_changes_the_verdict(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("mode: extend\ndisable: [software.mixed_precision]\n")
    plain, custom = tmp_path / "a.json", tmp_path / "b.json"
    assert run("report", str(PROFILE), "-o", str(plain))[0] == 0
    assert run("report", str(PROFILE), "-o", str(custom), "--rules", str(rules))[0] == 0
    rule_ids = [[r["rule"] for r in json.loads(p.read_text())["recommendations"]] for p in (plain, custom)]
    assert "software.mixed_precision" in rule_ids[0] and "software.mixed_precision" not in rule_ids[1]


@pytest.mark.parametrize("case", ["other-schema", "not-json", "missing", "newer-extrapolation", "bad-rules",
                                  "suffix-mismatch", "folder"])
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "in.json"
    args = ["report", str(target), "-o", str(tmp_path / "r.html")]
    if case == "other-schema":
        target.write_text(json.dumps({"schema": "something/else", "records": []}))
        expect = "not an input the report reads"
    elif case == "not-json":
        target.write_text("name: gpt\n")
        expect = "not valid JSON"
    elif case == "missing":
        expect = "does not exist"
    elif case == "newer-extrapolation":
        target.write_text(json.dumps({"schema": "ai-ready/extrapolation", "version": 99}))
        expect = "extrapolation version 99"
    elif case == "bad-rules":
        args = ["report", str(PROFILE), "--rules", str(tmp_path / "rules.yaml"), "-o", str(tmp_path / "r.html")]
        (tmp_path / "rules.yaml").write_text("rules: [{id: x}]\n")
        expect = "rules.yaml"
    elif case == "suffix-mismatch":
        args = ["report", str(PROFILE), "--format", "md", "-o", str(tmp_path / "r.html")]
        expect = "--format md writes a file ending in .md"
    else:
        args = ["report", str(PROFILE), "-o", str(tmp_path)]
        expect = "is a folder"
    code, err = main_exit(args, capsys)
    assert code == 2, err
    assert expect in err and "Traceback" not in err
    assert len([line for line in err.strip().splitlines() if line]) == 1, err
    assert not (tmp_path / "r.html").exists()
