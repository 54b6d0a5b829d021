"""From records to test cases, in memory: sanity, per-node figures, fleet history for new nodes,
baseline references, and the JUnit and Prometheus renderings of a verdict."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped

from ai_ready.accept.detect import FAIL, OUTLIER, PASS, REGRESSION, SKIPPED, Reference
from ai_ready.accept.history import PastNight, PastRuns
from ai_ready.accept.junit import build_junit, write_junit
from ai_ready.accept.prometheus import escape_label, render
from ai_ready.accept.run import COMPLETE, FAILED, SKIPPED as RUN_SKIPPED, BenchmarkRun
from ai_ready.accept.suite import BenchmarkSpec, MetricSpec, Selector, Suite, Target
from ai_ready.accept.verdict import judge
from ai_ready.records import Record

TARGET = Target("local")
METRIC = MetricSpec(name="triad", benchmark="memory", select=Selector(case="triad", metric="bandwidth"), better="higher")
SPEC = BenchmarkSpec(name="memory", command=("bench", "memory"), metrics=(METRIC,))
SUITE = Suite(name="t", source="t.yaml", benchmarks=(SPEC,))
EMPTY = PastRuns(runs=[], by_metric={})


def record(host: str, value: float | None = 100.0, status: str = "ok", case: str = "triad") -> Record:
    if status != "ok":
        return Record(benchmark="memory", case=case, params={}, metric="bandwidth", unit="GB/s", status=status,
                      reason="no GPU" if status == "skipped" else "wrong result", host=host)
    return Record.from_samples([value * f for f in (0.99, 1.0, 1.01, 1.0, 0.995)], benchmark="memory", case=case,
                               params={}, metric="bandwidth", unit="GB/s", host=host)


def run_of(records: list[Record], status: str = COMPLETE, reason: str | None = None) -> BenchmarkRun:
    return BenchmarkRun(SPEC, status, records=records, reason=reason)


def past(node_values: dict[str, list[float]]) -> PastRuns:
    by_metric: dict[str, list[PastNight]] = {"triad": []}
    runs = max(len(v) for v in node_values.values())
    for night in range(runs):
        for node, values in node_values.items():
            if night < len(values):
                by_metric["triad"].append(PastNight(run_id=night + 1, started=datetime(2025, 1, night + 1),
                                                    node=node, outcome=PASS, regression=False, value=values[night],
                                                    unit="GB/s", samples=()))
    return PastRuns(runs=[{"id": i + 1} for i in range(runs)], by_metric=by_metric)


def cases_by(verdict: object) -> dict[tuple[str, str], object]:
    return {(c.name, c.node): c for c in verdict.cases}  # type: ignore[attr-defined]


def test_one_case_per_metric_and_node_plus_sanity() -> None:
    verdict = judge(SUITE, TARGET, [run_of([record("a"), record("b"), record("c")])], EMPTY, "here")
    cases = cases_by(verdict)
    assert set(cases) == {(n, h) for n in ("triad", "memory/sanity") for h in ("a", "b", "c")}
    assert verdict.passed and cases[("triad", "a")].value == 100.0


def test_a_failed_record_fails_sanity_and_its_figure() -> None:
    verdict = judge(SUITE, TARGET, [run_of([record("a"), record("a", status="failed")])], EMPTY, "here")
    cases = cases_by(verdict)
    assert cases[("memory/sanity", "a")].outcome == FAIL and "wrong result" in cases[("memory/sanity", "a")].message()
    assert cases[("triad", "a")].outcome == FAIL


def test_skipped_records_and_skipped_benchmarks_are_skipped_with_their_reason() -> None:
    verdict = judge(SUITE, TARGET, [run_of([record("a", status="skipped")])], EMPTY, "here")
    assert cases_by(verdict)[("triad", "a")].outcome == SKIPPED and verdict.passed
    skipped = judge(SUITE, TARGET, [BenchmarkRun(SPEC, RUN_SKIPPED, reason="needs a CUDA GPU")], EMPTY, "here")
    assert {c.outcome for c in skipped.cases} == {SKIPPED}
    assert all("needs a CUDA GPU" in c.message() for c in skipped.cases)


def test_a_benchmark_that_did_not_run_fails_its_metric_with_the_reason() -> None:
    verdict = judge(SUITE, TARGET, [run_of([], FAILED, "exited with code 1: boom")], EMPTY, "here")
    cases = cases_by(verdict)
    assert cases[("triad", "here")].outcome == FAIL
    assert "not measured: memory exited with code 1: boom" in cases[("triad", "here")].message()


def test_a_new_node_is_judged_against_the_fleet_history() -> None:
    history = past({"old1": [100.0] * 12, "old2": [100.0] * 12})
    verdict = judge(SUITE, TARGET, [run_of([record("new", 80.0)])], history, "here")
    case = cases_by(verdict)[("triad", "new")]
    assert case.history_scope == "fleet" and case.outcome == REGRESSION
    assert "against the fleet's history" in case.message()


def test_a_baseline_reference_replaces_the_suites() -> None:
    baseline = {"triad": Reference(value=120.0, lower=-0.05, upper=None, unit="GB/s", key="baseline good")}
    verdict = judge(SUITE, TARGET, [run_of([record("a")])], EMPTY, "here", baseline)
    case = cases_by(verdict)[("triad", "a")]
    assert case.outcome == FAIL and "baseline good" in case.message()


def test_outliers_are_named_per_node() -> None:
    records = [record(f"n{i}") for i in range(5)] + [record("slow", 70.0)]
    verdict = judge(SUITE, TARGET, [run_of(records)], EMPTY, "here")
    outcomes = {c.node: c.outcome for c in verdict.cases if c.name == "triad"}
    assert outcomes.pop("slow") == OUTLIER and set(outcomes.values()) == {PASS}


def test_junit_has_one_case_per_metric_and_node_and_parses(tmp_path: Path) -> None:
    records = [record(f"n{i}") for i in range(3)] + [record("slow", 70.0), record("gone", status="skipped")]
    verdict = judge(SUITE, TARGET, [run_of(records)], EMPTY, "here")
    path = write_junit(tmp_path / "j.xml", build_junit(verdict, "t", "local", {"system": "local"}, {"memory": 1.5}))
    xml = JUnitXml.fromfile(str(path))
    cases = {(c.name, c.classname): c for s in xml for c in s}
    assert len(cases) == len(verdict.cases)
    [failure] = [r for r in cases[("triad", "accept.local.slow")].result if isinstance(r, Failure)]
    assert failure.type == OUTLIER and "triad on slow" in failure.message and "figure: 70" in failure.text
    assert any(isinstance(r, Skipped) for r in cases[("triad", "accept.local.gone")].result)
    suite = next(iter(xml))
    assert suite.tests == len(verdict.cases) and suite.failures == 1 and suite.skipped == 1
    assert path.read_text().startswith('<?xml version="1.0" encoding="utf-8"?>')


def test_prometheus_labels_are_escaped_and_every_case_has_its_outcome() -> None:
    verdict = judge(SUITE, TARGET, [run_of([record('a"b\\c\nd')])], EMPTY, "here")
    text = render(verdict, "local", "t", datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert 'node="a\\"b\\\\c\\nd"' in text
    outcome_lines = [line for line in text.splitlines() if line.startswith("ai_ready_accept_outcome{")]
    assert len(outcome_lines) == 5 * len(verdict.cases)
    assert "ai_ready_accept_last_run_timestamp_seconds" in text and text.endswith("\n")
