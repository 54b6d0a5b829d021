"""The run's figures and verdicts in Prometheus text exposition format (for node_exporter's textfile
collector or a Pushgateway), written atomically so a scrape never reads half a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Iterable

from ai_ready.accept.detect import FAILING
from ai_ready.accept.verdict import Verdict
from ai_ready.fileio import atomic_write_text

PREFIX = "ai_ready_accept"
#: Outcomes exported as ai_ready_accept_outcome{outcome=...}: each case has 1 on its own and 0 on the others.
OUTCOMES = ("pass", "fail", "regression", "outlier", "skipped")


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and newline (exposition format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items()) + "}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} {kind}"]
    lines += [f"{PREFIX}_{name}{labels} {value:.17g}" for labels, value in samples]
    return lines


def render(verdict: Verdict, system: str, suite: str, finished: datetime) -> str:
    cases = [c for c in verdict.cases if not c.is_sanity]
    base = {"system": system, "suite": suite}
    lines = _family("value", "gauge", "Measured figure of an acceptance metric on one node (median of its samples).",
                    [(_labels(**base, metric=c.name, node=c.node, unit=c.unit), c.value)
                     for c in cases if c.value is not None])
    lines += _family("reference", "gauge", "Reference value of the metric for this system, when the suite has one.",
                     [(_labels(**base, metric=c.name, node=c.node, unit=c.unit), c.reference.value)
                      for c in cases if c.reference is not None])
    lines += _family("outcome", "gauge", "1 for the verdict of the metric on the node, 0 for the other outcomes.",
                     [(_labels(**base, metric=c.name, node=c.node, outcome=o), 1.0 if c.outcome == o else 0.0)
                      for c in verdict.cases for o in OUTCOMES])
    lines += _family("failed_cases", "gauge", "Test cases of the run that failed (reference, regression, outlier).",
                     [(_labels(**base), float(sum(1 for c in verdict.cases if c.outcome in FAILING)))])
    lines += _family("last_run_timestamp_seconds", "gauge", "When the acceptance run finished (Unix time).",
                     [(_labels(**base), finished.timestamp())])
    return "\n".join(lines) + "\n"


def write_prometheus(path: Path, verdict: Verdict, system: str, suite: str, finished: datetime) -> Path:
    return atomic_write_text(path, render(verdict, system, suite, finished))
