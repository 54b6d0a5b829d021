"""Validation of the performance model against published large-scale training runs.

The validation set ships with the package (``model/data/published_runs.yaml``, schema
``ai-ready/published-runs`` version 1): tables copied from papers and READMEs, each with its
source, the figure it prints (``figure.metric``), the software stack of its runs (``software``),
shared settings (``defaults``), what had to be assumed (``assumptions``) and its rows.

Every row is one *case* (two for Korthikanti et al., whose table also prints the full-recompute
baseline): the model, the training setup, the published layout (tp, pp, dp, recomputation,
ZeRO, sequence parallelism) held fixed, and the micro-batch size and interleaving chosen by
:func:`ai_ready.model.search.search` where the source does not publish them. The catalog system
is one node; the run spans as many of them as the row's GPU count needs
(``Hardware.total_gpus`` is the row's ``gpus``).

:func:`predict_case` predicts a case and compares it with the published figure:
``error = (predicted - published) / published``; :mod:`ai_ready.model.fit` fits each stack's kernel
efficiency on these cases and judges the model by its leave-one-source-out error.

Pure Python (no torch), like the rest of :mod:`ai_ready.model`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ai_ready.errors import InputError, yaml_problem, checked_mapping
from ai_ready.model.hardware import hardware_for
from ai_ready.model.search import search
from ai_ready.model.software import PRESET_FIELDS, preset as software_preset
from ai_ready.model.step import Software, StepTime
from ai_ready.model.workload import Parallelism, Training, TransformerModel

DATA_PATH = Path(__file__).resolve().parent / "data" / "published_runs.yaml"
SCHEMA, VERSION = "ai-ready/published-runs", 1


HARDWARE_TFLOPS, MODEL_TFLOPS, SECONDS = "tflops_per_gpu_hardware", "tflops_per_gpu_model", "seconds_per_iteration"
METRICS = (HARDWARE_TFLOPS, MODEL_TFLOPS, SECONDS)
PUBLISHED = "published"

TOP_KEYS = ("schema", "version", "tables")
TABLE_KEYS = ("id", "source_id", "title", "source", "system", "figure", "software", "defaults", "assumptions", "rows")
#: ``role``: ``development`` (the model was developed against the table: in-sample; the default) or
#: ``out-of-sample`` (added after the model and never used to choose any of its constants).
TABLE_OPTIONAL_KEYS = ("role",)
DEVELOPMENT, OUT_OF_SAMPLE = "development", "out-of-sample"
ROLES = (DEVELOPMENT, OUT_OF_SAMPLE)
#: The share of cases within this error is reported (issue 17's 25% band).
OUT_OF_SAMPLE_BAND = 0.25
SOURCE_KEYS = ("authors", "title", "venue", "year", "table", "url")
SOURCE_OPTIONAL_KEYS = ("note",)
FIGURE_KEYS = ("metric", "unit", "meaning")
FIGURE_OPTIONAL_KEYS = ("full_recompute",)
VARIANT_KEYS = ("field", "recompute", "sequence_parallel", "meaning")
#: A table's stack: a preset and the fields its runs changed; never ``efficiency`` (fitted, ai_ready.model.fit).
SOFTWARE_KEYS = ("preset",)
SOFTWARE_OPTIONAL_KEYS = tuple(f for f in PRESET_FIELDS if f != "efficiency")
DEFAULT_KEYS = ("seq_len", "vocab", "precision", "recompute", "sequence_parallel", "ffn", "tied_embeddings",
                "kv_heads", "zero")
DEFAULT_OPTIONAL_KEYS = ("ffn_hidden",)
ROW_KEYS = ("name", "layers", "hidden", "heads", "tp", "pp", "dp", "gpus", "global_batch", "microbatch",
            "interleave", "published")
ROW_OPTIONAL_KEYS = ("params_b", "published_full_recompute")


# --- the file -------------------------------------------------------------------------------

def _where(path: Path) -> str:
    return path.name




def _positive_number(value: Any, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise InputError(f"{where}: must be a positive number, got {value!r}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _check_table(table: Any, file: str, index: int) -> dict[str, Any]:
    where = f"{file}: tables[{index}]"
    table = checked_mapping(table, where, TABLE_KEYS, TABLE_OPTIONAL_KEYS)
    if table.get("role", DEVELOPMENT) not in ROLES:
        raise InputError(f"{where}.role: got {table['role']!r}; accepted: {', '.join(ROLES)}")
    _text(table["id"], f"{where}.id")
    where = f"{file}: tables[{table['id']}]"
    _text(table["source_id"], f"{where}.source_id")
    _text(table["title"], f"{where}.title")
    _text(table["system"], f"{where}.system")
    source = checked_mapping(table["source"], f"{where}.source", SOURCE_KEYS, SOURCE_OPTIONAL_KEYS)
    for key in SOURCE_KEYS:
        if key != "year":
            _text(source[key], f"{where}.source.{key}")
    if not str(source["url"]).startswith("https://"):
        raise InputError(f"{where}.source.url: must be an https:// address, got {source['url']!r}")
    figure = checked_mapping(table["figure"], f"{where}.figure", FIGURE_KEYS, FIGURE_OPTIONAL_KEYS)
    if figure["metric"] not in METRICS:
        raise InputError(f"{where}.figure.metric: got {figure['metric']!r}; accepted: {', '.join(METRICS)}")
    _text(figure["unit"], f"{where}.figure.unit")
    if "full_recompute" in figure:
        variant = checked_mapping(figure["full_recompute"], f"{where}.figure.full_recompute", VARIANT_KEYS)
        if variant["field"] not in ROW_OPTIONAL_KEYS or variant["field"] == "params_b":
            raise InputError(f"{where}.figure.full_recompute.field: got {variant['field']!r}; "
                             "accepted: published_full_recompute")
    software = checked_mapping(table["software"], f"{where}.software", SOFTWARE_KEYS, SOFTWARE_OPTIONAL_KEYS)
    _software(software, where)
    checked_mapping(table["defaults"], f"{where}.defaults", DEFAULT_KEYS, DEFAULT_OPTIONAL_KEYS)
    assumptions = table["assumptions"]
    if not isinstance(assumptions, list) or not assumptions:
        raise InputError(f"{where}.assumptions: must be a non-empty list of sentences")
    for i, text in enumerate(assumptions):
        _text(text, f"{where}.assumptions[{i}]")
    rows = table["rows"]
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{where}.rows: must be a non-empty list of rows")
    names: set[str] = set()
    for i, row in enumerate(rows):
        row = checked_mapping(row, f"{where}.rows[{i}]", ROW_KEYS, ROW_OPTIONAL_KEYS)
        name = _text(row["name"], f"{where}.rows[{i}].name")
        if name in names:
            raise InputError(f"{where}.rows: row name '{name}' appears twice")
        names.add(name)
        at = f"{where}.rows[{name}]"
        _positive_number(row[PUBLISHED], f"{at}.published")
        if "full_recompute" in figure:
            field = figure["full_recompute"]["field"]
            if field not in row:
                raise InputError(f"{at}: missing key '{field}' (the table's figure.full_recompute)")
            _positive_number(row[field], f"{at}.{field}")
        elif "published_full_recompute" in row:
            raise InputError(f"{at}: published_full_recompute given, but the table has no figure.full_recompute")
        product = row["tp"] * row["pp"] * row["dp"] if all(
            isinstance(row[k], int) and not isinstance(row[k], bool) for k in ("tp", "pp", "dp")) else None
        if product != row["gpus"]:
            raise InputError(f"{at}: tp · pp · dp must equal gpus ({row['gpus']!r}); "
                             f"got {row['tp']!r} · {row['pp']!r} · {row['dp']!r}")
    return table


def _software(data: Mapping[str, Any], where: str) -> Software:
    """The table's stack at kernel efficiency 1: its preset's fields with the table's changes."""
    try:
        base = software_preset(str(data["preset"])).software
        changes = {k: v for k, v in data.items() if k != "preset"}
        return replace(base, efficiency=1.0, **changes).validate()
    except InputError as exc:
        raise InputError(f"{where}.{exc}") from None


def load_document(path: str | Path | None = None) -> dict[str, Any]:
    """The parsed published-runs file, checked: schema, version, known keys only, unique ids and names.

    Raises :class:`InputError` (one line) on anything else, so a typo never falls back to a default.
    """
    path = DATA_PATH if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the published runs ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{_where(path)}: not valid YAML: {yaml_problem(exc)}") from None
    doc = checked_mapping(doc, _where(path), TOP_KEYS)
    if doc["schema"] != SCHEMA or doc["version"] != VERSION:
        raise InputError(f"{_where(path)}: schema {doc['schema']!r} version {doc['version']!r}; "
                         f"accepted: {SCHEMA} version {VERSION}")
    tables = doc["tables"]
    if not isinstance(tables, list) or not tables:
        raise InputError(f"{_where(path)}: tables: must be a non-empty list of tables")
    doc["tables"] = [_check_table(table, _where(path), i) for i, table in enumerate(tables)]
    ids = [table["id"] for table in doc["tables"]]
    for table_id in ids:
        if ids.count(table_id) > 1:
            raise InputError(f"{_where(path)}: tables: table id '{table_id}' appears twice")
    return doc


# --- tables and cases -----------------------------------------------------------------------

@dataclass(frozen=True)
class Table:
    """One published table: where it comes from and what its figure means."""

    id: str
    title: str
    source: Mapping[str, Any]
    system: str
    metric: str
    unit: str
    software: Software
    assumptions: tuple[str, ...]
    role: str = DEVELOPMENT
    #: The publication the table comes from (tables of one source share it): the unit left out in cross-validation.
    source_id: str = ""
    #: The software preset the table's runs used (``software`` is it with the table's changes, at efficiency 1).
    preset: str = ""

    def citation(self) -> str:
        """Authors, title, venue, year, table and address on one line."""
        s = self.source
        authors = " ".join(str(s["authors"]).split())
        return f"{authors}: {s['title']}. {s['venue']}, {s['year']}, {s['table']}. {s['url']}"


@dataclass(frozen=True)
class Case:
    """One published figure to predict: a row of a table, with the published layout held fixed.

    ``variant`` is ``published`` (the table's main figure) or the name of a second figure of the
    same row (``published_full_recompute``). ``fixed`` is what :func:`search` must not change;
    it lacks ``microbatch``/``interleave`` where the source does not publish them.
    """

    table: str
    name: str
    variant: str
    model: TransformerModel
    training: Training
    fixed: Mapping[str, Any]
    software: Software
    metric: str
    unit: str
    published: float
    system: str
    gpus: int
    source_id: str = ""
    preset: str = ""


@dataclass(frozen=True)
class PublishedRuns:
    """The validation set: its tables and every case they hold, in file order."""

    tables: tuple[Table, ...]
    cases: tuple[Case, ...]

    def table(self, table_id: str) -> Table:
        for table in self.tables:
            if table.id == table_id:
                return table
        raise InputError(f"table '{table_id}': not in the published runs; "
                         f"accepted: {', '.join(t.id for t in self.tables)}")

    def sources(self) -> tuple[str, ...]:
        """The source ids, in file order."""
        return tuple(dict.fromkeys(t.source_id for t in self.tables))

    def select(self, table_ids: Sequence[str] | None) -> "PublishedRuns":
        """Only the tables named (in file order); None or empty keeps all. Unknown ids are an InputError."""
        if not table_ids:
            return self
        wanted = {self.table(table_id).id for table_id in table_ids}
        return PublishedRuns(tuple(t for t in self.tables if t.id in wanted),
                             tuple(c for c in self.cases if c.table in wanted))


def _cases(table: Mapping[str, Any], software: Software) -> list[Case]:
    preset = str(table["software"]["preset"])
    d, figure = table["defaults"], table["figure"]
    variants = [(PUBLISHED, d["recompute"], d["sequence_parallel"])]
    if "full_recompute" in figure:
        full = figure["full_recompute"]
        variants.append((full["field"], full["recompute"], full["sequence_parallel"]))
    cases = []
    for row in table["rows"]:
        model = TransformerModel(layers=row["layers"], hidden=row["hidden"], heads=row["heads"], vocab=d["vocab"],
                                 seq_len=d["seq_len"], kv_heads=d["kv_heads"], ffn=d["ffn"],
                                 ffn_hidden=d.get("ffn_hidden"), tied_embeddings=d["tied_embeddings"])
        training = Training(global_batch=row["global_batch"], precision=d["precision"])
        for variant, recompute, sequence_parallel in variants:
            fixed: dict[str, Any] = {"tp": row["tp"], "pp": row["pp"], "dp": row["dp"], "cp": 1,
                                     "recompute": recompute, "zero": d["zero"],
                                     "sequence_parallel": bool(sequence_parallel) and row["tp"] > 1}
            for key in ("microbatch", "interleave"):
                if row[key] is not None:
                    fixed[key] = row[key]
            cases.append(Case(table=table["id"], name=row["name"], variant=variant, model=model, training=training,
                              fixed=fixed, software=software, metric=figure["metric"], unit=figure["unit"],
                              published=float(row[variant]), system=table["system"], gpus=row["gpus"],
                              source_id=table["source_id"], preset=preset))
    return cases


def load_published(path: str | Path | None = None) -> PublishedRuns:
    """The checked validation set (the shipped file unless ``path`` names another)."""
    doc = load_document(path)
    tables, cases = [], []
    for raw in doc["tables"]:
        software = _software(raw["software"], f"{_where(Path(path or DATA_PATH))}: tables[{raw['id']}]")
        tables.append(Table(id=raw["id"], title=raw["title"], source=dict(raw["source"]), system=raw["system"],
                            metric=raw["figure"]["metric"], unit=raw["figure"]["unit"], software=software,
                            assumptions=tuple(raw["assumptions"]), role=raw.get("role", DEVELOPMENT),
                            source_id=raw["source_id"], preset=str(raw["software"]["preset"])))
        cases += _cases(raw, software)
    return PublishedRuns(tuple(tables), tuple(cases))


# --- predictions ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseResult:
    """A case's prediction next to the published figure; ``error`` is signed, a fraction."""

    case: Case
    predicted: float
    published: float
    error: float
    parallelism: Parallelism
    step: StepTime
    gpus_per_node: int

    @property
    def nodes(self) -> float:
        """Catalog nodes the run spans: the row's GPUs over the system's GPUs per node."""
        return self.case.gpus / self.gpus_per_node


def _metric(step: StepTime, metric: str) -> float:
    if metric == HARDWARE_TFLOPS:
        return step.hardware_tflops_per_gpu
    if metric == MODEL_TFLOPS:
        return step.model_tflops_per_gpu
    return step.step_time_s


def case_hardware(case: Case, catalog: Any) -> Any:
    """The case's catalog node as a cluster of the row's GPU count."""
    return hardware_for(catalog.system(case.system), case.training.precision).with_(total_gpus=case.gpus)


def result_of(case: Case, step: StepTime, gpus_per_node: int) -> CaseResult:
    """A predicted step as the case's figure, with its signed error."""
    predicted = _metric(step, case.metric)
    error = (predicted - case.published) / case.published
    return CaseResult(case, predicted, case.published, error, step.parallelism, step, gpus_per_node)


def predict_case(case: Case, catalog: Any, efficiency: float = 1.0) -> CaseResult:
    """The fastest layout that fits memory with the case's published choices fixed, and its figure, for the case's
    stack at kernel ``efficiency`` (1: the modelled rates; :mod:`ai_ready.model.fit` gives the fitted one).

    The catalog system is one node; the run is given the row's GPU count.
    """
    hw = case_hardware(case, catalog)
    software = replace(case.software, efficiency=efficiency)
    best = search(case.model, case.training, hw, software, gpus=case.gpus, fixed=case.fixed).best
    return result_of(case, best, hw.gpus_per_node)


def speed_ratio(result: CaseResult) -> float:
    """Predicted over published speed (>1: predicted too fast), whatever the figure's metric."""
    if result.case.metric == SECONDS:
        return result.published / result.predicted
    return result.predicted / result.published
    predicted = _metric(best, case.metric)
    error = (predicted - case.published) / case.published
    return CaseResult(case, predicted, case.published, error, best.parallelism, best, hw.gpus_per_node)


@dataclass(frozen=True)
class ErrorSummary:
    """Absolute errors of a set of cases: median, largest, and the share within the out-of-sample band."""

    cases: int
    median_abs_error: float
    max_abs_error: float
    within_band: float

    @classmethod
    def of(cls, results: Sequence[CaseResult]) -> "ErrorSummary | None":
        if not results:
            return None
        errors = [abs(r.error) for r in results]
        return cls(len(errors), statistics.median(errors), max(errors),
                   sum(e <= OUT_OF_SAMPLE_BAND for e in errors) / len(errors))
