"""`ai-ready train` on this process: it really trains, FLOPs agree, the breakdown adds up, bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_ready.cli import main
from ai_ready.records import load_results


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.mark.parametrize("arch", ["gpt", "moe", "cnn"])
def test_tiny_presets_train_and_report(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.json"
    code, stdout, err = call(capsys, "train", arch, "--preset", "tiny", "--steps", "13", "--warmup-steps", "2",
                             "--data-dir", str(tmp_path), "-o", str(out))
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # the dataset's scratch folder is gone
    records = {r.metric: r for r in load_results(out).records if r.metric != "phase_time"}
    phases = [r for r in load_results(out).records if r.metric == "phase_time"]
    loss = records["loss"]
    assert loss.params["last_loss"] < loss.params["first_loss"]  # it really trains
    flops = records["model_flops"]
    assert flops.status == "ok" and abs(flops.check["value"] - 1.0) <= 0.05
    step = records["step_time"]
    assert len(step.samples) == 13  # odd: the median of items/t is exactly items / median(t)
    # the four phases make up the step, sample by sample
    for i, total in enumerate(step.samples):
        assert sum(p.samples[i] for p in phases) == pytest.approx(total)
    assert {p.params["phase"] for p in phases} == {"data", "forward", "backward", "optimizer"}
    assert sum(p.params["share_of_step"] for p in phases) == pytest.approx(1.0)
    tput = records["throughput"]
    items = tput.params["batch"] * (1 if arch == "cnn" else tput.params["seq_len"])
    assert tput.value == pytest.approx(items / step.value, rel=1e-6)
    if "mfu" in records:  # a CPU whose clock is known gets a declared peak
        mfu = records["mfu"]
        assert mfu.value == pytest.approx(100 * flops.value / step.value / (records["model_tflops"].ceiling["value"] * 1e12),
                                          rel=1e-6)
    assert records["peak_memory"].value > 0 and "Avg" not in stdout


@pytest.mark.parametrize("args, fragment", [
    (["gpt", "--hidden", "64", "--heads", "3"], "heads"),
    (["gpt", "--preset", "huge"], "huge"),
    (["moe", "--experts", "2", "--top-k", "3"], "top"),
    (["cnn", "--layers", "4"], "does not apply to cnn"),
    (["gpt", "--layers", "400", "--hidden", "16384", "--heads", "128"], "GB to train"),
    (["gpt", "--data-dir", "/nonexistent/folder"], "does not exist"),
    (["transformer"], "transformer"),
])
def test_bad_input_exit_2(args: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "train", *args, "-o", str(tmp_path / "t.json"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err


def _two_rank_run(tmp_path: Path, arch: str, parallel: str) -> list:
    import subprocess
    import sys

    from conftest import cli_env

    out = tmp_path / f"{arch}-{parallel}.json"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "ai_ready", "--quiet", "train", arch, "--preset", "tiny",
                           "--steps", "6", "--warmup-steps", "1", "--ranks", "2", "--parallel", parallel,
                           "--data-dir", str(tmp_path), "-o", str(out)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("ai-ready-io-")] == []
    return load_results(out).records


@pytest.mark.skipif(__import__("conftest").mpiexec() is None, reason="no mpiexec: install the [test] extra")
def test_ddp_and_fsdp_on_two_ranks_compute_the_same_training(tmp_path: Path) -> None:
    losses = {}
    for parallel in ("ddp", "fsdp"):
        records = _two_rank_run(tmp_path, "gpt", parallel)
        assert {r.rank for r in records if r.metric == "step_time"} == {0, 1}
        [aggregate] = [r for r in records if r.params.get("aggregate")]
        assert aggregate.params["ranks"] == 2 and aggregate.unit == "tokens/s"
        per_rank = [r for r in records if r.metric == "throughput" and not r.params.get("aggregate")]
        assert aggregate.value <= sum(r.value for r in per_rank) * 1.000001  # bounded by the slowest rank
        loss = {r.rank: r for r in records if r.metric == "loss"}
        assert loss[0].params["last_loss"] < loss[0].params["first_loss"]
        assert all(r.params["parallel"] == parallel and r.params["world_size"] == 2 for r in loss.values())
        losses[parallel] = loss[0].samples
        exposed = [r for r in records if r.metric == "exposed_comm"]
        assert {r.rank for r in exposed} == {0, 1}  # backward with minus without gradient sync
        for r in exposed:
            assert r.params["backward_synced_s"] > 0 and r.params["backward_local_s"] > 0
            assert r.value == pytest.approx(r.params["backward_synced_s"] - r.params["backward_local_s"])
    # same data shards, same initial weights, same optimizer: DDP and FSDP take the same steps
    assert losses["ddp"] == pytest.approx(losses["fsdp"], rel=1e-4)


@pytest.mark.skipif(__import__("conftest").mpiexec() is None, reason="no mpiexec: install the [test] extra")
def test_moe_splits_experts_over_two_ranks_with_ddp_and_fsdp(tmp_path: Path) -> None:
    losses = {}
    for parallel in ("ddp", "fsdp"):
        records = _two_rank_run(tmp_path, "moe", parallel)
        loss = {r.rank: r for r in records if r.metric == "loss"}
        assert all(r.params["expert_parallel"] == 2 for r in loss.values())
        assert loss[0].params["last_loss"] < loss[0].params["first_loss"]
        [flops] = [r for r in records if r.metric == "model_flops" and r.rank == 0]
        assert flops.status == "ok"  # the ranks' mean FlopCounterMode count against the per-rank formula
        losses[parallel] = loss[0].samples
    assert losses["ddp"] == pytest.approx(losses["fsdp"], rel=1e-4)


def test_moe_experts_must_divide_over_the_ranks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "train", "moe", "--ranks", "3", "-o", str(tmp_path / "t.json"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "experts (4) must be a multiple of the ranks (3)" in lines[0], err
    assert not (tmp_path / "t.json").exists()


@pytest.mark.skipif(__import__("conftest").mpiexec() is None, reason="no mpiexec: install the [test] extra")
def test_weak_scaling_run_records_efficiency(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import cli_env

    out = tmp_path / "scaling.json"
    proc = subprocess.run([sys.executable, "-m", "ai_ready", "--quiet", "train", "gpt", "--preset", "tiny",
                           "--steps", "5", "--warmup-steps", "1", "--scaling", "2", "--data-dir", str(tmp_path),
                           "-o", str(out)], capture_output=True, text=True, timeout=300, env=cli_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = load_results(out).records
    scaling = {r.params["ranks"]: r for r in records if r.metric == "scaling_efficiency"}
    assert sorted(scaling) == [1, 2]  # 1 is always measured, as the baseline
    assert scaling[1].value == pytest.approx(100.0)
    two = scaling[2]
    assert two.value == pytest.approx(100 * two.params["throughput"] / (2 * two.params["throughput_1"]))
    assert {r.params["world_size"] for r in records if r.metric == "step_time"} == {1, 2}  # every run's records kept
    assert [p for p in tmp_path.iterdir() if p.name != "scaling.json"] == []


@pytest.mark.parametrize("args, fragment", [
    (["--scaling", "1,x"], "--scaling 1,x"),
    (["--scaling", "0,2"], "rank counts from 1"),
    (["--scaling", "1,2", "--ranks", "2"], "drop --ranks"),
])
def test_bad_scaling_input_exit_2(args: list[str], fragment: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "train", "gpt", *args, "-o", str(tmp_path / "t.json"))
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_recompute_trains_identically_and_counts_the_extra_forward(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    runs = {}
    for flag in ([], ["--recompute"]):
        out = tmp_path / f"r{len(flag)}.json"
        code, _, err = call(capsys, "train", "gpt", "--preset", "tiny", "--steps", "5", "--warmup-steps", "1",
                            "--data-dir", str(tmp_path), *flag, "-o", str(out))
        assert code == 0, err
        runs[bool(flag)] = {r.metric: r for r in load_results(out).records if r.metric != "phase_time"}
    plain, recomputed = runs[False], runs[True]
    # recomputation changes memory and time, never the arithmetic of training
    assert recomputed["loss"].samples == pytest.approx(plain["loss"].samples, rel=1e-5)
    model, hardware = recomputed["model_flops"].params["model_flops_per_step"], \
        recomputed["model_flops"].params["hardware_flops_per_step"]
    assert recomputed["model_flops"].params["recompute"] is True
    assert model < hardware < 1.5 * model  # one more forward of every block, not of the whole model
    assert plain["model_flops"].params["hardware_flops_per_step"] == pytest.approx(model)


def test_compile_excludes_compilation_from_the_timed_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.json"
    code, _, err = call(capsys, "train", "gpt", "--preset", "tiny", "--steps", "3", "--warmup-steps", "1",
                        "--compile", "--data-dir", str(tmp_path), "-o", str(out))
    assert code == 0, err
    step = next(r for r in load_results(out).records if r.metric == "step_time")
    assert step.params["compile"] is True
    assert step.timing["warmup_s"][0] > 10 * step.value  # the first step compiled; the timed ones did not
    code, _, err = call(capsys, "train", "gpt", "--compile", "--warmup-steps", "0", "-o", str(tmp_path / "x.json"))
    assert code == 2 and "--compile needs at least one --warmup-steps" in err
