"""From the run's records to verdicts: one test case per metric and node, plus one per benchmark's sanity.

Correctness before performance (as ReFrame separates sanity from performance): a benchmark that failed,
or whose records report a failed check, fails its ``<benchmark>/sanity`` case, and a figure that was not
measured fails its metric's case with the reason. A measured figure is then judged against its reference
(when the suite or the baseline has one for this system, partition or GPU model), against its history,
and against the other nodes of the same run (:mod:`ai_ready.accept.detect`).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ai_ready.accept.detect import (FAIL, FAILING, MIN_HISTORY_NIGHTS, NOT_CHECKED, OUTLIER, PASS, REGRESSION,
                                    SKIPPED, Finding, Night, NodeFigure, Reference, check_reference, fleet_outliers,
                                    history_findings)
from ai_ready.accept.history import PastRuns
from ai_ready.accept.run import FAILED, SKIPPED as RUN_SKIPPED, BenchmarkRun
from ai_ready.accept.suite import MetricSpec, Suite, Target
from ai_ready.meaning import BANDWIDTH_METRICS, COLLECTIVES, SINGLE_RANK, world_size
from ai_ready.records import Record

SANITY = "sanity"
#: Order in which a case's outcome is chosen when several checks fail.
OUTCOME_ORDER = (FAIL, REGRESSION, OUTLIER)


@dataclass
class Case:
    """One JUnit test case: a metric (or a benchmark's sanity) on one node, with every check's finding."""

    name: str
    node: str
    benchmark: str
    unit: str = ""
    better: str = "higher"
    value: float | None = None
    samples: tuple[float, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    reference: Reference | None = None
    history: list[Night] = field(default_factory=list)
    history_scope: str = "node"
    skipped_reason: str | None = None

    @property
    def outcome(self) -> str:
        if self.skipped_reason is not None:
            return SKIPPED
        failing = {f.outcome for f in self.findings if f.failing}
        return next((o for o in OUTCOME_ORDER if o in failing), PASS)

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    @property
    def regression(self) -> bool:
        """A history check said regression: this night then stays out of later baselines."""
        return any(f.outcome == REGRESSION for f in self.findings)

    @property
    def is_sanity(self) -> bool:
        return self.name.endswith("/" + SANITY)

    def message(self) -> str:
        """One line: the failing findings, else what the checks found."""
        if self.skipped_reason is not None:
            return f"skipped: {self.skipped_reason}"
        chosen = [f for f in self.findings if f.failing] or [f for f in self.findings if f.outcome == PASS] \
            or self.findings
        return "; ".join(f.message for f in chosen)

    def to_row(self) -> dict[str, Any]:
        """The verdict row stored in the history (JSON-safe: PostgreSQL's JSON has no Infinity or NaN)."""
        return _json_safe({"metric": self.name, "node": self.node, "benchmark": self.benchmark, "outcome": self.outcome,
                "regression": self.regression, "value": self.value, "unit": self.unit, "samples": list(self.samples),
                "reference": self.reference.to_dict() if self.reference else None,
                "findings": [f.to_dict() for f in self.findings] + (
                    [{"check": "skipped", "outcome": SKIPPED, "message": self.skipped_reason, "detail": {}}]
                    if self.skipped_reason else [])})


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class Verdict:
    """All cases of one run."""

    cases: list[Case]

    @property
    def failed(self) -> list[Case]:
        return [c for c in self.cases if c.failing]

    @property
    def passed(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for case in self.cases:
            out[case.outcome] += 1
        return dict(out)


def judge(suite: Suite, target: Target, runs: Sequence[BenchmarkRun], past: PastRuns, this_host: str,
          references: Mapping[str, Reference] | None = None) -> Verdict:
    """Every case of the run. `references` (from a baseline) replace the suite's for the metrics they name."""
    cases: list[Case] = []
    by_name = {run.spec.name: run for run in runs}
    for run in runs:
        cases += _sanity(run, this_host)
    for spec in suite.metrics():
        reference = (references or {}).get(spec.name) or spec.reference(target)
        cases += _metric_cases(spec, by_name[spec.benchmark], reference, past, target, suite.nights, this_host)
    return Verdict(cases)


def _nodes(records: Sequence[Record], this_host: str) -> list[str]:
    return sorted({r.host or this_host for r in records}) or [this_host]


def _sanity(run: BenchmarkRun, this_host: str) -> list[Case]:
    name = f"{run.spec.name}/{SANITY}"
    if run.status == RUN_SKIPPED:
        return [Case(name, this_host, run.spec.name, skipped_reason=run.reason)]
    cases = []
    for node in _nodes(run.records, this_host):
        failed = [r for r in run.records if (r.host or this_host) == node and r.status == "failed"]
        case = Case(name, node, run.spec.name)
        if run.status == FAILED:
            case.findings.append(Finding(SANITY, FAIL, f"{run.spec.name} {run.reason}"))
        if failed:
            reasons = "; ".join(f"{r.case}: {r.reason}" for r in failed[:3])
            more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
            case.findings.append(Finding(SANITY, FAIL, f"{len(failed)} failed record(s): {reasons}{more}"))
        if not case.findings:
            ok = sum(1 for r in run.records if (r.host or this_host) == node and r.status == "ok")
            case.findings.append(Finding(SANITY, PASS, f"ran; {ok} records ok"))
        cases.append(case)
    return cases


def _metric_cases(spec: MetricSpec, run: BenchmarkRun, reference: Reference | None, past: PastRuns, target: Target,
                  nights: int, this_host: str) -> list[Case]:
    if run.status == RUN_SKIPPED:
        return [Case(spec.name, this_host, spec.benchmark, better=spec.better, skipped_reason=run.reason)]
    matched = [r for r in run.records if spec.select.matches(r)]
    if not matched:
        why = (f"not measured: {spec.benchmark} {run.reason}" if run.status == FAILED
               else f"no record of {spec.benchmark} matches {spec.select.describe()}")
        return [Case(spec.name, node, spec.benchmark, better=spec.better, reference=reference,
                     findings=[Finding("measured", FAIL, why)]) for node in _nodes(run.records, this_host)]
    per_node: dict[str, list[Record]] = defaultdict(list)
    for record in matched:
        per_node[record.host or this_host].append(record)
    cases = {node: _node_case(spec, node, records, reference, target) for node, records in sorted(per_node.items())}
    measured = {node: c for node, c in cases.items() if c.value is not None and c.skipped_reason is None}
    for node, case in measured.items():
        history, scope = _history(past, spec.name, node, case.unit)
        case.history, case.history_scope = history, scope
        tonight = Night(run_id=0, started="tonight", value=float(case.value or 0.0), samples=case.samples)
        for finding in history_findings(tonight, history, spec.better, nights):
            if scope == "fleet" and finding.outcome != NOT_CHECKED:
                finding.message += " (against the fleet's history: this node has too little of its own)"
            case.findings.append(finding)
    figures = {node: NodeFigure(float(c.value or 0.0), c.samples) for node, c in measured.items()}
    for node, finding in fleet_outliers(figures, spec.better, spec.outlier_margin).items():
        measured[node].findings.append(finding)
    return list(cases.values())


def _node_case(spec: MetricSpec, node: str, records: list[Record], reference: Reference | None,
               target: Target) -> Case:
    """One node's figure: the median over its matching records (ranks), their samples pooled."""
    ok = [r for r in records if r.status == "ok" and r.value is not None]
    failed = [r for r in records if r.status == "failed"]
    case = Case(spec.name, node, spec.benchmark, unit=(ok or records)[0].unit, better=spec.better, reference=reference)
    if failed:
        case.findings.append(Finding("measured", FAIL, "; ".join(f"{r.case} failed: {r.reason}" for r in failed[:3])))
    if not ok:
        if not failed:
            case.skipped_reason = "; ".join(sorted({r.reason or "skipped" for r in records}))
        return case
    single = [r for r in ok if r.benchmark == COLLECTIVES and r.metric in BANDWIDTH_METRICS
              and (world_size(r) or 2) < 2]
    if single and len(single) == len(ok):  # a collective's bandwidth on one rank is 0 by definition: nothing to judge
        case.skipped_reason = SINGLE_RANK
        return case
    case.value = float(statistics.median(r.value for r in ok if r.value is not None))
    case.samples = tuple(float(s) for r in ok for s in r.samples)
    case.findings.append(check_reference(case.value, case.unit, reference, _where(target)))
    return case


def _where(target: Target) -> str:
    return f"system {target.label()}" + (f" or GPU model {target.gpu_model}" if target.gpu_model else "")


def _history(past: PastRuns, metric: str, node: str, unit: str) -> tuple[list[Night], str]:
    """The node's own history if it has enough nights, else the fleet's (nodes of a pool come and go)."""
    own = past.nights(metric, node, unit)
    if len(own) >= MIN_HISTORY_NIGHTS:
        return own, "node"
    fleet = past.fleet(metric, unit)
    if len(fleet) > len(own):
        return fleet, "fleet"
    return own, "node"
