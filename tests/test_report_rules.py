"""The readiness verdicts and recommendations: metrics read from the stored documents, rules read from a file.

Each shipped rule fires just inside its threshold and not just outside it; the condition language parses what
it documents and rejects the rest with one line naming the file, rule and field; a centre's file extends or
replaces the shipped rules; missing data is "unknown", never a crash; actions are ranked by a gain derived from
the measured figures; and everything a document or a rule file says reaches the page escaped.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

import ai_ready
from ai_ready.bench import gemm
from ai_ready.bench.ceiling import apply_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.bench.memory import cpu as memory_cpu
from ai_ready.bench.memory.gpu import with_ceilings
from ai_ready.errors import InputError
from ai_ready.measure.harness import Budget
from ai_ready.profile import merge
from ai_ready.records import Record, ResultDocument, load_results
from ai_ready.report.assess import (
    DEFAULT_RULES_PATH, DIMENSIONS, RULES_ENV, Assessment, Condition, ConditionError, Metric, RuleSet,
    assess, evaluate, extract_metrics, load_rules, parse_condition, spec_for,
)
from ai_ready.report.assess.rules import Threshold
from ai_ready.report.render import template_environment
from ai_ready.report.sections.common import ReportData
from ai_ready.report.sections.recommendations import build_recommendations
from ai_ready.report.sections.summary import build_summary

DATA = Path(__file__).resolve().parent / "data"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
SYSTEM = "jupiter-booster"
EPS = 1e-6
DEFAULT = load_rules()
DIMENSION_KEYS = [d.key for d in DIMENSIONS]


def metric(name: str, value: Any, system: str = "") -> Metric:
    """A metric as the extractor makes it, for rules tested without documents."""
    spec = spec_for(name)
    assert spec is not None, name
    return Metric(name, value, spec.unit, name, "test.json", "test", system=system)


def metrics(**values: Any) -> dict[str, Metric]:
    """metrics(profile__mfu=0.2) → {"profile.mfu": ...}; "__" stands for ".", "_star_" for the system."""
    out = {}
    for key, value in values.items():
        name = key.replace("_star_", SYSTEM).replace("__", ".")
        out[name] = metric(name, value, SYSTEM if SYSTEM in name else "")
    return out


def only(rule_id: str) -> RuleSet:
    rule = next(r for r in DEFAULT.rules if r.id == rule_id)
    return RuleSet((rule,), DEFAULT.thresholds, DEFAULT.sources)


# --------------------------------------------------------------------------- each shipped rule, one by one

def inside_and_outside(condition: Condition) -> tuple[Any, list[Any]]:
    """A value just inside the condition and values just outside it (bounds are where they flip)."""
    op, operands = condition.op, condition.operands
    if op == "between":
        low, high = operands
        return low, [high, low - EPS * max(1.0, abs(low))]
    x = operands[0]
    if isinstance(x, bool):
        return (x, [not x]) if op == "==" else (not x, [x])
    if isinstance(x, str):
        return (x, [x + "-other"]) if op == "==" else (x + "-other", [x])
    eps = EPS * max(1.0, abs(x))
    inside, outside = {"<": (x - eps, x), "<=": (x, x + eps), ">": (x + eps, x), ">=": (x, x - eps),
                       "==": (x, x + eps), "!=": (x + eps, x)}[op]
    return inside, [outside]


def rule_metrics(rule, value: Any) -> dict[str, Metric]:
    name = rule.metric.replace("*", SYSTEM)
    out = {name: metric(name, value, SYSTEM if "*" in rule.metric else "")}
    for when_name, condition in rule.when:
        concrete = when_name.replace("*", SYSTEM)
        out[concrete] = metric(concrete, inside_and_outside(condition)[0])
    return out


@pytest.mark.parametrize("rule", DEFAULT.rules, ids=lambda r: r.id)
def test_each_shipped_rule_fires_just_inside_its_threshold_and_not_just_outside(rule) -> None:
    inside, outsides = inside_and_outside(rule.condition)
    fired = evaluate(only(rule.id), rule_metrics(rule, inside))
    verdict = fired.verdict(rule.dimension)
    assert (verdict.status, verdict.rule_id) == (rule.severity, rule.id)
    assert verdict.figure is not None and verdict.figure.name == rule.metric.replace("*", SYSTEM)
    assert "{" not in verdict.message and verdict.message
    assert [r.rule_id for r in fired.recommendations] == ([rule.id] if rule.recommendation else [])
    for other in DIMENSION_KEYS:
        if other != rule.dimension:
            assert fired.verdict(other).status == "unknown"
    for outside in outsides:
        quiet = evaluate(only(rule.id), rule_metrics(rule, outside))
        assert quiet.verdict(rule.dimension).status == "green" and quiet.verdict(rule.dimension).rule_id is None
        assert quiet.recommendations == ()


@pytest.mark.parametrize("rule", [r for r in DEFAULT.rules if r.when], ids=lambda r: r.id)
def test_a_rule_with_a_when_clause_stays_quiet_when_it_does_not_hold(rule) -> None:
    inside, _ = inside_and_outside(rule.condition)
    values = rule_metrics(rule, inside)
    for when_name, condition in rule.when:
        concrete = when_name.replace("*", SYSTEM)
        values[concrete] = metric(concrete, inside_and_outside(condition)[1][0])
    assert evaluate(only(rule.id), values).findings == ()
    del values[rule.when[0][0].replace("*", SYSTEM)]
    assert evaluate(only(rule.id), values).findings == ()


@pytest.mark.parametrize("name,value,dimension,status", [
    ("profile.mfu", 0.2999, "compute", "red"), ("profile.mfu", 0.30, "compute", "amber"),
    ("profile.mfu", 0.3999, "compute", "amber"), ("profile.mfu", 0.40, "compute", "green"),
    ("profile.data_wait_fraction", 0.0499, "io", "green"), ("profile.data_wait_fraction", 0.05, "io", "amber"),
    ("profile.data_wait_fraction", 0.0999, "io", "amber"), ("profile.data_wait_fraction", 0.10, "io", "red"),
    ("profile.comm_fraction", 0.0999, "communication", "green"), ("profile.comm_fraction", 0.10, "communication",
                                                                   "amber"),
    ("profile.comm_fraction", 0.20, "communication", "red"),
    ("profile.memory_peak_fraction", 0.8499, "memory", "green"), ("profile.memory_peak_fraction", 0.85, "memory",
                                                                    "amber"),
    ("profile.memory_peak_fraction", 0.95, "memory", "red"),
    ("extrapolation.*.scaling_efficiency_at_full_system", 0.4999, "scalability", "red"),
    ("extrapolation.*.scaling_efficiency_at_full_system", 0.7999, "scalability", "amber"),
    ("extrapolation.*.scaling_efficiency_at_full_system", 0.80, "scalability", "green"),
    ("extrapolation.*.goodput", 0.6999, "resilience", "red"), ("extrapolation.*.goodput", 0.8999, "resilience",
                                                               "amber"),
    ("extrapolation.*.goodput", 0.90, "resilience", "green"),
    ("extrapolation.*.fits_memory", False, "memory", "red"), ("extrapolation.*.fits_memory", True, "memory", "green"),
    ("collectives.busbw_fraction_of_ceiling", 0.4999, "communication", "red"),
    ("collectives.busbw_fraction_of_ceiling", 0.70, "communication", "green"),
    ("gemm.best_fraction_of_peak", 0.4999, "compute", "red"),
    ("gemm.best_fraction_of_peak", 0.6999, "compute", "amber"),
    ("profile.mixed_precision", False, "software", "amber"), ("profile.mixed_precision", True, "software", "green"),
    ("profile.checkpointing", False, "resilience", "amber"),
])
def test_shipped_thresholds(name: str, value: Any, dimension: str, status: str) -> None:
    concrete = name.replace("*", SYSTEM)
    assessment = evaluate(DEFAULT, {concrete: metric(concrete, value, SYSTEM if "*" in name else "")})
    assert assessment.verdict(dimension).status == status


def test_severity_bands_of_one_metric_neither_overlap_nor_leave_a_gap() -> None:
    families: dict[str, list] = {}
    for rule in DEFAULT.rules:
        if not rule.when:
            families.setdefault(rule.metric, []).append(rule)
    for name, rules in families.items():
        if spec_for(name.replace("*", "x")).kind != "number":
            continue
        bounds = sorted({float(v) for r in rules for v in r.condition.operands})
        probes = [b + d for b in bounds for d in (-EPS, 0.0, EPS)] + [bounds[0] - 1.0, bounds[-1] + 1.0]
        complete = {r.severity for r in rules} == {"red", "amber", "green"}
        for value in probes:
            firing = [r.id for r in rules if r.condition.holds(value)]
            assert len(firing) <= 1, (name, value, firing)
            if complete:
                assert len(firing) == 1, (name, value)


def test_shipped_file_covers_every_dimension_and_gives_every_threshold_a_reason() -> None:
    assert {r.dimension for r in DEFAULT.rules} == set(DIMENSION_KEYS)
    assert all(t.reason for t in DEFAULT.thresholds.values())
    used = {t.name for r in DEFAULT.rules for t in r.condition.thresholds}
    assert used == set(DEFAULT.thresholds), "a threshold no rule uses"
    assert len({r.id for r in DEFAULT.rules}) == len(DEFAULT.rules)


def test_the_rule_file_ships_inside_the_package() -> None:
    package = Path(ai_ready.__file__).resolve().parent
    assert DEFAULT_RULES_PATH.is_file() and DEFAULT_RULES_PATH.is_relative_to(package)


# --------------------------------------------------------------------------- the condition language

@pytest.mark.parametrize("text,value,holds", [
    ("< 0.30", 0.29, True), ("<0.3", 0.3, False), ("<= 0.3", 0.3, True), ("> 10%", 0.11, True),
    (">= 10%", 0.1, True), ("> 1e-3", 0.002, True), ("== 0.5", 0.5, True), ("!= 0.5", 0.5, False),
    ("between 0.3 0.45", 0.3, True), ("between 0.3 0.45", 0.45, False), ("between 30% 45%", 0.4, True),
    ("BETWEEN 1 2", 1.5, True), ("== false", False, True), ("== True", True, True), ("!= false", True, True),
    ("== fp16", "FP16", True), ("== fp16", "bf16", False), ('== "peak resident"', "peak resident", True),
    ("!= 'none'", "DDP", True),
])
def test_condition_parses_and_compares(text: str, value: Any, holds: bool) -> None:
    assert parse_condition(text).holds(value) is holds


def test_condition_of_another_kind_does_not_apply() -> None:
    assert parse_condition("< 0.3").holds(True) is None
    assert parse_condition("== false").holds(0.0) is None
    assert parse_condition("< 0.3").holds(float("nan")) is None
    assert parse_condition("== fp16").holds(3.0) is None


def test_condition_resolves_named_thresholds_and_remembers_their_reasons() -> None:
    thresholds = {"low": Threshold("low", 0.2, "because"), "high": Threshold("high", 0.4, "also")}
    condition = parse_condition("between $low $high", thresholds)
    assert condition.operands == (0.2, 0.4) and [t.reason for t in condition.thresholds] == ["because", "also"]
    assert condition.describe("fraction") == "between 20.0% and 40.0%"
    assert parse_condition("< 300").describe("s") == "< 300 s"


@pytest.mark.parametrize("text,fragment", [
    ("=< 0.3", "not a condition"), ("0.3", "not a condition"), ("", "must be text"), (None, "must be text"),
    (0.3, "must be text"), ("< abc", "not a number"), ("between 0.5 0.3", "low bound"), ("between 0.3", "not a"),
    ("< $nope", "names no threshold"), ("> 1 2", "not a condition"), ("< 3 %", "not a condition"),
    ("< __import__('os').system('true')", "not a"), ("== a b", "not a condition"), ("=== 1", "not a"),
    ("> 30%%", "not a number"), ("== {value}", "not a number"),
])
def test_bad_conditions_are_refused_with_a_reason(text: Any, fragment: str) -> None:
    with pytest.raises(ConditionError, match=fragment.replace("(", r"\(")):
        parse_condition(text)


# --------------------------------------------------------------------------- a centre's own rule file

def write(tmp_path: Path, text: str, name: str = "centre.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CENTRE = """
mode: extend
thresholds:
  mfu_red: {value: 20%, reason: "our H200 partition's acceptance"}
  fs_read: {value: 10, reason: "our Lustre's rated client read rate"}
disable: [software.compile]
rules:
  - id: io.centre.read
    dimension: io
    metric: io.seq_read_gbs
    condition: "< $fs_read"
    severity: amber
    message: "reads reach {value} (threshold {threshold})"
    recommendation: "stage the data set to /local/nvme"
  - id: compute.mfu.green
    dimension: compute
    metric: profile.mfu
    condition: ">= 35%"
    severity: green
    message: "MFU {value} is fine here"
"""


def test_centre_file_extends_overrides_and_disables(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, CENTRE))
    ids = [r.id for r in rules.rules]
    assert "software.compile" not in ids and ids[-1] == "io.centre.read"
    assert ids.index("compute.mfu.green") == [r.id for r in DEFAULT.rules].index("compute.mfu.green")
    assert rules.sources == (str(DEFAULT_RULES_PATH), str(tmp_path / "centre.yaml"))
    values = metrics(profile__mfu=0.25, profile__compiled=False, io__seq_read_gbs=1.5)
    shipped, centre = evaluate(DEFAULT, values), evaluate(rules, values)
    assert shipped.verdict("compute").status == "red"
    assert centre.verdict("compute").status == "amber"  # the centre's lower mfu_red moves 25% out of red
    assert centre.verdict("io").status == "amber"
    assert centre.verdict("io").message == "reads reach 1.50 GB/s (threshold < 10.0 GB/s)"
    assert "software.compile" in [r.rule_id for r in shipped.recommendations]
    assert [r.rule_id for r in centre.recommendations] == ["compute.mfu.amber", "io.centre.read"]  # file order
    assert evaluate(rules, metrics(profile__mfu=0.45)).verdict("compute").message == "MFU 45.0% is fine here"
    # where the centre's green band overlaps the shipped amber one, the more urgent verdict wins
    assert evaluate(rules, metrics(profile__mfu=0.36)).verdict("compute").rule_id == "compute.mfu.amber"


def test_centre_file_replaces_the_shipped_rules(tmp_path: Path) -> None:
    path = write(tmp_path, CENTRE.replace("mode: extend", "mode: replace").replace("disable: [software.compile]\n",
                                                                                   ""))
    rules = load_rules(path)
    assert [r.id for r in rules.rules] == ["io.centre.read", "compute.mfu.green"]
    assert set(rules.thresholds) == {"mfu_red", "fs_read"} and rules.sources == (str(path),)
    result = evaluate(rules, metrics(profile__mfu=0.1, profile__data_wait_fraction=0.5))
    assert result.verdict("compute").status == "green" and result.verdict("io").status == "unknown"


def test_centre_file_from_the_environment_reaches_the_report(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(RULES_ENV, str(write(tmp_path, CENTRE)))
    data = ReportData.from_documents([io_document()], ["io.json"])
    assert "io.centre.read" in [r.rule_id for r in assess(data).recommendations]
    monkeypatch.delenv(RULES_ENV)
    assert "io.centre.read" not in [r.rule_id for r in assess(data).recommendations]


GOOD_RULE = {"id": "x.rule", "dimension": "io", "metric": "profile.data_wait_fraction", "condition": "> 5%",
             "severity": "amber", "message": "waits {value}"}


@pytest.mark.parametrize("change,field,fragment", [
    ({"dimension": "speed"}, "dimension", "not one of compute"),
    ({"severity": "orange"}, "severity", "not one of green, amber, red"),
    ({"metric": "profile.speed"}, "metric", "not a metric ai-ready extracts"),
    ({"metric": "profile.*"}, "metric", "not a metric ai-ready extracts"),
    ({"condition": "=> 5%"}, "condition", "not a condition"),
    ({"condition": "== true"}, "condition", "compares bool values but the metric is number"),
    ({"metric": "profile.compiled", "condition": "< 1"}, "condition", "compares number values but the metric is bool"),
    ({"condition": "> $missing"}, "condition", "names no threshold"),
    ({"message": "waits {speed}"}, "message", "unknown placeholder {speed}"),
    ({"message": "waits {value"}, "message", "opens or closes no placeholder"),
    ({"recommendation": "see {metric:profile.nope}"}, "recommendation", "not a metric"),
    ({"message": ""}, "message", "is required"),
    ({"recomendation": "typo"}, "recomendation", "unknown field"),
    ({"gain": {"kind": "magic"}}, "gain", "kind is one of"),
    ({"gain": {"kind": "fraction_removed"}}, "gain", "needs 'metric'"),
    ({"gain": {"kind": "fraction_removed", "metric": "profile.step_time_s"}}, "gain.metric", "share (fraction)"),
    ({"gain": {"kind": "fraction_removed", "metric": "extrapolation.*.comm_fraction"}}, "gain.metric", "'*'"),
    ({"gain": {"kind": "stated", "value": "lots", "basis": "x"}}, "gain.value", "not a number"),
    ({"gain": {"kind": "none", "basis": "x", "extra": 1}}, "gain", "'extra' is not a field"),
    ({"when": {"profile.world_size": "> many"}}, "when.profile.world_size", "not a number"),
    ({"when": "world_size > 1"}, "when", "must map metric names"),
])
def test_bad_rule_is_one_line_naming_file_rule_and_field(tmp_path: Path, change: dict, field: str,
                                                         fragment: str) -> None:
    import yaml

    rule = {**GOOD_RULE, **change}
    path = write(tmp_path, yaml.safe_dump({"rules": [rule]}))
    with pytest.raises(InputError) as caught:
        load_rules(path)
    text = str(caught.value)
    assert "\n" not in text
    assert f"report rules '{path}'" in text and "rule 'x.rule'" in text and f"field '{field}'" in text, text
    assert fragment in text, text


@pytest.mark.parametrize("text,fragment", [
    ("rules: [\n  - id: a\n", "not valid YAML"),
    ("- just a list\n", "must be a mapping"),
    ("colour: red\n", "unknown key 'colour'"),
    ("mode: merge\n", "field 'mode'"),
    ("version: 2\n", "field 'version'"),
    ("schema: other\n", "field 'schema'"),
    ("thresholds:\n  low: {value: 0.2}\n", "needs a reason"),
    ("thresholds:\n  low: {value: lots, reason: r}\n", "not a number"),
    ("disable: [no.such.rule]\n", "no rule 'no.such.rule' to disable"),
    ("mode: replace\n", "needs a list of rules"),
    ("mode: replace\ndisable: [compute.mfu.red]\nrules: []\n", "only a centre's file with mode: extend"),
    ("rules:\n  - {id: Bad Id}\n", "not a rule id"),
    ("rules:\n  - {id: a, dimension: io, metric: profile.mfu, condition: '< 1', severity: red, message: m}\n"
     "  - {id: a, dimension: io, metric: profile.mfu, condition: '< 1', severity: red, message: m}\n",
     "used twice"),
])
def test_bad_rule_file_is_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_rules(path)
    assert str(path) in str(caught.value) and fragment in str(caught.value) and "\n" not in str(caught.value)


def test_missing_rule_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_rules(tmp_path / "nowhere.yaml")


# --------------------------------------------------------------------------- missing data

def test_no_data_is_unknown_everywhere_never_a_crash() -> None:
    empty = evaluate(DEFAULT, {})
    assert [v.status for v in empty.verdicts] == ["unknown"] * len(DIMENSIONS)
    assert all(v.message.startswith("no data: ") and v.figure is None for v in empty.verdicts)
    assert empty.recommendations == () and empty.top() == ()
    unjudged = ResultDocument({}, [Record(benchmark="io", case="seq-read-1M", params={"op": "seq_read"},
                                          metric="bandwidth", unit="GB/s", value=2.0)])
    for documents in ([], [unjudged]):  # nothing, or only figures no shipped rule judges
        data = ReportData.from_documents(documents)
        assert assess(data, DEFAULT).to_json()["recommendations"] == []
        assert build_summary(data) is None and build_recommendations(data) is None


def test_documents_with_odd_or_partial_contents_do_not_break_the_assessment() -> None:
    failed = ResultDocument(meta={"kind": "profile", "profile": {"status": "failed", "job": {"name": "j"},
                                                                  "ranks": "not a list",
                                                                  "extrapolation": {"systems": [
                                                                      "junk", {"system": SYSTEM, "error": "boom"},
                                                                      {"system": "x", "prediction": {"run": 3}},
                                                                      {"system": "y", "error": "no layout fits",
                                                                       "scaling": [{"gpus": 8, "fits": False}]},
                                                                  ]}}})
    odd = ResultDocument(meta={"profile": "no"}, records=[
        Record(benchmark="profile", case="j", params={"phase": "data"}, metric="phase_time", unit="s", value=1.0),
        Record(benchmark="gemm", case="g", params={}, metric="throughput", unit="TFLOP/s", value=1.0,
               ceiling={"value": "high"}),
        Record(benchmark="memory", case="m", params={"op": "triad"}, metric="bandwidth", unit="GB/s", value=1.0,
               other_ceilings=[{"kind": "catalog", "value": 0}]),
        Record(benchmark="train", case="t", params={}, metric="mfu", unit="%", status="failed", reason="oom"),
        Record(benchmark="profile", case="j", params={}, metric="step_time", unit="s", status="skipped",
               reason="no steps"),
    ])
    data = ReportData.from_documents([failed, odd])
    result = assess(data)
    assert result.metrics["profile.status"].value == "failed"
    assert "gemm.best_fraction_of_peak" not in result.metrics and "memory.fraction_of_peak" not in result.metrics
    assert result.verdict("compute").status == "unknown" and result.verdict("memory").status == "red"
    json.dumps(result.to_json(), allow_nan=False)
    env = template_environment()
    env.get_template("sections/summary.html.j2").render(data=build_summary(data))
    env.get_template("sections/recommendations.html.j2").render(data=build_recommendations(data))


def test_a_gain_whose_inputs_are_missing_says_so() -> None:
    result = evaluate(only("software.mixed_precision"), metrics(profile__mixed_precision=False))
    [rec] = result.recommendations
    assert rec.gain is None and rec.gain_text == "not quantified"
    assert rec.gain_basis.startswith("cannot be derived: needs gemm.bf16_over_fp32 (not measured)")


# --------------------------------------------------------------------------- gains and ranking

def test_gains_follow_from_the_measured_figures() -> None:
    values = metrics(profile__mixed_precision=False, gemm__bf16_over_fp32=4.0, profile__compute_fraction=0.6,
                     profile__data_wait_fraction=0.2, profile__mfu=0.25, profile__gemm_fraction_at_precision=0.75,
                     gemm__best_fraction_of_peak=0.95,  # another dtype's best: never used for the job's gain
                     profile__step_time_cv=0.2, profile__step_time_p90_over_median=1.3, profile__rank_spread=0.08)
    gains = {r.rule_id: r.gain for r in evaluate(DEFAULT, values).recommendations}
    assert gains["software.mixed_precision"] == pytest.approx(1 / (0.4 + 0.6 / 4) - 1)  # Amdahl
    assert gains["io.data_wait.red"] == pytest.approx(1 / 0.8 - 1)  # the wait removed
    assert gains["compute.mfu.red"] == pytest.approx(0.75 / 0.25 - 1)  # the job at its own precision's GEMM
    assert gains["scalability.step_jitter"] == pytest.approx(0.3)  # steps at the median, not the p90
    assert gains["scalability.rank_spread"] == pytest.approx(0.08)  # the slowest rank caught up


def test_recommendations_rank_by_gain_then_severity_with_unquantified_after() -> None:
    values = metrics(profile__comm_fraction=0.3, profile__data_wait_fraction=0.2, profile__optimizer_fraction=0.12,
                     profile__compiled=False, extrapolation___star___fits_memory=False, profile__mfu=0.25,
                     gemm__best_fraction_of_peak=0.2, profile__gemm_fraction_at_precision=0.2)
    result = evaluate(DEFAULT, values)
    order = [r.rule_id for r in result.recommendations]
    assert order[:3] == ["communication.profile.red", "io.data_wait.red", "compute.optimizer"]
    assert [r.gain for r in result.recommendations[:3]] == pytest.approx([0.3 / 0.7, 0.25, 0.12 / 0.88])
    # no gain can be derived: red before amber, each in file order
    assert order[3:-1] == ["compute.gemm.red", "memory.fit_at_scale", "software.compile"]
    # MFU is above the node's GEMM efficiency: the figures say no gain; last
    assert order[-1] == "compute.mfu.red" and result.recommendations[-1].gain == 0.0
    assert [r.rule_id for r in result.top()] == order[:3] and [r.rank for r in result.recommendations] == \
        list(range(1, len(order) + 1))


def test_the_worst_system_is_the_figure_behind_a_verdict_and_the_others_are_named() -> None:
    values = {f"extrapolation.{s}.goodput": metric(f"extrapolation.{s}.goodput", g, s)
              for s, g in (("alpha", 0.6), ("beta", 0.4), ("gamma", 0.95))}
    result = evaluate(DEFAULT, values)
    verdict = result.verdict("resilience")
    assert verdict.status == "red" and verdict.figure.system == "beta" and "on beta only 40.0%" in verdict.message
    [red] = [r for r in result.recommendations if r.rule_id == "resilience.goodput.red"]
    assert red.evidence.system == "beta" and red.also == ("extrapolation.alpha.goodput: 60.0%",)


# --------------------------------------------------------------------------- metrics from real documents

def profile_rank(rank: int = 0, world: int = 1, slow: float = 1.0, data: float = 0.002, comm: float = 0.0,
                 exposed: float = 0.0, autocast: tuple[str, ...] = ("cuda:bfloat16",), ddp: bool = True,
                 peak_gb: float = 60.0) -> dict[str, Any]:
    """One rank's raw profile as the in-job agent writes it (ai_ready.profile.agent.Recorder.snapshot)."""
    steps = []
    for index in range(13):
        jitter = 1.0 + 0.01 * (index % 3)
        phases = {"data": data, "forward": 0.03 * slow * jitter, "backward": 0.06 * slow * jitter,
                  "optimizer": 0.004, "checkpoint": 0.0, "comm": comm, "sync": 0.0}
        phases["other"] = 0.001
        steps.append({"index": index, "phases": phases, "total_s": sum(phases.values()), "tokens": 8192,
                      "samples": 8, "exposed_comm": exposed, "forward_calls": 1, "backward_calls": 1})
    return {"rank": rank, "world_size": world, "host": f"node{rank:02d}", "device": f"cuda:{rank}",
            "device_name": "NVIDIA H100 80GB HBM3", "status": "complete", "step_source": "optimizer",
            "steps": steps, "timed_steps": list(range(3, 13)), "optimizer_steps": 13,
            "settings": {"warmup_steps": 3, "warmup_steps_taken": 3, "steps": 10},
            "flops": {"counted": 4.0e14, "step": 2, "method": "FlopCounterMode", "note": None},
            "model": {"class": "GPT", "parameters": 1_000_000, "matmul_parameters": 900_000, "dtypes": {"float32": 9},
                      "transformer": None},
            "memory": {"peak_gb": peak_gb, "kind": "CUDA peak allocated"},
            "features": {"autocast": list(autocast), "grad_scaler": False, "compile": False, "ddp": ddp,
                         "fsdp": False, "activation_checkpointing": False, "checkpointing": True,
                         "dataloader": {"workers": 4, "pin_memory": True, "batch_size": 8,
                                        "persistent_workers": True}},
            "checkpoint_io": {"save": {"count": 2, "bytes": 4_000_000_000, "seconds": 8.0}}}


PEAK = {"value": 989.0, "unit": "TFLOP/s", "kind": "catalog", "label": "h100-sxm bf16 dense peak",
        "source": "catalog h100-sxm peak_tflops.bf16 (source S1)", "references": []}
EXTRAPOLATION = {
    "workload": {"kind": "transformer"}, "source": "target.model of ai-ready.yaml", "notes": [],
    "systems": [
        {"system": SYSTEM, "error": None, "prediction": {
            "gpus": 20480, "gpus_available": 24000, "step_time_s": 0.5532609021722371, "mfu": 0.15909058715204505,
            "peak_tflops_per_gpu": 989.0, "memory_gb_per_gpu": 34.098369792, "hbm_gb_per_gpu": 96.0,
            "fits_memory": True,
            "breakdown": {"forward": 0.046984862693382944, "backward": 0.09156466531931741,
                          "grad_accumulate": 0.008814052291764705, "recompute": 0.0, "tp_comm": 0.023423201367521365,
                          "cp_comm": 0.0, "ep_comm": 0.0, "pp_bubble": 0.10952533749049237,
                          "pp_p2p": 0.023924929422222223, "dp_comm": 0.24897557556400673,
                          "optimizer": 4.8278023529411764e-05},
            "run": {"goodput": 0.8500324642848814, "checkpoint_s": 0.8598866841599999,
                    "checkpoint_interval_s": 84.60571972718016, "mttf_hours": 1.171875}},
         "scaling": [{"gpus": 4, "fits": False, "reason": "no layout fits"},
                     {"gpus": 16, "gpus_used": 16, "fits": True, "efficiency": 1.0},
                     {"gpus": 24000, "gpus_used": 20480, "fits": True, "efficiency": 0.2809217047464763}]},
        {"system": "tiny-cluster", "prediction": None, "error": "no layout fits the memory of a100 (40 GB)",
         "scaling": [{"gpus": 8, "fits": False, "reason": "no layout fits"}]},
    ]}


def profile_document(ranks: list[dict[str, Any]], name: str = "llm", extrapolation: dict | None = None
                     ) -> ResultDocument:
    """A profile document as `ai-ready profile` writes it (merge.rank_records, merge.aggregate_record)."""
    records = [r for rank in ranks for r in merge.rank_records(rank, name, PEAK)]
    aggregate = merge.aggregate_record(ranks, name)
    records += [aggregate] if aggregate is not None else []
    keys = ("rank", "world_size", "host", "device", "device_name", "status", "step_source", "flops", "model",
            "memory", "features", "checkpoint_io", "settings")
    profile = {"job": {"name": name, "command": ["python", "train.py"]}, "status": "complete",
               "ranks": [{k: rank.get(k) for k in keys} for rank in ranks], "extrapolation": extrapolation}
    return ResultDocument(meta={"kind": "profile", "status": "complete", "profile": profile,
                                "environment": {"device": {"kind": "cuda", "memory_gb": 80.0},
                                                "cpu": {"memory_gb": 512.0}}}, records=records)


def test_metrics_of_the_example_profile() -> None:
    data = ReportData.from_documents([load_results(DATA / "profile_myjob.json")], ["profile_myjob.json"])
    found = extract_metrics(data)
    assert all(spec_for(name) is not None for name in found)
    mfu = found["profile.mfu"]
    assert mfu.value == pytest.approx(0.432971082170949) and mfu.text == "43.3%"
    assert mfu.ceiling == "local-cpu fp32 dense peak (0.2944 TFLOP/s)" and mfu.source == "profile_myjob.json"
    assert mfu.origin == "record profile/myjob/mfu, rank 0" and mfu.label == "MFU of myjob"
    assert found["profile.data_wait_fraction"].value == pytest.approx(0.008944607107600155)
    assert found["profile.optimizer_fraction"].value == pytest.approx(0.07705920631063645)
    assert found["profile.compute_fraction"].value == pytest.approx(0.26712161888545105 + 0.5651016020245982)
    assert found["profile.memory_peak_fraction"].value == pytest.approx(0.433004544 / 25.276510208)
    assert found["profile.memory_peak_fraction"].ceiling == "host memory, 25.3 GB"
    assert found["profile.step_time_cv"].value == pytest.approx(0.07486442190217393)
    assert found["profile.checkpoint_seconds"].value == pytest.approx(0.009038014999532606)
    assert (found["profile.mixed_precision"].value, found["profile.compiled"].value) == (False, False)
    assert (found["profile.precision"].value, found["profile.world_size"].value) == ("fp32", 1)
    assert found["profile.dataloader_workers"].value == 0 and found["profile.distributed_api"].value == "none"
    # one process: no communication to judge; no extrapolation stored in this document
    assert "profile.comm_fraction" not in found and not any(n.startswith("extrapolation.") for n in found)


def test_default_rules_on_the_example_profile() -> None:
    data = ReportData.from_documents([load_results(DATA / "profile_myjob.json")], ["profile_myjob.json"])
    result = assess(data, DEFAULT)
    assert {v.dimension: v.status for v in result.verdicts} == {
        "compute": "green", "scalability": "green", "memory": "green", "communication": "unknown", "io": "green",
        "resilience": "green", "software": "amber"}
    assert result.verdict("software").message == "the job trains in fp32, not in mixed precision"
    assert [r.rule_id for r in result.recommendations] == ["software.mixed_precision", "software.compile"]
    assert all(r.gain is None for r in result.recommendations)


def test_metrics_of_a_multi_rank_gpu_profile_with_its_extrapolation() -> None:
    ranks = [profile_rank(0, world=2, exposed=0.01, comm=0.005), profile_rank(1, world=2, slow=1.2, exposed=0.01,
                                                                             comm=0.005)]
    found = extract_metrics(ReportData.from_documents([profile_document(ranks, extrapolation=EXTRAPOLATION)]))
    step = statistics.fmean(s["total_s"] for s in ranks[0]["steps"][3:])
    assert found["profile.comm_fraction"].value == pytest.approx((0.005 + 0.01) / step)
    assert found["profile.rank_spread"].value > 0.1  # rank 1 is 20% slower in forward and backward
    assert found["profile.memory_peak_fraction"].value == pytest.approx(60 / 80)
    assert found["profile.mixed_precision"].value is True and found["profile.precision"].value == "bf16"
    assert found["profile.data_parallel"].value is True and found["profile.distributed_api"].value == "DDP"
    assert found["profile.mfu"].ceiling == "h100-sxm bf16 dense peak, 989 TFLOP/s"
    key = f"extrapolation.{SYSTEM}"
    assert found[f"{key}.scaling_efficiency_at_full_system"].value == pytest.approx(0.2809217047464763)
    assert found[f"{key}.scaling_efficiency_at_full_system"].ceiling == \
        "per-GPU throughput at 20,480 GPUs relative to 16 GPUs"
    assert found[f"{key}.goodput"].value == pytest.approx(0.8500324642848814)
    assert found[f"{key}.fits_memory"].value is True
    assert found[f"{key}.comm_fraction"].value == pytest.approx((0.023423201367521365 + 0.023924929422222223
                                                                 + 0.24897557556400673) / 0.5532609021722371)
    assert found[f"{key}.checkpoint_overhead"].value == pytest.approx(0.8598866841599999 / (84.60571972718016
                                                                                             + 0.8598866841599999))
    assert found["extrapolation.tiny-cluster.fits_memory"].value is False  # nothing fits on its curve
    assert found[f"{key}.goodput"].system == SYSTEM
    result = assess(ReportData.from_documents([profile_document(ranks, extrapolation=EXTRAPOLATION)]), DEFAULT)
    assert result.verdict("memory").status == "red" and result.verdict("memory").figure.system == "tiny-cluster"
    assert result.verdict("scalability").status == "red"


def test_metrics_of_benchmark_documents_written_and_read_back(tmp_path: Path) -> None:
    budget = Budget(warmup_s=0.01, min_time_s=0.02, min_samples=3, max_samples=5)
    ctx = BenchContext(device="cpu", device_name="test-cpu", budget=budget)
    peaks = {dtype: {"value": 1.0, "unit": "TFLOP/s", "kind": "declared", "label": f"test {dtype} peak",
                     "source": "assumption: test"} for dtype in ("fp32", "bf16")}
    gemm_records = [r for dtype in ("fp32", "bf16") for r in gemm.run_case(gemm.GemmCase("square", 96, 96, 96, dtype),
                                                                          ctx, peaks[dtype])]
    copy = memory_cpu.run_stream("copy", 1 << 16, ctx, None)
    triad = memory_cpu.run_stream("triad", 1 << 16, ctx, memory_cpu.copy_ceiling(copy))
    hbm = {"value": 3350.0, "unit": "GB/s", "kind": "catalog", "label": "h100-sxm HBM bandwidth",
           "source": "catalog h100-sxm memory.bandwidth_tbs"}
    gpu_triad = with_ceilings(Record(benchmark="memory", case="triad", params={"op": "triad"}, metric="bandwidth",
                                     unit="GB/s", value=2800.0), {"value": 3000.0, "unit": "GB/s",
                                                                  "kind": "measured", "label": "d2d copy",
                                                                  "source": "this run"}, hbm)
    paths = {"gemm": ResultDocument({"status": "complete"}, gemm_records).save(tmp_path / "gemm.json"),
             "cpu-memory": ResultDocument({"status": "complete"}, [copy, triad]).save(tmp_path / "mem.json"),
             "gpu-memory": ResultDocument({"status": "complete"}, [gpu_triad]).save(tmp_path / "gpu.json"),
             "collectives": ResultDocument({"status": "complete"}, collective_records()).save(tmp_path / "c.json"),
             "io": io_document().save(tmp_path / "io.json"), "train": train_document().save(tmp_path / "t.json")}
    docs = {k: load_results(p) for k, p in paths.items()}

    def found(*keys: str) -> dict[str, Metric]:
        return extract_metrics(ReportData.from_documents([docs[k] for k in keys], [str(paths[k]) for k in keys]))

    g = found("gemm")
    best = max(r.pct_of_ceiling for r in gemm_records) / 100
    assert g["gemm.best_fraction_of_peak"].value == pytest.approx(best)
    assert g["gemm.best_fraction_of_peak"].source == str(paths["gemm"])
    by_dtype = {r.params["dtype"]: r.value for r in gemm_records}
    assert g["gemm.bf16_over_fp32"].value == pytest.approx(by_dtype["bf16"] / by_dtype["fp32"])
    assert "memory.fraction_of_peak" not in found("cpu-memory")  # a measured copy is not a peak
    gpu = found("cpu-memory", "gpu-memory")["memory.fraction_of_peak"]
    assert gpu.value == pytest.approx(2800 / 3350) and gpu.ceiling == "h100-sxm HBM bandwidth"
    c = found("collectives")["collectives.busbw_fraction_of_ceiling"]
    assert c.value == pytest.approx(0.6) and "all_reduce" in c.origin  # all_reduce first, though all_gather is better
    io = found("io")
    assert io["io.read_fraction_of_ceiling"].value == pytest.approx(0.4) and io["io.seq_read_gbs"].value == 8.0
    assert io["io.checkpoint_write_gbs"].value == 3.0
    t = found("train")
    assert t["train.mfu"].value == pytest.approx(0.35) and t["train.scaling_efficiency"].value == pytest.approx(0.7)
    assert t["train.scaling_efficiency"].ceiling == "ideal weak scaling at 4 ranks"
    assert assess(ReportData.from_documents(list(docs.values())), DEFAULT).verdict("io").status == "amber"


LINK = {"value": 450.0, "unit": "GB/s", "kind": "catalog", "label": "h100 scale-up link per direction",
        "source": "catalog h100 scale_up.link_gbs_per_direction"}


def collective_records() -> list[Record]:
    out = []
    for op, busbw in (("all_reduce", 270.0), ("all_gather", 360.0)):
        out.append(apply_ceiling(Record(benchmark="collectives", case=f"{op}-out-of-place-1GiB",
                                        params={"op": op, "backend": "nccl", "bytes": 1 << 30}, metric="busbw",
                                        unit="GB/s", value=busbw), dict(LINK)))
    return out


def io_document() -> ResultDocument:
    fs = {"value": 20.0, "unit": "GB/s", "kind": "declared", "label": "rated client read", "source": "centre"}
    return ResultDocument({"status": "complete"}, [
        apply_ceiling(Record(benchmark="io", case="seq-read-16M", params={"op": "seq_read", "path": "/scratch"},
                             metric="bandwidth", unit="GB/s", value=8.0), fs),
        Record(benchmark="io", case="seq-read-1M", params={"op": "seq_read"}, metric="bandwidth", unit="GB/s",
               value=2.0),
        Record(benchmark="io", case="checkpoint-save-torch", params={"op": "save"}, metric="bandwidth", unit="GB/s",
               value=3.0),
    ])


def train_document() -> ResultDocument:
    return ResultDocument({"status": "complete"}, [
        Record(benchmark="train", case="gpt-small", params={"world_size": 1}, metric="mfu", unit="%", value=35.0,
               ceiling={"value": 100.0, "unit": "%", "kind": "catalog", "label": "100% of h100 bf16 dense peak",
                        "source": "catalog"}, pct_of_ceiling=35.0),
        Record(benchmark="train", case="gpt-small-scaling", params={"ranks": 2}, metric="scaling_efficiency",
               unit="%", value=90.0),
        Record(benchmark="train", case="gpt-small-scaling", params={"ranks": 4}, metric="scaling_efficiency",
               unit="%", value=70.0),
    ])


# --------------------------------------------------------------------------- JSON and the page

def test_json_carries_verdicts_key_figures_and_ranked_recommendations() -> None:
    ranks = [profile_rank(data=0.03, autocast=(), ddp=False)]
    result: Assessment = assess(ReportData.from_documents([profile_document(ranks, extrapolation=EXTRAPOLATION)],
                                                          ["llm/profile.json"]), DEFAULT)
    out = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert out["schema"] == "ai-ready/assessment" and out["rules"] == [str(DEFAULT_RULES_PATH)]
    assert [v["dimension"] for v in out["verdicts"]] == [d.key for d in DIMENSIONS]
    memory = next(v for v in out["verdicts"] if v["dimension"] == "memory")
    assert memory["status"] == "red" and memory["figure"]["system"] == "tiny-cluster"
    assert out["top"] == [r["rule"] for r in out["recommendations"][:3]]
    first = out["recommendations"][0]
    assert set(first) >= {"rank", "rule", "severity", "finding", "action", "evidence", "gain", "gain_text",
                          "gain_basis", "threshold", "threshold_reasons"}
    assert first["evidence"]["source"] == "llm/profile.json" and first["gain"] > 0
    assert out["metrics"]["profile.data_wait_fraction"]["unit"] == "fraction"
    assert set(out["metrics"]) <= {n for n in result.metrics}


def hostile_document() -> ResultDocument:
    rank = profile_rank(data=0.03, autocast=())
    return profile_document([rank], name=SCRIPT, extrapolation={"systems": [
        {"system": SCRIPT, "prediction": {"fits_memory": False}, "scaling": []}]})


def test_document_and_rule_file_text_reaches_the_page_escaped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(RULES_ENV, str(write(tmp_path, f"""
rules:
  - id: centre.hostile
    dimension: software
    metric: profile.compiled
    condition: "== false"
    severity: red
    message: "{IMG} {{label}}"
    recommendation: "{IMG} do it"
    gain: {{kind: stated, value: 50%, basis: "{IMG}"}}
""")))
    data = ReportData.from_documents([hostile_document()], [f"{SCRIPT}.json"])
    env = template_environment()
    html = (env.get_template("sections/summary.html.j2").render(data=build_summary(data))
            + env.get_template("sections/recommendations.html.j2").render(data=build_recommendations(data)))
    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "up to +50.0% throughput" not in html  # a stated gain is the file's estimate, not "up to"
    assert "+50.0% throughput" in html


def test_summary_lights_read_without_colour() -> None:
    data = ReportData.from_documents([load_results(DATA / "profile_myjob.json")], ["profile_myjob.json"])
    built = build_summary(data)
    html = template_environment().get_template("sections/summary.html.j2").render(data=built)
    for icon, word in (("✖", "red"), ("▲", "amber"), ("✔", "green"), ("?", "no data")):
        assert f'aria-hidden="true">{icon}</span> {word}</span>' in html
    rows = {v["dimension"]: v["light"]["text"] for v in built["verdicts"]}
    assert rows["communication"] == "no data" and rows["software"] == "amber"
    assert "the job trains in fp32, not in mixed precision" in html
    assert html.count('<li class="action action-amber">') == 2
