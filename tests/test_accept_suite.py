"""Acceptance suites: the packaged ones load, every mistake in a suite file is one clear InputError."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ai_ready.accept.detect import HIGHER, LOWER
from ai_ready.accept.suite import PACKAGED, SUITES_DIR, Target, load_suite, parse_suite, pick
from ai_ready.catalog import load_catalog
from ai_ready.errors import InputError
from ai_ready.resources import resource_dir

CATALOG = load_catalog()
SYSTEMS = list(CATALOG.systems)
ACCELERATORS = list(CATALOG.accelerators)


def suite_data(**changes: object) -> dict:
    data = {"schema": "ai-ready/accept-suite", "version": 1, "name": "t",
            "benchmarks": [{"name": "gemm", "run": ["bench", "gemm"], "args": {"quick": True, "sizes": "256"},
                            "metrics": [{"name": "gemm-fp32", "select": {"case": "square-256-fp32",
                                                                         "metric": "throughput"}}]}]}
    data.update(changes)
    return data


def parse(data: dict) -> object:
    return parse_suite(data, Path("t.yaml"), SYSTEMS, ACCELERATORS)


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_suites_load_and_cover_every_kind_of_benchmark(name: str) -> None:
    suite = load_suite(name, SYSTEMS, ACCELERATORS)
    commands = {" ".join(b.command) for b in suite.benchmarks}
    assert {"bench gemm", "bench memory", "bench collectives", "bench io", "train gpt"} <= commands
    assert all(b.metrics for b in suite.benchmarks)
    assert (SUITES_DIR / f"{name}.yaml").is_file()
    assert (resource_dir("templates") / "accept_trend.html.j2").is_file()  # ships with the package too


def test_quick_suite_runs_on_cpu_and_skips_gpu_only_entries() -> None:
    suite = load_suite("quick", SYSTEMS, ACCELERATORS)
    cpu = [b.name for b in suite.benchmarks if "cpu" in b.devices]
    assert {"gemm", "memory", "collectives", "io", "train"} <= set(cpu)
    assert {b.name for b in suite.benchmarks if b.devices == ("cuda",)} == {"gemm-gpu", "kernels", "collectives-gpu"}


def test_argv_is_built_from_checked_options_and_scratch_goes_where_the_benchmark_writes() -> None:
    suite = load_suite("quick", SYSTEMS, ACCELERATORS)
    by_name = {b.name: b for b in suite.benchmarks}
    io = by_name["io"].argv(Path("/scratch/io"), Path("/out/io.json"))
    assert io[:2] == ["bench", "io"] and io[io.index("--path") + 1] == "/scratch/io"
    assert io[-2:] == ["-o", "/out/io.json"]
    train = by_name["train"].argv(Path("/s"), Path("/o.json"))
    assert train[:2] == ["train", "gpt"] and "--data-dir" in train and "--preset" in train
    collectives = by_name["collectives"].argv(Path("/s"), Path("/o.json"))
    assert collectives[collectives.index("--ranks") + 1] == "2"


def test_direction_defaults_from_the_metric_and_can_be_set() -> None:
    suite = load_suite("quick", SYSTEMS, ACCELERATORS)
    better = {m.name: m.better for m in suite.metrics()}
    assert better["gemm-fp32-2048"] == HIGHER and better["allreduce-latency-8B"] == LOWER
    assert better["train-gpt-tiny-step-time"] == LOWER


def test_references_resolve_most_specific_first() -> None:
    data = suite_data()
    data["benchmarks"][0]["metrics"][0]["reference"] = {
        "*": {"value": 1.0, "unit": "TFLOP/s", "lower": -0.5},
        "gpu:h100-sxm": {"value": 600.0, "unit": "TFLOP/s", "lower": -0.1},
        "jupiter-booster": {"value": 700.0, "unit": "TFLOP/s", "lower": -0.1, "upper": 0.2},
        "jupiter-booster:booster": {"value": 650.0, "unit": "TFLOP/s", "lower": -0.05},
    }
    metric = next(iter(parse(data).metrics()))
    assert metric.reference(Target("jupiter-booster", "booster", "gh200")).value == 650.0
    assert metric.reference(Target("jupiter-booster", "", "gh200")).value == 700.0
    assert metric.reference(Target("dgx-h100", "", "h100-sxm")).value == 600.0
    assert metric.reference(Target("local", "", "")).value == 1.0
    assert pick({}, Target("local")) is None


@pytest.mark.parametrize("change, words", [
    ({"schema": "other"}, "accepted: ai-ready/accept-suite"),
    ({"version": 9}, "accepted: 1"),
    ({"benchmarks": []}, "non-empty list"),
    ({"surprise": 1}, "unknown key 'surprise'"),
    ({"settings": {"nights": 0}}, "positive integer"),
    ({"launcher": {"nowhere": ["srun"]}}, "unknown system 'nowhere'"),
])
def test_suite_level_mistakes_are_named(change: dict, words: str) -> None:
    with pytest.raises(InputError, match=words):
        parse(suite_data(**change))


@pytest.mark.parametrize("entry_change, words", [
    ({"run": ["bench", "rm"]}, "not a command a suite may run"),
    ({"args": {"nosuch": 1}}, "not an option of 'ai-ready bench gemm'"),
    ({"args": {"output": "x.json"}}, "not an option"),
    ({"args": {"quick": "yes"}}, "is a flag"),
    ({"args": {"device": "tpu"}}, None),  # free text: the benchmark itself says what it accepts
    ({"args": {"min-time": "soon"}}, "args.min-time"),
    ({"devices": ["gpu"]}, "accepted: a list of cpu, cuda"),
    ({"timeout": -1}, "positive number"),
    ({"results": "x.json"}, "exactly one of 'run'"),
])
def test_benchmark_mistakes_are_named(entry_change: dict, words: str | None) -> None:
    data = suite_data()
    data["benchmarks"][0].update(entry_change)
    if words is None:
        parse(data)
        return
    with pytest.raises(InputError, match=words):
        parse(data)


@pytest.mark.parametrize("metric_change, words", [
    ({"select": {}}, "give at least one of"),
    ({"better": "faster"}, "accepted: higher, lower"),
    ({"reference": {"gpu:h900": {"value": 1, "unit": "x"}}}, "unknown accelerator 'h900'"),
    ({"reference": {"*": {"value": -1, "unit": "x"}}}, "positive number"),
    ({"reference": {"*": {"value": 1, "unit": "x", "lower": 0.1}}}, "from -1 to 0"),
    ({"reference": {"*": {"value": 1, "unit": "x", "upper": -0.1}}}, "at least 0"),
    ({"reference": {"*": {"value": 1}}}, "missing key 'unit'"),
    ({"name": "bad name/"}, "not a usable name"),
])
def test_metric_mistakes_are_named(metric_change: dict, words: str) -> None:
    data = suite_data()
    data["benchmarks"][0]["metrics"][0].update(metric_change)
    with pytest.raises(InputError, match=words):
        parse(data)


def test_duplicate_names_are_refused() -> None:
    data = suite_data()
    data["benchmarks"].append(dict(data["benchmarks"][0]))
    with pytest.raises(InputError, match="benchmark name 'gemm' appears twice"):
        parse(data)


def test_files_that_are_missing_or_not_yaml_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such suite file; accepted: quick, full"):
        load_suite(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks: [\n")
    with pytest.raises(InputError, match="not valid YAML: line"):
        load_suite(str(bad))


def test_results_entries_are_relative_to_the_suite_file(tmp_path: Path) -> None:
    data = suite_data()
    data["benchmarks"][0] = {"name": "stored", "results": "night.json",
                             "metrics": [{"name": "m", "select": {"metric": "throughput"}}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    suite = load_suite(str(path), SYSTEMS, ACCELERATORS)
    assert suite.benchmarks[0].results == tmp_path / "night.json"
