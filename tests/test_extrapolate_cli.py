"""`ai-ready extrapolate`: the stable JSON interface, a fixed layout evaluated as given, profiles as
input, and bad input answered with one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_ready.errors import InputError
from conftest import REPO, run_cli

GPT3 = REPO / "examples" / "workloads" / "gpt3-175b.yaml"
PROFILE = REPO / "tests" / "data" / "profile_myjob.json"
REQUIRED = ("step_time_s", "tokens_per_s", "model_tflops_per_gpu", "hardware_tflops_per_gpu", "mfu",
            "memory_gb_per_gpu", "fits_memory", "parallelism", "breakdown", "assumptions")
LAYOUT = ("tp", "pp", "dp", "cp", "ep", "microbatch", "interleave", "recompute", "zero")


def extrapolate(*args: str) -> dict:
    proc = run_cli("extrapolate", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_searched_prediction_has_the_stable_keys_and_a_consistent_run() -> None:
    result = extrapolate(str(GPT3), "--system", "jupiter-booster", "--gpus", "4096")
    for key in REQUIRED:
        assert key in result
    assert set(LAYOUT) <= set(result["parallelism"])
    assert result["gpus"] <= 4096 and result["fits_memory"]
    assert sum(result["breakdown"].values()) == pytest.approx(result["step_time_s"])
    assert result["tokens_per_s"] == pytest.approx(1536 * 2048 / result["step_time_s"])
    assert 0 < result["mfu"] < 1
    low, high = result["step_time_band_s"]
    assert low < result["step_time_s"] < high
    run = result["run"]
    assert run["steps"] == pytest.approx(3.0e11 / (1536 * 2048))
    assert run["compute_days"] == pytest.approx(run["steps"] * result["step_time_s"] / 86400)
    assert run["wall_days"] >= run["compute_days"] and 0 < run["goodput"] <= 1
    assert run["energy_mwh"] > 0 and run["cost_eur"] == pytest.approx(run["energy_mwh"] * 1000 * 0.20)
    assert any("assumption" in note for note in result["assumptions"])


def test_a_full_layout_is_evaluated_as_given() -> None:
    result = extrapolate(str(GPT3), "--system", "jupiter-booster", "--tp", "4", "--pp", "8", "--dp", "48",
                         "--microbatch", "1", "--interleave", "3", "--recompute", "selective", "--zero", "1")
    assert result["parallelism"] == {"tp": 4, "pp": 8, "dp": 48, "cp": 1, "ep": 1, "microbatch": 1, "interleave": 3,
                                     "recompute": "selective", "zero": 1, "sequence_parallel": True,
                                     "stage_layers": [12] * 8}
    assert result["gpus"] == 4 * 8 * 48
    assert result["search"]["evaluated"] == 1


def test_scaling_curve_reaches_the_whole_system() -> None:
    result = extrapolate(str(GPT3), "--system", "gigafactory-100k", "--scaling")
    points = result["scaling"]
    assert points[-1]["gpus"] == 100_000
    fitting = [p for p in points if p["fits"]]
    assert fitting[0]["efficiency"] == pytest.approx(1.0)
    # a fixed batch of 1,536 sequences cannot keep 100,000 GPUs as busy as a few hundred
    assert fitting[-1]["efficiency"] < 0.8
    assert all(p["tokens_per_s"] <= q["tokens_per_s"] * 1.0001 for p, q in zip(fitting, fitting[1:]))


def test_a_profile_is_extrapolated_through_its_target_model() -> None:
    result = extrapolate(str(PROFILE), "--system", "hammerhai")
    assert result["workload"] == "myjob" and result["kind"] == "transformer"
    assert any("target.model" in note for note in result["assumptions"])
    assert result["calibration"]["ratio"] == 1.0 and "not calibrated" in result["calibration"]["note"]


def test_a_system_file_is_accepted(tmp_path: Path) -> None:
    src = (REPO / "suite" / "ai_ready" / "catalog" / "data" / "systems" / "dgx-h100.yaml").read_text()
    mine = tmp_path / "my-cluster.yaml"
    mine.write_text(src.replace("name: dgx-h100", "name: my-cluster").replace(
        "nodes: {value: 1, source: definition, note: a single node}", "nodes: {value: 64, assumption: our cluster}"))
    result = extrapolate(str(GPT3), "--system", str(mine))
    assert result["system"] == "my-cluster" and result["gpus_available"] == 512


def test_a_given_tp_pp_dp_is_the_layout_and_the_json_says_what_was_searched() -> None:
    # 8 · 8 · 4 = 256 GPUs on a 24,000-GPU system: no context or expert parallelism is added to use more
    result = extrapolate(str(GPT3), "--system", "jupiter-booster", "--tp", "8", "--pp", "8", "--dp", "4")
    p = result["parallelism"]
    assert (p["tp"], p["pp"], p["dp"], p["cp"], p["ep"]) == (8, 8, 4, 1, 1) and result["gpus"] == 256
    assert set(result["search"]["given"]) == {"tp", "pp", "dp", "cp", "ep"}
    assert {"microbatch", "recompute", "zero"} <= set(result["search"]["searched"])
    # the same with cp given: it is kept
    result = extrapolate(str(GPT3), "--system", "jupiter-booster", "--tp", "8", "--pp", "8", "--dp", "4",
                         "--cp", "2")
    assert result["parallelism"]["cp"] == 2 and result["gpus"] == 512


def test_nodes_makes_a_cluster_of_a_catalog_node() -> None:
    result = extrapolate(str(GPT3), "--system", "dgx-h100", "--nodes", "64", "--tp", "8", "--pp", "8", "--dp", "8")
    assert result["gpus_available"] == 512 and result["gpus"] == 512
    assert result["system"] == "dgx-h100×64" and result["accelerator"] == "h100-sxm"
    assert any("scale-out: 400 Gb/s" in note for note in result["assumptions"])  # the node's NICs carry over


def test_a_pipeline_that_does_not_divide_the_layers_runs_as_trained() -> None:
    llama = REPO / "examples" / "workloads" / "llama3-405b.yaml"  # 126 layers
    result = extrapolate(str(llama), "--system", "dgx-h100", "--nodes", "2048", "--tp", "8", "--pp", "16",
                         "--dp", "128")
    assert result["parallelism"]["stage_layers"] == [7] + [8] * 14 + [7] and result["gpus"] == 16384
    given = extrapolate(str(llama), "--system", "dgx-h100", "--nodes", "2048", "--tp", "8", "--pp", "16",
                        "--dp", "128", "--first-stage-layers", "6")
    assert given["parallelism"]["stage_layers"] == [6] + [8] * 15
    # a pipeline layout with uneven stages interleaves up to the smallest stage's layers (chunks need not be equal)
    assert 1 <= given["parallelism"]["interleave"] <= 6
    assert result["parallelism"]["interleave"] > 1  # 7 and 8 layers share no divisor, yet the run interleaves


def test_uneven_chunks_cost_the_bubble_of_the_largest() -> None:
    """8 layers in 3 virtual chunks hold 3, 3 and 2: the warm-up runs chunks of 3 layers, a bubble of (p-1)·3/8."""
    from ai_ready.model import Parallelism, Training, TransformerModel
    from ai_ready.catalog import load_catalog
    from ai_ready.model.hardware import hardware_for
    from ai_ready.model.step import step_time
    model = TransformerModel(layers=30, hidden=4096, heads=32, vocab=32000, seq_len=4096)
    training = Training(global_batch=64)
    hw = hardware_for(load_catalog().system("dgx-h100")).with_(total_gpus=32)
    def bubble(v: int) -> float:
        par = Parallelism(tp=1, pp=4, dp=8, microbatch=1, interleave=v, recompute="full", zero=1,
                          first_stage_layers=7, last_stage_layers=7)
        return step_time(model, training, par, hw).breakdown["pp_bubble"]
    plain = bubble(1)  # (p - 1) slots of the 8-layer stage
    assert bubble(3) / plain == pytest.approx(3 / 8, rel=0.05)  # chunks of 3, 3, 2 layers (plus v sends each)
    assert bubble(4) / plain == pytest.approx(1 / 4, rel=0.05)  # even chunks of 2
    with pytest.raises(InputError, match="smallest stage"):
        step_time(model, training, Parallelism(tp=1, pp=4, dp=8, microbatch=1, interleave=8, recompute="full",
                                               zero=1, first_stage_layers=7, last_stage_layers=7), hw)


@pytest.mark.parametrize("args, message", [
    (["--system", "dgx-h100", "--tp", "8", "--pp", "8", "--dp", "8"], "--nodes 64 makes it a cluster"),
    (["--system", "jupiter-booster", "--pp", "8", "--first-stage-layers", "90"], "parallelism.pp"),
    (["--system", "dgx-h100", "--nodes", "0"], "--nodes"),
    (["--system", "nope"], "unknown system 'nope'"),
    (["--system", "jupiter-booster", "--tp", "5"], "parallelism.tp: 5 must divide heads (96)"),
    (["--system", "jupiter-booster", "--tp", "8", "--pp", "8", "--dp", "1000"], "more than the 24000"),
    (["--system", "dgx-h100"], "fits the memory"),
    (["--system", "jupiter-booster", "--recompute", "some"], "Invalid value for '--recompute'"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = run_cli("extrapolate", str(GPT3), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_unknown_workload_keys_and_missing_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {kind: transformer, layers: 2, hidden: 64, heads: 4, vocab: 100, seq_len: 64, "
                   "wat: 1}\ntraining: {global_batch: 8}\n")
    for path, message in ((bad, "unknown key 'model.wat'"), (tmp_path / "none.yaml", "does not exist")):
        proc = run_cli("extrapolate", str(path), "--system", "dgx-h100")
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_the_software_stack_is_an_input_with_sourced_presets(tmp_path: Path) -> None:
    from ai_ready.model.software import presets

    known, default = presets()
    assert default in known and all(p.sources for p in known.values())  # every preset says where it comes from
    plain = extrapolate(str(GPT3), "--system", "jupiter-booster", "--gpus", "1024")
    assert any(n.startswith(f"software: preset {default} (default") for n in plain["assumptions"])
    tuned = extrapolate(str(GPT3), "--system", "jupiter-booster", "--gpus", "1024", "--software", "megatron-lm-2021")
    assert tuned["software"]["attention"] == "unfused" and not tuned["software"]["overlap_grad_reduce"]
    assert any("preset megatron-lm-2021 (given)" in n for n in tuned["assumptions"])
    mine = tmp_path / "w.yaml"
    mine.write_text(GPT3.read_text() + "software: {preset: megatron-core-2024, tp_overlap: 0.5}\n")
    overridden = extrapolate(str(mine), "--system", "jupiter-booster", "--gpus", "1024")
    assert overridden["software"]["tp_overlap"] == 0.5 and overridden["software"]["overlap_param_gather"]
    proc = run_cli("extrapolate", str(GPT3), "--system", "jupiter-booster", "--software", "best")
    assert proc.returncode == 2 and "unknown preset 'best'; accepted: megatron-lm-2021" in proc.stderr


def test_the_search_never_pairs_zero_3_with_a_pipeline_unless_asked() -> None:
    """No stack runs ZeRO-3 under pipeline parallelism; a ZeRO-3 the user gives is kept."""
    from ai_ready.catalog import load_catalog
    from ai_ready.model.hardware import hardware_for
    from ai_ready.model.search import search
    from ai_ready.model.workload import load_workload
    import yaml
    work = load_workload(yaml.safe_load((REPO / "examples" / "workloads" / "llama3-405b.yaml").read_text()))
    hw = hardware_for(load_catalog().system("meta-24k-h100"))
    found = search(work.model, work.training, hw, keep=5)
    for step in (found.best, *found.runner_up):
        assert not (step.parallelism.pp > 1 and step.parallelism.zero == 3)
    given = search(work.model, work.training, hw, fixed={"pp": 6, "zero": 3})
    assert given.best.parallelism.zero == 3 and given.best.parallelism.pp == 6


@pytest.mark.parametrize("preset, expected", [("megatron-lm-2021", False), ("megatron-deepspeed", False),
                                              ("megatron-core-2024", True)])
def test_sequence_parallelism_follows_the_stack(preset: str, expected: bool) -> None:
    """Megatron-LM of 2021 and BLOOM's Megatron-DeepSpeed had no sequence parallelism: their layouts run without it."""
    result = extrapolate(str(GPT3), "--system", "dgx-a100-80gb", "--nodes", "16", "--tp", "8", "--pp", "4",
                         "--dp", "4", "--software", preset)
    assert result["parallelism"]["sequence_parallel"] is expected
    given = extrapolate(str(GPT3), "--system", "dgx-a100-80gb", "--nodes", "16", "--tp", "8", "--pp", "4",
                        "--dp", "4", "--software", preset, "--sequence-parallel")
    assert given["parallelism"]["sequence_parallel"] is True  # what the user gives is kept
