"""The validation data set (ai_ready/model/data/published_runs.yaml): cited, self-consistent, buildable.

These tests check the data, not the model's predictions: every table says where its figures come
from and what they mean, every row is a layout the analytic model accepts, and the figures that
can be cross-checked against the model's own arithmetic (Narayanan et al.'s parameter counts)
agree with it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from ai_ready.catalog import ENV_PATH, load_catalog
from ai_ready.model import (Parallelism, Training, TransformerModel, hardware_flops_per_step, model_flops_per_step,
                            parameters)
from ai_ready.model import published
from ai_ready.model.software import presets as software_presets
from ai_ready.model.step import Software

DATA = published.DATA_PATH  # ships inside the package, so an installed `ai-ready validate` finds it
SCHEMA, VERSION = "ai-ready/published-runs", 1

TABLE_KEYS = {"id", "source_id", "title", "source", "system", "figure", "software", "defaults", "assumptions", "rows"}
TABLE_OPTIONAL_KEYS = {"role"}
SOFTWARE_CHANGES = {"attention", "overlap_grad_reduce", "overlap_param_gather", "tp_overlap", "grad_reduce_bytes",
                    "interleaved_pipeline", "supports_sequence_parallel"}
SOURCE_KEYS = {"authors", "title", "venue", "year", "table", "url"}
SOURCE_OPTIONAL_KEYS = {"note"}
DEFAULT_KEYS = {"seq_len", "vocab", "precision", "recompute", "sequence_parallel", "ffn", "tied_embeddings",
                "kv_heads", "zero"}
DEFAULT_OPTIONAL_KEYS = {"ffn_hidden"}
ROW_KEYS = {"name", "layers", "hidden", "heads", "tp", "pp", "dp", "gpus", "global_batch", "microbatch",
            "interleave", "published"}
ROW_OPTIONAL_KEYS = {"params_b", "published_full_recompute"}

HARDWARE_TFLOPS, MODEL_TFLOPS, SECONDS = "tflops_per_gpu_hardware", "tflops_per_gpu_model", "seconds_per_iteration"
METRICS = (HARDWARE_TFLOPS, MODEL_TFLOPS, SECONDS)
NARAYANAN_TABLE_1 = "megatron-lm-2021-table-1"
TERA = 1e12
BILLION = 1e9
# Narayanan et al. print one decimal below 1,000B and whole billions above ("1008").
PARAMS_DECIMALS_BELOW_1000B, PARAMS_WHOLE_FROM = 1, 1000
# When a table does not publish the micro-batch (null), build the layout with the smallest one:
# the divisibility checks are then the least the published layout must pass.
SMALLEST_MICROBATCH = 1


def _load() -> dict[str, Any]:
    """The file as parsed (and checked) by the module `ai-ready validate` uses."""
    return published.load_document(DATA)


DOC = _load()
TABLES: list[dict[str, Any]] = DOC["tables"]
ROWS = [(table, row) for table in TABLES for row in table["rows"]]
ROW_IDS = [f"{table['id']}/{row['name']}" for table, row in ROWS]


def _configuration(table: dict[str, Any], row: dict[str, Any]) -> tuple[TransformerModel, Training, Parallelism]:
    """The model, training and layout one row describes, with its table's defaults."""
    defaults = table["defaults"]
    model = TransformerModel(layers=row["layers"], hidden=row["hidden"], heads=row["heads"],
                             vocab=defaults["vocab"], seq_len=defaults["seq_len"], kv_heads=defaults["kv_heads"],
                             ffn=defaults["ffn"], tied_embeddings=defaults["tied_embeddings"])
    training = Training(global_batch=row["global_batch"], precision=defaults["precision"])
    parallelism = Parallelism(tp=row["tp"], pp=row["pp"], dp=row["dp"],
                              microbatch=row["microbatch"] or SMALLEST_MICROBATCH,
                              interleave=row["interleave"] or 1, recompute=defaults["recompute"],
                              zero=defaults["zero"], sequence_parallel=defaults["sequence_parallel"])
    return model, training, parallelism


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# --- the file and its tables ----------------------------------------------------------------

def test_file_loads_with_its_schema_and_version() -> None:
    assert DOC["schema"] == SCHEMA
    assert DOC["version"] == VERSION
    assert TABLES and all(table["rows"] for table in TABLES)


def test_table_ids_and_row_names_are_unique() -> None:
    ids = [table["id"] for table in TABLES]
    assert len(ids) == len(set(ids))
    for table in TABLES:
        names = [row["name"] for row in table["rows"]]
        assert len(names) == len(set(names)), table["id"]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t["id"])
def test_table_has_only_known_keys(table: dict[str, Any]) -> None:
    assert TABLE_KEYS <= set(table) <= TABLE_KEYS | TABLE_OPTIONAL_KEYS
    assert DEFAULT_KEYS <= set(table["defaults"]) <= DEFAULT_KEYS | DEFAULT_OPTIONAL_KEYS
    for row in table["rows"]:
        assert ROW_KEYS <= set(row) <= ROW_KEYS | ROW_OPTIONAL_KEYS, row["name"]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t["id"])
def test_table_is_cited(table: dict[str, Any]) -> None:
    source = table["source"]
    assert SOURCE_KEYS <= set(source) <= SOURCE_KEYS | SOURCE_OPTIONAL_KEYS
    assert all(source[key] for key in SOURCE_KEYS)
    assert source["url"].startswith("https://")


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t["id"])
def test_table_defines_its_figure_and_states_assumptions(table: dict[str, Any]) -> None:
    figure = table["figure"]
    assert figure["metric"] in METRICS
    assert figure["unit"] and figure["meaning"]
    assert table["assumptions"] and all(isinstance(text, str) and text for text in table["assumptions"])


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t["id"])
def test_table_states_its_software_stack_and_why(table: dict[str, Any]) -> None:
    """A preset (whose efficiency is fitted) and only the fields the runs changed; never a hand-set efficiency."""
    assert table["software"]["preset"] in software_presets()[0]
    assert set(table["software"]) - {"preset"} <= SOFTWARE_CHANGES
    changes = {k: v for k, v in table["software"].items() if k != "preset"}
    Software(**changes).validate()  # raises InputError on a value the step model does not accept
    assert any(text.startswith("Software:") for text in table["assumptions"])


def test_tables_of_one_source_share_their_stack() -> None:
    """Cross-validation leaves a source out whole; one efficiency per source needs one preset per source."""
    presets_of: dict[str, set[str]] = {}
    for table in TABLES:
        presets_of.setdefault(table["source_id"], set()).add(table["software"]["preset"])
    assert len(presets_of) >= 7 and all(len(p) == 1 for p in presets_of.values())


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t["id"])
def test_system_is_in_the_catalog_with_a_peak_for_the_precision(table: dict[str, Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PATH, raising=False)  # the shipped catalog, not a user's overrides
    system = load_catalog().system(table["system"])
    assert system.accelerator.peak(table["defaults"]["precision"]) is not None


# --- the rows -------------------------------------------------------------------------------

@pytest.mark.parametrize("table,row", ROWS, ids=ROW_IDS)
def test_row_layout_multiplies_to_its_gpus(table: dict[str, Any], row: dict[str, Any]) -> None:
    assert row["dp"] * row["tp"] * row["pp"] == row["gpus"]


@pytest.mark.parametrize("table,row", ROWS, ids=ROW_IDS)
def test_row_builds_a_valid_configuration(table: dict[str, Any], row: dict[str, Any]) -> None:
    model, training, parallelism = _configuration(table, row)
    parallelism.validate(model, training)  # validates model and training too; raises InputError
    assert parallelism.gpus == row["gpus"]


@pytest.mark.parametrize("table,row", ROWS, ids=ROW_IDS)
def test_row_figures_are_positive_numbers(table: dict[str, Any], row: dict[str, Any]) -> None:
    assert _is_positive_number(row["published"])
    if table["figure"]["metric"] == SECONDS and "full_recompute" in table["figure"]:
        full = row[table["figure"]["full_recompute"]["field"]]
        assert _is_positive_number(full)
        assert full > row["published"]  # the table's point: recomputing less is faster


PARAMETER_ROWS = [(table, row) for table, row in ROWS if "params_b" in row]


@pytest.mark.parametrize("table,row", PARAMETER_ROWS, ids=[f"{t['id']}/{r['name']}" for t, r in PARAMETER_ROWS])
def test_printed_parameter_count_matches_the_model(table: dict[str, Any], row: dict[str, Any]) -> None:
    model, _, _ = _configuration(table, row)
    ours = parameters(model) / BILLION
    printed = row["params_b"]
    if printed < PARAMS_WHOLE_FROM:
        assert round(ours, PARAMS_DECIMALS_BELOW_1000B) == pytest.approx(printed)
    else:
        assert round(ours) == printed


def test_every_narayanan_table_1_row_has_its_parameter_count() -> None:
    table = next(table for table in TABLES if table["id"] == NARAYANAN_TABLE_1)
    assert all("params_b" in row for row in table["rows"])


TFLOPS_ROWS = [(table, row) for table, row in ROWS if table["figure"]["metric"] in (HARDWARE_TFLOPS, MODEL_TFLOPS)]


@pytest.mark.parametrize("table,row", TFLOPS_ROWS, ids=[f"{t['id']}/{r['name']}" for t, r in TFLOPS_ROWS])
def test_implied_step_time_is_positive_and_finite(table: dict[str, Any], row: dict[str, Any]) -> None:
    """Seconds per step the published rate implies: the FLOPs the figure counts over the rate of all GPUs."""
    model, training, parallelism = _configuration(table, row)
    if table["figure"]["metric"] == HARDWARE_TFLOPS:
        flops = hardware_flops_per_step(model, training.global_batch, parallelism.recompute)
    else:
        flops = model_flops_per_step(model, training.global_batch)
    seconds = flops / (row["published"] * TERA * row["gpus"])
    assert math.isfinite(seconds) and seconds > 0
