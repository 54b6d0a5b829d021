"""JUnit XML for CI dashboards: one test case per metric and node, and one per benchmark's sanity.

A failing case carries the figure, the reference and the history in its failure, so the CI page says
what regressed and by how much without opening anything else. Written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from ai_ready.accept.detect import Night
from ai_ready.accept.verdict import Case, Verdict
from ai_ready.fileio import atomic_write_text

#: Past nights listed in a case's text (the most recent ones).
NIGHTS_SHOWN = 10


def case_text(case: Case) -> str:
    """The figure, the reference, the history and every finding, one per line."""
    if case.is_sanity:
        lines = [f"benchmark: {case.benchmark} on node {case.node}"]
        lines += [f"[{f.outcome}] {f.message}" for f in case.findings]
        return "\n".join(lines + ([f"skipped: {case.skipped_reason}"] if case.skipped_reason else []))
    lines = [f"metric: {case.name} (benchmark {case.benchmark}) on node {case.node}"]
    if case.value is not None:
        lines.append(f"figure: {case.value:.6g} {case.unit} (median; {len(case.samples)} samples; "
                     f"{case.better} is better)")
    lines.append(f"reference: {case.reference.describe()}" if case.reference else "reference: none for this system")
    lines.append(_history_line(case.history, case.history_scope))
    lines += [f"[{f.outcome}] {f.message}" for f in case.findings]
    if case.skipped_reason:
        lines.append(f"skipped: {case.skipped_reason}")
    return "\n".join(lines)


def _history_line(history: Sequence[Night], scope: str) -> str:
    if not history:
        return "history: none yet"
    shown = list(history)[-NIGHTS_SHOWN:]
    values = ", ".join(f"{n.started} {n.value:.4g}" + (" (regression)" if n.flagged else "") for n in shown)
    return f"history ({scope}, {len(history)} nights, last {len(shown)}): {values}"


def build_junit(verdict: Verdict, suite_name: str, system: str, properties: dict[str, str],
                seconds: dict[str, float] | None = None) -> JUnitXml:
    suite = TestSuite(f"ai-ready accept {system} ({suite_name})")
    for key, value in properties.items():  # properties first: the JUnit schema orders them before test cases
        suite.add_property(key, value)
    for case in verdict.cases:
        test = TestCase(case.name, f"accept.{_label(system)}.{_label(case.node)}",
                        (seconds or {}).get(case.benchmark, 0.0) if case.is_sanity else 0.0)
        text = case_text(case)
        if case.skipped_reason is not None:
            test.result = [Skipped(case.skipped_reason)]
        elif case.failing:
            failure = Failure(f"{case.name} on {case.node}: {case.message()}", case.outcome)
            failure.text = text
            test.result = [failure]
        test.system_out = text
        suite.add_testcase(test)
    suite.update_statistics()
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()
    return xml


def _label(text: str) -> str:
    """Class names are dotted paths in CI views: keep dots as separators only."""
    return text.replace(".", "_")


def write_junit(path: Path, xml: JUnitXml) -> Path:
    body = xml.tostring()
    text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    return atomic_write_text(path, '<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n")
