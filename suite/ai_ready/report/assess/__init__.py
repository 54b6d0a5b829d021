"""The report's judgement: metrics read from the documents, rules (data) turned into verdicts and actions.

:func:`assess` is what the summary and recommendations sections and ``--format json`` call; the rules
ship in ``data/report_rules.yaml`` and a centre's own file extends or replaces them ($AI_READY_REPORT_RULES).
"""

from ai_ready.report.assess.metrics import METRICS, Metric, MetricSpec, extract_metrics, format_figure, spec_for
from ai_ready.report.assess.rules import (
    DEFAULT_RULES_PATH, DIMENSIONS, RULES_ENV, SEVERITIES, STATUSES, TOP_ACTIONS, Assessment, Condition,
    ConditionError, Dimension, Gain, GainSpec, Recommendation, Rule, RuleSet, Threshold, Verdict, assess,
    compute_gain, evaluate, load_rules, parse_condition, rules_from_environment,
)

__all__ = [
    "DEFAULT_RULES_PATH", "DIMENSIONS", "METRICS", "RULES_ENV", "SEVERITIES", "STATUSES", "TOP_ACTIONS",
    "Assessment", "Condition", "ConditionError", "Dimension", "Gain", "GainSpec", "Metric", "MetricSpec",
    "Recommendation", "Rule", "RuleSet", "Threshold", "Verdict", "assess", "compute_gain", "evaluate",
    "extract_metrics", "format_figure", "load_rules", "parse_condition", "rules_from_environment", "spec_for",
]
