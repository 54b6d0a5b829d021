"""Summary: one traffic light per readiness dimension with the figure behind it, and the three most valuable
actions, ranked by predicted gain. Everything comes from :func:`ai_ready.report.assess.assess`, so the page,
``--format json`` and a centre's own rule file ($AI_READY_REPORT_RULES) agree.

A light is never colour alone: each status has a shape and a word (✖ red, ▲ amber, ✔ green, ? no data), so the
summary reads in black-and-white print and for colour-blind readers.
"""

from __future__ import annotations

from typing import Any, Mapping

from ai_ready.report.assess import DEFAULT_RULES_PATH, Assessment, Metric, Recommendation, Verdict, assess
from ai_ready.report.inputs import drawn_from_incomplete, incomplete_inputs
from ai_ready.report.sections.common import ReportData

#: Each status as the page writes it: a shape (hidden from screen readers, which read the word) and a word.
STATUS_LIGHTS: dict[str, tuple[str, str]] = {
    "red": ("✖", "red"),
    "amber": ("▲", "amber"),
    "green": ("✔", "green"),
    "unknown": ("?", "no data"),
}
#: What each status asks of the reader, said once under the table.
STATUS_MEANINGS: dict[str, str] = {
    "red": "act before scaling up",
    "amber": "worth improving",
    "green": "within the thresholds",
    "unknown": "nothing in the documents to judge it by",
}
SHIPPED_RULES = "ai-ready's shipped rules"


def build_summary(data: ReportData) -> dict[str, Any] | None:
    """The verdicts and the top actions; None when no rule could judge any dimension from the documents."""
    assessment = assess(data)
    if not assessment.judged:
        return None
    incomplete = incomplete_inputs(data.documents, data.labels)
    return {
        "verdicts": [verdict_row(v, incomplete) for v in assessment.verdicts],
        "top": [action_row(r, incomplete) for r in assessment.top()],
        "recommendation_count": len(assessment.recommendations),
        "legend": [{"status": s, "icon": icon, "text": text, "meaning": STATUS_MEANINGS[s]}
                   for s, (icon, text) in STATUS_LIGHTS.items()],
        "rules": rule_sources(assessment),
    }


def light(status: str) -> dict[str, str]:
    """The traffic light of a status: CSS modifier, shape and word."""
    icon, text = STATUS_LIGHTS.get(status, STATUS_LIGHTS["unknown"])
    return {"status": status if status in STATUS_LIGHTS else "unknown", "icon": icon, "text": text}


def figure_row(metric: Metric | None, incomplete: Mapping[str, str]) -> dict[str, Any] | None:
    """The figure behind a verdict or an action, as plain text for the template; `incomplete` holds the
    status of each incomplete input, so a figure drawn from one says so (input_status)."""
    if metric is None:
        return None
    return {"name": metric.name, "text": metric.text, "label": metric.label, "ceiling": metric.ceiling,
            "ceiling_source": metric.ceiling_source, "source": metric.source, "origin": metric.origin,
            "input_status": drawn_from_incomplete(metric.inputs, incomplete)}


def verdict_row(verdict: Verdict, incomplete: Mapping[str, str]) -> dict[str, Any]:
    return {"dimension": verdict.dimension, "label": verdict.label, "light": light(verdict.status),
            "message": verdict.message, "rule": verdict.rule_id or "", "threshold": verdict.threshold,
            "figure": figure_row(verdict.figure, incomplete), "findings": verdict.findings,
            "unknown": verdict.status == "unknown"}


def action_row(rec: Recommendation, incomplete: Mapping[str, str]) -> dict[str, Any]:
    return {"rank": rec.rank, "rule": rec.rule_id, "dimension": rec.dimension, "light": light(rec.severity),
            "action": rec.action, "finding": rec.finding, "evidence": rec.evidence_text,
            "figure": figure_row(rec.evidence, incomplete), "threshold": rec.threshold,
            "threshold_reasons": list(rec.threshold_reasons), "quantified": rec.gain is not None,
            "gain_pct": 100.0 * rec.gain if rec.gain is not None else None, "gain_text": rec.gain_text,
            "gain_basis": rec.gain_basis, "also": list(rec.also)}


def rule_sources(assessment: Assessment) -> list[str]:
    """The rule files, the shipped one by name rather than by its install path."""
    return [SHIPPED_RULES if source == str(DEFAULT_RULES_PATH) else source for source in assessment.sources]
