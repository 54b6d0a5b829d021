"""Verdicts and recommendations from a rule file: thresholds are data, not code.

A rule names a metric (:mod:`.metrics`), a condition in a small comparison language parsed here (never
evaluated as code), a severity, a message and, optionally, the action it recommends and how its gain is
derived from the measured figures. The shipped rules live in ``data/report_rules.yaml``; a centre passes
its own file (``$AI_READY_REPORT_RULES`` or :func:`load_rules`) that extends or replaces them, so its
thresholds and advice change without code. Every problem in a rule file is one :class:`InputError` line
naming the file, the rule and the field.

Conditions: ``< X``, ``<= X``, ``> X``, ``>= X``, ``== X``, ``!= X`` and ``between LOW HIGH`` (LOW <= value
< HIGH, so adjacent bands never overlap nor leave a gap). X is a number (``0.3``, ``30%``), a threshold
named in the file (``$mfu_red``), ``true``/``false``, or a word or quoted text for ``==``/``!=``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from ai_ready.errors import InputError, yaml_problem
from ai_ready.report.assess.metrics import (
    BOOL, FRACTION, NUMBER, PLACEHOLDER_PATTERN, TEXT, Metric, extract_metrics, format_figure, spec_for,
)
from ai_ready.report.sections.common import ReportData

DEFAULT_RULES_PATH = Path(__file__).resolve().parent / "data" / "report_rules.yaml"
#: A centre's rule file for every report (extending or replacing the shipped rules), like $AI_READY_CATALOG_PATH.
RULES_ENV = "AI_READY_REPORT_RULES"
RULES_SCHEMA = "ai-ready/report-rules"
RULES_VERSION = 1
ASSESSMENT_SCHEMA = "ai-ready/assessment"
ASSESSMENT_VERSION = 1
MODES = ("extend", "replace")
DEFAULT_MODE = "extend"
TOP_KEYS = ("schema", "version", "mode", "thresholds", "rules", "disable")
REQUIRED_RULE_KEYS = ("id", "dimension", "metric", "condition", "severity", "message")
OPTIONAL_RULE_KEYS = ("recommendation", "gain", "evidence", "when")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
THRESHOLD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Severities from least to most urgent; a verdict is the most urgent triggered one.
SEVERITIES = ("green", "amber", "red")
UNKNOWN = "unknown"
STATUSES = (UNKNOWN, *SEVERITIES)
#: How many actions the summary puts first.
TOP_ACTIONS = 3


@dataclass(frozen=True)
class Dimension:
    """A readiness dimension and what to run when no document says anything about it."""

    key: str
    label: str
    measure_with: str


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("compute", "Compute efficiency", "profile your job (`ai-ready profile`) or run `ai-ready bench gemm`"),
    Dimension("scalability", "Scalability",
              "set target.systems in ai-ready.yaml so `ai-ready profile` extrapolates the job, or run "
              "`ai-ready train --scaling`"),
    Dimension("memory", "Memory fit", "profile your job; set target.model for the fit on the target systems"),
    Dimension("communication", "Communication",
              "profile a multi-process run, run `ai-ready bench collectives` on 2 or more GPUs or nodes, or "
              "extrapolate to a target system"),
    Dimension("io", "I/O and data loading", "profile your job (its data wait) or run `ai-ready bench io`"),
    Dimension("resilience", "Resilience",
              "set target.tokens and target.systems so the extrapolation weighs checkpoints against failures"),
    Dimension("software", "Software practices", "profile your job (`ai-ready profile`)"),
)
DIMENSION_KEYS = tuple(d.key for d in DIMENSIONS)


# --------------------------------------------------------------------------- conditions

class ConditionError(ValueError):
    """A condition that does not parse; the loader names the file, rule and field around it."""


ORDERING = ("<=", ">=", "<", ">")
EQUALITY = ("==", "!=")
BETWEEN = "between"
_OPERATOR = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.*?)\s*$")
_BETWEEN = re.compile(r"^\s*between\s+(\S+)\s+(\S+)\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+-]*$")
_QUOTED = re.compile(r"""^(?:"([^"]*)"|'([^']*)')$""")
_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
BOOLEANS = {"true": True, "false": False}
ACCEPTED = "accepted: < X, <= X, > X, >= X, == X, != X or between LOW HIGH"


@dataclass(frozen=True)
class Threshold:
    """A named number in the rule file, with the one-line reason it has that value."""

    name: str
    value: float
    reason: str


def parse_number(text: str) -> float:
    """"0.3" or "30%" (which is 0.3); anything else raises ConditionError."""
    if not _NUMBER.match(text):
        raise ConditionError(f"'{text}' is not a number (write 0.3 or 30%)")
    return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)


@dataclass(frozen=True)
class Condition:
    """A parsed comparison; `thresholds` names the thresholds it uses, for the reasons shown beside it."""

    op: str
    operands: tuple[float | bool | str, ...]
    text: str
    thresholds: tuple[Threshold, ...] = ()

    @property
    def value_kind(self) -> str:
        first = self.operands[0]
        return BOOL if isinstance(first, bool) else TEXT if isinstance(first, str) else NUMBER

    def holds(self, value: Any) -> bool | None:
        """Whether `value` meets the condition; None when it is not the kind the condition compares."""
        kind = BOOL if isinstance(value, bool) else TEXT if isinstance(value, str) else NUMBER
        if kind != self.value_kind or (kind == NUMBER and not (isinstance(value, (int, float))
                                                                and math.isfinite(value))):
            return None
        if self.op == BETWEEN:
            low, high = self.operands
            return low <= value < high
        other = self.operands[0]
        if kind == TEXT:
            value, other = str(value).casefold(), str(other).casefold()
        return {"<": lambda: value < other, "<=": lambda: value <= other, ">": lambda: value > other,
                ">=": lambda: value >= other, "==": lambda: value == other, "!=": lambda: value != other}[self.op]()

    def margin(self, value: Any) -> float:
        """How far past its threshold a number is (0 for between and equality): the worst of several matches."""
        if self.value_kind != NUMBER or self.op not in ORDERING or isinstance(value, bool):
            return 0.0
        bound = float(self.operands[0])
        return bound - float(value) if self.op in ("<", "<=") else float(value) - bound

    def describe(self, unit: str) -> str:
        """The condition with its numbers in the metric's unit: "< 30.0%", "between 30.0% and 40.0%"."""
        kind = self.value_kind
        shown = [format_figure(v, unit) if kind == NUMBER else str(v).lower() if kind == BOOL else str(v)
                 for v in self.operands]
        return f"between {shown[0]} and {shown[1]}" if self.op == BETWEEN else f"{self.op} {shown[0]}"


def parse_condition(text: Any, thresholds: Mapping[str, Threshold] | None = None) -> Condition:
    """Parse one condition; raise ConditionError saying what is wrong and what is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError(f"must be text such as \"< 0.30\" or \"between 30% 40%\", got {text!r}")
    known = thresholds or {}
    used: list[Threshold] = []
    between = _BETWEEN.match(text)
    if between:
        low, high = (_operand(part, known, used, ordering=True) for part in between.groups())
        if not low < high:
            raise ConditionError(f"'{text}': the low bound must be below the high bound")
        return Condition(BETWEEN, (low, high), text.strip(), tuple(used))
    match = _OPERATOR.match(text)
    raw = match.group(2) if match else ""
    if not raw or (any(c.isspace() for c in raw) and not _QUOTED.match(raw)):
        raise ConditionError(f"'{text}' is not a condition ({ACCEPTED})")
    op = match.group(1)
    value = _operand(raw, known, used, ordering=op in ORDERING)
    return Condition(op, (value,), text.strip(), tuple(used))


def _operand(raw: str, thresholds: Mapping[str, Threshold], used: list[Threshold],
             ordering: bool) -> float | bool | str:
    reference = _REFERENCE.match(raw)
    if reference:
        name = reference.group(1)
        if name not in thresholds:
            known = ", ".join(sorted(thresholds)) or "none"
            raise ConditionError(f"'{raw}' names no threshold of the rule file (known: {known})")
        used.append(thresholds[name])
        return thresholds[name].value
    if _NUMBER.match(raw):
        return parse_number(raw)
    if ordering:
        raise ConditionError(f"'{raw}' is not a number or a $threshold; <, <=, >, >= and between compare numbers")
    if raw.lower() in BOOLEANS:
        return BOOLEANS[raw.lower()]
    quoted = _QUOTED.match(raw)
    if quoted:
        return quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
    if _WORD.match(raw):
        return raw
    raise ConditionError(f"'{raw}' is not a number, true/false, a $threshold, a word or quoted text")


# --------------------------------------------------------------------------- gains

#: How a gain is derived, and the metric fields each kind needs. Gains are fractions of throughput:
#: 0.25 means the job would go 1.25× as fast. All are upper bounds except "stated" (the file's estimate).
GAIN_FIELDS: dict[str, tuple[str, ...]] = {
    "fraction_removed": ("metric",),  # f of the step removed or hidden: 1/(1-f) - 1
    "shortfall": ("metric",),  # efficiency v brought to 100%: 1/v - 1
    "direct": ("metric",),  # the metric is the gain itself (e.g. how far the slowest rank is behind)
    "ratio": ("numerator",),  # numerator/denominator - 1 (or numerator - 1 without a denominator)
    "amdahl": ("speedup", "fraction"),  # a speedup s on a share f of the step: 1/((1-f) + f/s) - 1
    "stated": ("value", "basis"),  # an estimate the file states, with its basis
    "none": ("basis",),  # cannot be derived; the basis says why
}
GAIN_OPTIONAL = {"ratio": ("denominator", "basis"), "stated": (), "none": ()}
GAIN_METRIC_FIELDS = ("metric", "numerator", "denominator", "speedup", "fraction")
NOT_DERIVED = "not derivable from the measured figures"


@dataclass(frozen=True)
class GainSpec:
    """How a rule's predicted effect follows from the figures."""

    kind: str
    metrics: tuple[tuple[str, str], ...] = ()
    value: float | None = None
    basis: str = ""

    def metric(self, role: str) -> str | None:
        return dict(self.metrics).get(role)


@dataclass(frozen=True)
class Gain:
    """A derived gain: the fraction (None when it cannot be derived) and how it was derived."""

    value: float | None
    basis: str
    #: Derived gains are upper bounds ("up to"); a stated one is the rule file's estimate ("about").
    upper_bound: bool = True

    @property
    def text(self) -> str:
        if self.value is None:
            return "not quantified"
        return (f"{'up to' if self.upper_bound else 'about'} +{100 * self.value:.1f}% throughput "
                f"({1 + self.value:.2f}× as fast)")


def _speedup(fraction: float) -> float | None:
    return 1.0 / (1.0 - fraction) - 1.0 if 0 <= fraction < 1 else None


def compute_gain(spec: GainSpec | None, metrics: Mapping[str, Metric], captured: str = "") -> Gain:
    """The gain `spec` derives from `metrics` ("*" in its metric names is the matched system)."""
    if spec is None:
        return Gain(None, NOT_DERIVED)
    if spec.kind == "none":
        return Gain(None, spec.basis or NOT_DERIVED)
    if spec.kind == "stated":
        return Gain(max(float(spec.value or 0.0), 0.0), f"stated by the rule file: {spec.basis}", upper_bound=False)
    figures: dict[str, Metric] = {}
    for role, name in spec.metrics:
        concrete = name.replace("*", captured)
        metric = metrics.get(concrete)
        if metric is None or metric.kind != NUMBER:
            return Gain(None, f"cannot be derived: needs {concrete} (not measured)"
                              + (f"; {spec.basis}" if spec.basis else ""))
        figures[role] = metric
    value, how = _derive(spec.kind, figures)
    if value is None:
        return Gain(None, how)
    basis = f"{how}; {spec.basis}" if spec.basis else how
    return Gain(max(value, 0.0), basis)


def _derive(kind: str, m: dict[str, Metric]) -> tuple[float | None, str]:
    """(gain, how it was derived) for a kind whose metrics are all present."""
    if kind == "ratio":
        return _ratio(m["numerator"], m.get("denominator"))
    if kind == "amdahl":
        return _amdahl(m["speedup"], m["fraction"])
    metric = m["metric"]
    v = float(metric.value)
    if kind == "direct":
        return v, f"{metric.label} is {metric.text}: removing it gains as much"
    if kind == "fraction_removed":
        gain = _speedup(v)
        if gain is None:
            return None, f"cannot be derived: {metric.label} is {metric.text}"
        return gain, f"{metric.label} is {metric.text}: without it the step would be {1 + gain:.2f}× as fast"
    if v <= 0:  # shortfall
        return None, f"cannot be derived: {metric.label} is {metric.text}"
    return 1.0 / v - 1.0, f"{metric.label} is {metric.text}: at 100% it would be {1 / v:.2f}× as fast"


def _ratio(num: Metric, den: Metric | None) -> tuple[float | None, str]:
    if den is None:
        return float(num.value) - 1.0, f"{num.label} is {num.text}"
    if float(den.value) <= 0:
        return None, f"cannot be derived: {den.label} is {den.text}"
    ratio = float(num.value) / float(den.value)
    return ratio - 1.0, (f"{num.label} ({num.text}, from {num.origin}) over {den.label} ({den.text}) is "
                         f"{ratio:.2f}×")


def _amdahl(speedup: Metric, share: Metric) -> tuple[float | None, str]:
    s, f = float(speedup.value), float(share.value)
    if s <= 0 or not 0 <= f <= 1:
        return None, f"cannot be derived: {speedup.label} is {speedup.text}, {share.label} is {share.text}"
    gain = 1.0 / ((1.0 - f) + f / s) - 1.0
    return gain, (f"{speedup.label} is {speedup.text}, applied to the {share.label} ({share.text}): "
                  f"{1 + gain:.2f}× by Amdahl's law")


# --------------------------------------------------------------------------- rules and their file

@dataclass(frozen=True)
class Rule:
    """One rule of the file, its condition parsed and its thresholds resolved."""

    id: str
    dimension: str
    metric: str
    condition: Condition
    severity: str
    message: str
    recommendation: str = ""
    gain: GainSpec | None = None
    evidence: str = ""
    when: tuple[tuple[str, Condition], ...] = ()
    origin: str = ""


@dataclass(frozen=True)
class RuleSet:
    """The rules in evaluation order, the thresholds they use and the files they came from."""

    rules: tuple[Rule, ...]
    thresholds: Mapping[str, Threshold]
    sources: tuple[str, ...]


@dataclass
class _RawFile:
    path: str
    mode: str
    thresholds: dict[str, Threshold]
    rules: list[dict[str, Any]]
    disable: list[str]


class _Where:
    """Builds the one-line errors: file, then rule, then field."""

    def __init__(self, path: str, rule: str | None = None, field: str | None = None) -> None:
        self.path, self.rule, self.field = path, rule, field

    def fail(self, problem: str) -> InputError:
        where = f"report rules '{self.path}'"
        if self.rule is not None:
            where += f": rule '{self.rule}'"
        if self.field is not None:
            where += f": field '{self.field}'"
        return InputError(f"{where}: {problem}")

    def at(self, rule: str | None = None, field: str | None = None) -> "_Where":
        return _Where(self.path, rule if rule is not None else self.rule, field)


def load_rules(path: str | os.PathLike[str] | None = None) -> RuleSet:
    """The shipped rules, extended or replaced by the file at `path` (its `mode`, extend by default)."""
    base = _read_default()
    if path is None:
        return _compile([base], base.thresholds, base.rules)
    custom = _read(Path(path).expanduser(), custom=True)
    if custom.mode == "replace":
        if not custom.rules:
            raise _Where(custom.path).fail("mode: replace needs a list of rules")
        return _compile([custom], custom.thresholds, custom.rules)
    thresholds = {**base.thresholds, **custom.thresholds}
    rules = list(base.rules)
    positions = {str(r.get("id")): i for i, r in enumerate(rules)}
    for rule in custom.rules:
        if str(rule.get("id")) in positions:
            rules[positions[str(rule["id"])]] = rule
        else:
            positions[str(rule.get("id"))] = len(rules)
            rules.append(rule)
    for rule_id in custom.disable:
        if rule_id not in positions:
            raise _Where(custom.path, field="disable").fail(f"no rule '{rule_id}' to disable")
    rules = [r for r in rules if str(r.get("id")) not in custom.disable]
    return _compile([base, custom], thresholds, rules)


def rules_from_environment() -> RuleSet:
    """The rules a report uses: the shipped ones with the file named by $AI_READY_REPORT_RULES, if any."""
    return load_rules(os.environ.get(RULES_ENV) or None)


@lru_cache(maxsize=1)
def _read_default() -> _RawFile:
    return _read(DEFAULT_RULES_PATH, custom=False)


def _read(path: Path, custom: bool) -> _RawFile:
    where = _Where(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise where.fail("does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise where.fail(f"cannot be read ({exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise where.fail(f"not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(doc, dict):
        raise where.fail(f"must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(map(str, doc)) - set(TOP_KEYS))
    if unknown:
        raise where.fail(f"unknown key '{unknown[0]}' (accepted: {', '.join(TOP_KEYS)})")
    if doc.get("schema", RULES_SCHEMA) != RULES_SCHEMA:
        raise where.at(field="schema").fail(f"must be '{RULES_SCHEMA}'")
    if doc.get("version", RULES_VERSION) != RULES_VERSION:
        raise where.at(field="version").fail(f"{doc.get('version')!r} is not a version this ai-ready reads "
                                             f"({RULES_VERSION})")
    mode = doc.get("mode", DEFAULT_MODE)
    if mode not in MODES:
        raise where.at(field="mode").fail(f"{mode!r} is not one of {', '.join(MODES)}")
    rules = doc.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise where.at(field="rules").fail("must be a list of rules (mappings)")
    disable = doc.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise where.at(field="disable").fail("must be a list of rule ids")
    if disable and (not custom or mode != "extend"):
        raise where.at(field="disable").fail("only a centre's file with mode: extend can disable shipped rules")
    _check_ids(rules, where)
    return _RawFile(str(path), mode, _thresholds(doc.get("thresholds") or {}, where), rules, list(disable))


def _check_ids(rules: list[dict[str, Any]], where: _Where) -> None:
    """Ids are unique in a file (a centre's file replaces shipped rules by id); each rule remembers its file."""
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        rule_id = rule.get("id")
        if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
            raise where.at(rule=f"#{index + 1}", field="id").fail(
                f"{rule_id!r} is not a rule id (lower-case letters, digits, '.', '_', '-')")
        if rule_id in seen:
            raise where.at(rule=rule_id, field="id").fail("the id is used twice in this file")
        seen.add(rule_id)
        rule["__origin__"] = where.path


def _thresholds(raw: Any, where: _Where) -> dict[str, Threshold]:
    if not isinstance(raw, dict):
        raise where.at(field="thresholds").fail("must map names to {value, reason}")
    out = {}
    for name, entry in raw.items():
        here = where.at(field=f"thresholds.{name}")
        if not isinstance(name, str) or not THRESHOLD_NAME.match(name):
            raise here.fail("a threshold name is letters, digits and '_'")
        if not isinstance(entry, dict) or set(entry) - {"value", "reason"} or "value" not in entry:
            raise here.fail("must be a mapping with a value and a one-line reason")
        if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            raise here.fail("needs a reason: one line saying why the threshold has this value")
        value = entry["value"]
        try:
            number = parse_number(str(value)) if not isinstance(value, bool) else None
        except ConditionError as exc:
            raise here.fail(str(exc)) from None
        if number is None:
            raise here.fail("the value must be a number such as 0.3 or 30%")
        out[name] = Threshold(name, number, " ".join(entry["reason"].split()))
    return out


def _compile(files: Sequence[_RawFile], thresholds: Mapping[str, Threshold],
             raw_rules: Sequence[dict[str, Any]]) -> RuleSet:
    rules = tuple(_rule(raw, thresholds) for raw in raw_rules)
    return RuleSet(rules, dict(thresholds), tuple(f.path for f in files))


def _rule(raw: dict[str, Any], thresholds: Mapping[str, Threshold]) -> Rule:
    where = _Where(str(raw.get("__origin__", "?")), rule=str(raw.get("id")))
    fields = {k: v for k, v in raw.items() if k != "__origin__"}
    unknown = sorted(set(map(str, fields)) - set(REQUIRED_RULE_KEYS) - set(OPTIONAL_RULE_KEYS))
    if unknown:
        raise where.at(field=unknown[0]).fail(
            f"unknown field (accepted: {', '.join(REQUIRED_RULE_KEYS + OPTIONAL_RULE_KEYS)})")
    for key in REQUIRED_RULE_KEYS:
        if key not in fields or fields[key] in (None, ""):
            raise where.at(field=key).fail("is required")
    for key in ("dimension", "metric", "severity", "message", "recommendation", "evidence"):
        if key in fields and not isinstance(fields[key], str):
            raise where.at(field=key).fail(f"must be text, got {fields[key]!r}")
    if fields["dimension"] not in DIMENSION_KEYS:
        raise where.at(field="dimension").fail(f"'{fields['dimension']}' is not one of {', '.join(DIMENSION_KEYS)}")
    if fields["severity"] not in SEVERITIES:
        raise where.at(field="severity").fail(f"'{fields['severity']}' is not one of {', '.join(SEVERITIES)}")
    metric = fields["metric"]
    spec = _metric_spec(metric, where.at(field="metric"))
    condition = _condition(fields["condition"], thresholds, spec.kind, where.at(field="condition"))
    wildcard = "*" in metric
    when = tuple(_when(fields.get("when"), thresholds, where.at(field="when"), wildcard))
    for key in ("message", "recommendation", "evidence"):
        _check_template(str(fields.get(key) or ""), where.at(field=key), wildcard)
    return Rule(id=fields["id"], dimension=fields["dimension"], metric=metric, condition=condition,
                severity=fields["severity"], message=" ".join(fields["message"].split()),
                recommendation=" ".join(str(fields.get("recommendation") or "").split()),
                gain=_gain(fields.get("gain"), where.at(field="gain"), wildcard),
                evidence=" ".join(str(fields.get("evidence") or "").split()), when=when, origin=where.path)


def _metric_spec(name: str, where: _Where, wildcard_allowed: bool = True) -> Any:
    if "*" in name and not wildcard_allowed:
        raise where.fail(f"'{name}': '*' stands for the rule metric's system and needs a rule metric with '*'")
    spec = spec_for(name.replace("*", "x")) if re.fullmatch(r"[A-Za-z0-9_.*-]+", name) else None
    if spec is None:
        raise where.fail(f"'{name}' is not a metric ai-ready extracts (see ai_ready.report.assess.metrics.METRICS; "
                         "'*' may stand for a target system)")
    return spec


def _condition(text: Any, thresholds: Mapping[str, Threshold], kind: str, where: _Where) -> Condition:
    try:
        condition = parse_condition(text, thresholds)
    except ConditionError as exc:
        raise where.fail(str(exc)) from None
    if condition.value_kind != kind:
        raise where.fail(f"'{condition.text}' compares {condition.value_kind} values but the metric is {kind}"
                         + (" (compare it with true or false)" if kind == BOOL else ""))
    if kind != NUMBER and condition.op not in EQUALITY:
        raise where.fail(f"'{condition.text}': a {kind} metric is compared with == or != only")
    return condition


def _when(raw: Any, thresholds: Mapping[str, Threshold], where: _Where,
          wildcard: bool) -> Iterator[tuple[str, Condition]]:
    if raw is None:
        return
    if not isinstance(raw, dict) or not raw:
        raise where.fail("must map metric names to conditions, e.g. {profile.world_size: \"> 1\"}")
    for name, text in raw.items():
        here = where.at(field=f"when.{name}")
        spec = _metric_spec(str(name), here, wildcard_allowed=wildcard)
        yield str(name), _condition(text, thresholds, spec.kind, here)


#: What a message, recommendation or evidence template may name.
PLACEHOLDERS = ("value", "label", "system", "threshold", "ceiling", "source", "origin")
_FIELD = re.compile(r"\{([^{}]*)\}")


def _check_template(text: str, where: _Where, wildcard: bool) -> None:
    for name in _FIELD.findall(text):
        if name.startswith("metric:"):
            _metric_spec(name.removeprefix("metric:"), where, wildcard_allowed=wildcard)
        elif name not in PLACEHOLDERS:
            raise where.fail(f"unknown placeholder {{{name}}} (accepted: "
                             + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS) + ", {metric:NAME})")
    if "{" in _FIELD.sub("", text) or "}" in _FIELD.sub("", text):
        raise where.fail("a '{' or '}' that opens or closes no placeholder")


def _gain(raw: Any, where: _Where, wildcard: bool) -> GainSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("kind") not in GAIN_FIELDS:
        raise where.fail(f"must be a mapping whose kind is one of {', '.join(GAIN_FIELDS)}")
    kind = raw["kind"]
    required = GAIN_FIELDS[kind]
    allowed = {"kind", *required, *GAIN_OPTIONAL.get(kind, ("basis",))}
    extra = sorted(set(map(str, raw)) - allowed)
    if extra:
        raise where.fail(f"'{extra[0]}' is not a field of a {kind} gain (accepted: {', '.join(sorted(allowed))})")
    missing = [f for f in required if raw.get(f) in (None, "")]
    if missing:
        raise where.fail(f"a {kind} gain needs '{missing[0]}'")
    metrics = []
    for role in GAIN_METRIC_FIELDS:
        if role in raw:
            spec = _metric_spec(str(raw[role]), where.at(field=f"gain.{role}"), wildcard_allowed=wildcard)
            share = role in ("metric", "fraction") and kind != "direct"
            if spec.kind != NUMBER or (share and spec.unit != FRACTION):
                raise where.at(field=f"gain.{role}").fail(
                    f"'{raw[role]}' must be a {'share (fraction)' if share else 'numeric'} metric")
            metrics.append((role, str(raw[role])))
    value = raw.get("value")
    if kind == "stated":
        try:
            value = parse_number(str(value))
        except ConditionError as exc:
            raise where.at(field="gain.value").fail(str(exc)) from None
    basis = " ".join(str(raw.get("basis") or "").split())
    return GainSpec(kind, tuple(metrics), value, basis)


# --------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class Finding:
    """A rule whose condition one metric met."""

    rule: Rule
    order: int
    metric: Metric
    message: str
    action: str
    evidence: str
    threshold: str
    gain: Gain


@dataclass(frozen=True)
class Verdict:
    """One dimension's traffic light: the most urgent finding, the figure behind it, or why there is none."""

    dimension: str
    label: str
    status: str
    message: str
    rule_id: str | None
    figure: Metric | None
    threshold: str
    findings: int
    measure_with: str

    def to_json(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "label": self.label, "status": self.status, "message": self.message,
                "rule": self.rule_id, "threshold": self.threshold or None,
                "figure": self.figure.to_json() if self.figure else None, "findings": self.findings,
                "measure_with": self.measure_with if self.status == UNKNOWN else None}


@dataclass(frozen=True)
class Recommendation:
    """An action, the finding that triggered it, the figure behind it and its predicted effect."""

    rank: int
    rule_id: str
    dimension: str
    severity: str
    finding: str
    action: str
    evidence: Metric
    evidence_text: str
    threshold: str
    threshold_reasons: tuple[str, ...]
    gain: float | None
    gain_text: str
    gain_basis: str
    also: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "rule": self.rule_id, "dimension": self.dimension, "severity": self.severity,
                "finding": self.finding, "action": self.action, "evidence": self.evidence.to_json(),
                "evidence_text": self.evidence_text, "threshold": self.threshold,
                "threshold_reasons": list(self.threshold_reasons), "gain": self.gain, "gain_text": self.gain_text,
                "gain_basis": self.gain_basis, "also": list(self.also)}


@dataclass(frozen=True)
class Assessment:
    """Verdicts per dimension, ranked recommendations and the metrics they rest on."""

    verdicts: tuple[Verdict, ...]
    recommendations: tuple[Recommendation, ...]
    metrics: Mapping[str, Metric]
    findings: tuple[Finding, ...] = ()
    sources: tuple[str, ...] = field(default_factory=tuple)

    def top(self, n: int = TOP_ACTIONS) -> tuple[Recommendation, ...]:
        """The n most valuable actions; one the measured figures say gains nothing is never among them."""
        return tuple(r for r in self.recommendations if r.gain is None or r.gain > 0)[:n]

    def verdict(self, dimension: str) -> Verdict:
        return next(v for v in self.verdicts if v.dimension == dimension)

    @property
    def judged(self) -> bool:
        """Whether any dimension has a verdict (a report of documents no rule reads has nothing to summarise)."""
        return any(v.status != UNKNOWN for v in self.verdicts)

    def to_json(self) -> dict[str, Any]:
        return {"schema": ASSESSMENT_SCHEMA, "version": ASSESSMENT_VERSION, "rules": list(self.sources),
                "verdicts": [v.to_json() for v in self.verdicts],
                "top": [r.rule_id for r in self.top()],
                "recommendations": [r.to_json() for r in self.recommendations],
                "metrics": {name: m.to_json() for name, m in sorted(self.metrics.items())}}


def assess(data: ReportData, rules: RuleSet | None = None) -> Assessment:
    """The assessment of a report's documents (the rules from $AI_READY_REPORT_RULES when none are given)."""
    return evaluate(rules if rules is not None else rules_from_environment(), extract_metrics(data))


def evaluate(rules: RuleSet, metrics: Mapping[str, Metric]) -> Assessment:
    """Apply every rule to every metric it names; pure, so each rule can be tested alone."""
    findings = []
    for order, rule in enumerate(rules.rules):
        for metric, captured in _matches(rule.metric, metrics):
            if not _applies(rule, metrics, captured) or rule.condition.holds(metric.value) is not True:
                continue
            findings.append(_finding(rule, order, metric, captured, metrics))
    verdicts = tuple(_verdict(d, rules, findings, metrics) for d in DIMENSIONS)
    return Assessment(verdicts, _recommendations(findings), dict(metrics), tuple(findings), rules.sources)


def _matches(pattern: str, metrics: Mapping[str, Metric]) -> list[tuple[Metric, str]]:
    if "*" not in pattern:
        return [(metrics[pattern], "")] if pattern in metrics else []
    regex = re.compile("^" + re.escape(pattern).replace(r"\*", f"({PLACEHOLDER_PATTERN})") + "$")
    return [(m, match.group(1)) for name, m in sorted(metrics.items()) if (match := regex.match(name))]


def _applies(rule: Rule, metrics: Mapping[str, Metric], captured: str) -> bool:
    for name, condition in rule.when:
        metric = metrics.get(name.replace("*", captured))
        if metric is None or condition.holds(metric.value) is not True:
            return False
    return True


def _render(template: str, metric: Metric, threshold: str, metrics: Mapping[str, Metric], captured: str) -> str:
    values = {"value": metric.text, "label": metric.label, "system": metric.system or "the target system",
              "threshold": threshold, "ceiling": metric.ceiling or "no ceiling recorded", "source": metric.source,
              "origin": metric.origin}

    def field_text(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("metric:"):
            other = metrics.get(name.removeprefix("metric:").replace("*", captured))
            return other.text if other is not None else "not recorded"
        return values[name]

    return _FIELD.sub(field_text, template)


def _default_evidence(metric: Metric) -> str:
    text = f"{metric.label}: {metric.text}"
    if metric.ceiling:
        text += f" against {metric.ceiling}"
    return f"{text}; from {metric.source}, {metric.origin}"


def _finding(rule: Rule, order: int, metric: Metric, captured: str, metrics: Mapping[str, Metric]) -> Finding:
    threshold = rule.condition.describe(metric.unit)
    render = lambda text: _render(text, metric, threshold, metrics, captured)  # noqa: E731
    return Finding(rule, order, metric, render(rule.message), render(rule.recommendation),
                   render(rule.evidence) if rule.evidence else _default_evidence(metric), threshold,
                   compute_gain(rule.gain, metrics, captured))


def _urgency(finding: Finding) -> tuple[int, int, float]:
    """Most urgent first: severity, then the rule's place in the file (its author's priority), then the match
    furthest past the threshold (the worst of several systems)."""
    return (-SEVERITIES.index(finding.rule.severity), finding.order,
            -finding.rule.condition.margin(finding.metric.value))


def _verdict(dimension: Dimension, rules: RuleSet, findings: list[Finding],
             metrics: Mapping[str, Metric]) -> Verdict:
    mine = sorted((f for f in findings if f.rule.dimension == dimension.key), key=_urgency)
    if mine:
        worst = mine[0]
        return Verdict(dimension.key, dimension.label, worst.rule.severity, worst.message, worst.rule.id,
                       worst.metric, worst.threshold, len(mine), dimension.measure_with)
    present = [m for rule in rules.rules if rule.dimension == dimension.key for m, _ in _matches(rule.metric,
                                                                                              metrics)]
    if present:
        checked = len({m.name for m in present})
        return Verdict(dimension.key, dimension.label, "green",
                       f"no rule is triggered by the {checked} figure{'s' if checked != 1 else ''} checked",
                       None, present[0], "", 0, dimension.measure_with)
    return Verdict(dimension.key, dimension.label, UNKNOWN, f"no data: {dimension.measure_with}", None, None, "", 0,
                   dimension.measure_with)


def _rank_key(finding: Finding) -> tuple[int, float, int, int, float]:
    """Derived gains first, largest first; then actions whose gain cannot be derived; then those the figures
    say would gain nothing. Within each, the more urgent severity, then file order, then the worst match."""
    gain = finding.gain.value
    group = 0 if gain is not None and gain > 0 else 1 if gain is None else 2
    return (group, -(gain or 0.0), -SEVERITIES.index(finding.rule.severity), finding.order,
            -finding.rule.condition.margin(finding.metric.value))


def _recommendations(findings: list[Finding]) -> tuple[Recommendation, ...]:
    """One recommendation per rule with an action: its strongest match, the other matches named beside it."""
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.action:
            by_rule.setdefault(finding.rule.id, []).append(finding)
    chosen = []
    for group in by_rule.values():
        ordered = sorted(group, key=_rank_key)
        chosen.append((ordered[0], tuple(f"{f.metric.label}: {f.metric.text}" for f in ordered[1:])))
    chosen.sort(key=lambda item: _rank_key(item[0]))
    return tuple(
        Recommendation(rank=i, rule_id=f.rule.id, dimension=f.rule.dimension, severity=f.rule.severity,
                       finding=f.message, action=f.action, evidence=f.metric, evidence_text=f.evidence,
                       threshold=f.threshold,
                       threshold_reasons=tuple(f"${t.name}: {t.reason}" for t in f.rule.condition.thresholds),
                       gain=f.gain.value, gain_text=f.gain.text, gain_basis=f.gain.basis, also=also)
        for i, (f, also) in enumerate(chosen, 1))
