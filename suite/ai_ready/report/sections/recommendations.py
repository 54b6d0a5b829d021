"""Recommendations: every action the rules triggered, each with the finding and the figure that triggered it
(label, value, ceiling, source), the threshold and why it has that value, and its predicted effect. Ranked as
the summary ranks them: derived gains first, largest first; then actions whose gain the figures cannot give,
by severity; then those the figures say would gain nothing.
"""

from __future__ import annotations

from typing import Any

from ai_ready.report.assess import DIMENSIONS, assess
from ai_ready.report.inputs import incomplete_inputs
from ai_ready.report.sections.common import ReportData
from ai_ready.report.sections.summary import action_row, rule_sources

DIMENSION_LABELS = {d.key: d.label for d in DIMENSIONS}


def build_recommendations(data: ReportData) -> dict[str, Any] | None:
    """All recommendations; None when no rule could judge any dimension from the documents."""
    assessment = assess(data)
    if not assessment.judged:
        return None
    incomplete = incomplete_inputs(data.documents, data.labels)
    items = []
    for rec in assessment.recommendations:
        row = action_row(rec, incomplete)
        row["dimension_label"] = DIMENSION_LABELS.get(rec.dimension, rec.dimension)
        items.append(row)
    return {"actions": items, "quantified": sum(1 for i in items if i["quantified"]), "rules": rule_sources(assessment)}
