"""`ai-ready profile` on real job processes written the way people write them: the step time agrees with
the job's own clock, FLOPs with an analytic count, gradient accumulation counts optimizer steps, and crashes,
hangs, bad job files and jobs without an optimizer end with a clear status."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, cli_env, mpiexec

from ai_ready.records import load_results

JOBS = REPO / "tests" / "jobs"
AGREEMENT = 0.05  # the profile's median step time against the job's own (issue 7)


def job_dir(tmp_path: Path, *scripts: str, spec: str | None = None) -> Path:
    folder = tmp_path / "job"
    folder.mkdir(exist_ok=True)
    for script in (*scripts, "jobkit.py"):  # the jobs import their shared helpers from jobkit.py
        shutil.copy(JOBS / script, folder / script)
    if spec is not None:
        (folder / "ai-ready.yaml").write_text(spec)
    return folder


def profile(tmp_path: Path, folder: Path, *args: str, timeout: float = 240,
            relative: bool = False) -> tuple[subprocess.CompletedProcess, Path]:
    """Run `ai-ready profile`; with `relative`, from tmp_path with relative paths, as a user types them."""
    out = tmp_path / "out"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    where = [os.path.relpath(folder, tmp_path), "-o", "out"] if relative else [str(folder), "-o", str(out)]
    proc = subprocess.run([sys.executable, "-m", "ai_ready", "profile", *where, *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc, out


def records(out: Path, name: str = "job") -> tuple[dict, list]:
    document = load_results(out / name / "profile.json")
    return document.meta["profile"], document.records


def own_step_times(stdout: str) -> dict[int, float]:
    return {int(i): float(t) for i, t in re.findall(r"^JOBSTEP (\d+) ([0-9.eE+-]+)$", stdout, flags=re.M)}


def every_step_seen(out: Path, name: str = "job") -> None:
    """Every step of the rank's raw profile ran a forward and a backward, and forward took time: the
    hooks stayed attached to the outermost modules after they moved off the global hooks."""
    import json

    raw = json.loads((out / name / "ranks" / "rank-0.json").read_text())
    assert all(s["forward_calls"] >= 1 and s["backward_calls"] >= 1 for s in raw["steps"]), raw["steps"]
    assert all(s["phases"]["forward"] > 0 and s["phases"]["backward"] > 0 for s in raw["steps"])


def agrees_with_own_clock(out: Path, recs: list, own: dict[int, float], name: str = "job") -> None:
    """The profile's step times against the job's own, step by step over the timed steps both saw.

    Matching steps pairwise (not the two medians of differently sized sets) keeps the check about the
    clock, not about which steps a noisy host made slow; the record is then the raw steps' median."""
    import json

    raw = json.loads((out / name / "ranks" / "rank-0.json").read_text())
    timed = [s for s in raw["steps"] if s["index"] in raw["timed_steps"]]
    ratios = [s["total_s"] / own[s["index"]] for s in timed if s["index"] in own]
    assert len(ratios) >= len(timed) - 1  # the job never prints the step it is stopped inside
    assert statistics.median(ratios) == pytest.approx(1.0, rel=AGREEMENT), ratios
    assert metric(recs, "step_time").value == pytest.approx(statistics.median(s["total_s"] for s in timed))


def metric(recs: list, name: str, rank: int = 0):
    return next(r for r in recs if r.metric == name and r.rank == rank and not r.params.get("aggregate"))


def test_step_time_agrees_with_the_jobs_own_timing(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "plain_loop.py")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "3", "--steps", "25", "--",
                        "python", "plain_loop.py", "--steps", "200", "--sleep", "0.01")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, recs = records(out)
    assert meta["status"] == "complete" and meta["stopped_by"] is None  # it stopped itself, cleanly
    own = own_step_times(proc.stdout)
    # the same steps: warm-up 3, then 25 timed; the job stops inside the last optimizer.step(), so it
    # never prints that step's line
    assert max(own) == 26
    every_step_seen(out)
    agrees_with_own_clock(out, recs, own)
    phases = {r.params["phase"]: r for r in recs if r.metric == "phase_time"}
    assert sum(r.params["share_of_step"] for r in phases.values()) == pytest.approx(1.0)
    assert phases["forward"].value > 0 and phases["backward"].value > 0 and phases["data"].value > 0
    tput = metric(recs, "throughput")
    assert tput.unit == "samples/s" and tput.params["per_step"] == 384
    assert (out / "job.html").exists() and "step time" in proc.stdout


def test_gradient_accumulation_counts_optimizer_steps(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "grad_accum.py")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "2", "--steps", "8", "--",
                        "python", "grad_accum.py", "--steps", "100", "--accum", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, recs = records(out)
    rank = meta["ranks"][0]
    assert rank["features"]["grad_accumulation"] == 4 and rank["optimizer_steps"] == 10
    assert metric(recs, "throughput").params["per_step"] == 4 * 96  # four micro-batches per step
    agrees_with_own_clock(out, recs, own_step_times(proc.stdout))


def test_flops_agree_with_the_analytic_count_of_a_known_model(tmp_path: Path) -> None:
    sys.path.insert(0, str(JOBS))
    try:
        from known_flops import ANALYTIC_FLOPS_PER_STEP
    finally:
        sys.path.remove(str(JOBS))
    folder = job_dir(tmp_path, "known_flops.py")
    proc, out = profile(tmp_path, folder, "--steps", "5", "--", "python", "known_flops.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, recs = records(out)
    flops = metric(recs, "model_flops")
    assert flops.value == pytest.approx(ANALYTIC_FLOPS_PER_STEP, rel=AGREEMENT)
    assert flops.params["source"] == "FlopCounterMode on one step"


def test_mixed_precision_job_is_recognised(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "amp_loop.py", spec="target: {tokens: 1.0e9, systems: [hammerhai]}\n")
    proc, out = profile(tmp_path, folder, "--steps", "4", "--no-extrapolate", "--",
                        "python", "amp_loop.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, recs = records(out)
    assert meta["ranks"][0]["features"]["autocast"] == ["cpu:bfloat16"]
    assert metric(recs, "step_time").params["precision"] == "bf16"
    assert meta["target"]["systems"] == ["hammerhai"] and "extrapolation" not in meta  # --no-extrapolate
    assert '<section id="extrapolation"' not in (out / "job.html").read_text()


def test_a_job_with_a_target_is_extrapolated_to_its_systems(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "plain_loop.py", spec="target: {tokens: 1.0e9, systems: [hammerhai, nope]}\n")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "1", "--steps", "3", "--",
                        "python", "plain_loop.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, _ = records(out)
    extrapolation = meta["extrapolation"]
    assert extrapolation["workload"]["kind"] == "generic"  # an MLP: extrapolated from its measured totals
    hammerhai, nope = extrapolation["systems"]
    assert hammerhai["prediction"]["gpus"] == hammerhai["prediction"]["gpus_available"]
    assert hammerhai["prediction"]["run"]["wall_days"] > 0 and hammerhai["scaling"][-1]["gpus"] == 1152
    assert nope["prediction"] is None and "unknown system 'nope'" in nope["error"]
    assert re.search(r"^  hammerhai: 1,152 of 1,152 GPUs DDP, MFU \d+%, .* (days|hours), .* MWh, .* EUR, goodput",
                     proc.stdout, flags=re.M), proc.stdout
    html = (out / "job.html").read_text()
    assert "At scale: your job on the target systems" in html and "ext-scaling-chart" in html


def test_a_transformer_job_is_recognised_and_its_flops_match_the_formula(tmp_path: Path) -> None:
    folder = tmp_path / "myjob"
    shutil.copytree(REPO / "examples" / "myjob", folder, ignore=shutil.ignore_patterns("data", "checkpoints"))
    proc, out = profile(tmp_path, folder, "--steps", "3", "--warmup-steps", "1", "--system", "hammerhai",
                        relative=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (folder / "out").exists()  # the job runs in its folder; the profile lands where the user said
    meta, recs = records(out, "myjob")
    # --system replaces the target's systems; the target's 80-layer model is what is extrapolated
    (system,) = meta["extrapolation"]["systems"]
    assert system["system"] == "hammerhai" and system["prediction"]["run"]["energy_mwh"] > 0
    assert meta["extrapolation"]["workload"]["model"]["layers"] == 80
    assert "hammerhai:" in proc.stdout and '<section id="extrapolation"' in (out / "myjob.html").read_text()
    shape = meta["ranks"][0]["model"]["transformer"]
    assert shape["layers"] == 2 and shape["hidden"] == 128 and shape["heads"] == 4 and shape["vocab"] == 2048
    assert meta["ranks"][0]["seq_len"] == 128 and meta["target"]["systems"]
    flops = metric(recs, "model_flops")
    assert flops.check["passed"], flops.check  # attention included in the count on a CPU too
    assert metric(recs, "throughput").unit == "tokens/s"
    assert meta["ranks"][0]["checkpoint_io"]["save"]["count"] >= 0


def test_a_crash_is_reported_with_its_exit_status_and_stderr(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "crash.py")
    proc, out = profile(tmp_path, folder, "--steps", "20", "--", "python", "crash.py", "--fail-at", "6")
    assert proc.returncode == 1
    meta, _ = records(out)
    assert meta["status"] == "failed" and meta["exit_code"] == 1
    assert "simulated failure at step 6" in meta["stderr_tail"]
    assert meta["ranks"][0]["steps_recorded"] >= 5  # what was measured before the crash is kept
    assert "profile failed" in proc.stderr and "last lines of the job's stderr" in proc.stderr
    assert (out / "job.html").exists()


def test_a_hung_job_is_stopped_at_the_timeout_with_its_children(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "hang.py")
    start = time.monotonic()
    proc, out = profile(tmp_path, folder, "--timeout", "20", "--steps", "20", "--",
                        "python", "hang.py", "--hang-at", "5")
    assert time.monotonic() - start < 90
    assert proc.returncode == 1
    meta, _ = records(out)
    assert meta["status"] == "timeout" and meta["stopped_by"] == "timeout"
    assert meta["ranks"][0]["steps_recorded"] >= 4
    child = int(re.search(r"CHILDPID (\d+)", proc.stdout).group(1))
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the job's child process outlived the timeout"
        time.sleep(0.2)


def test_a_job_without_an_optimizer_gets_cycle_steps_and_the_explicit_api_advice(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "no_optimizer.py")
    proc, out = profile(tmp_path, folder, "--steps", "5", "--", "python", "no_optimizer.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, recs = records(out)
    assert meta["ranks"][0]["step_source"] == "cycle"
    assert "with ai_ready.step():" in proc.stderr
    assert any("ai_ready.step()" in w for w in metric(recs, "step_time").warnings)


def test_explicit_steps_and_marks(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "explicit_steps.py")
    proc, out = profile(tmp_path, folder, "--steps", "12", "--", "python", "explicit_steps.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, _ = records(out)
    rank = meta["ranks"][0]
    assert rank["step_source"] == "explicit" and rank["optimizer_steps"] == 0
    assert [m["name"] for m in rank["marks"]] == ["eval"]


@pytest.mark.parametrize("spec, fragment", [
    ("command: [python, train.py\n", "ai-ready.yaml"),
    ("command: [python, plain_loop.py]\nprofile: {stepz: 3}\n", "profile.stepz"),
    ("name: x\n", "command"),
    ("command: [no-such-program-xyz]\n", "no-such-program-xyz"),
    ("command: [python, missing.py]\n", "missing.py"),
    ("command: [python, plain_loop.py]\nnproc: 2\n", "launcher"),
])
def test_bad_job_files_exit_2_with_one_line(tmp_path: Path, spec: str, fragment: str) -> None:
    folder = job_dir(tmp_path, "plain_loop.py", spec=spec)
    proc, _ = profile(tmp_path, folder, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr


def test_an_unknown_system_exits_2_before_the_job_runs(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "plain_loop.py", spec="command: [python, plain_loop.py]\n")
    proc, out = profile(tmp_path, folder, "--system", "no-such-system", timeout=60)
    assert proc.returncode == 2 and "--system: unknown system 'no-such-system'" in proc.stderr
    assert not (out / "job").exists()


def test_no_job_file_and_no_command_exit_2(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "plain_loop.py")
    proc, _ = profile(tmp_path, folder, timeout=60)
    assert proc.returncode == 2 and "-- python train.py" in proc.stderr


def _check_two_ranks(out: Path) -> None:
    meta, recs = records(out)
    assert meta["status"] == "complete"
    assert sorted(r["rank"] for r in meta["ranks"]) == [0, 1]
    assert {r.rank for r in recs if r.metric == "step_time"} == {0, 1}
    [aggregate] = [r for r in recs if r.params.get("aggregate")]
    assert aggregate.params["ranks"] == 2 and aggregate.params["slowest_rank"] in (0, 1)
    ranks = {r["rank"]: r for r in meta["ranks"]}
    every_step_seen(out)  # through the DDP wrapper too
    assert ranks[0]["features"]["ddp"] and ranks[0]["collectives"]["ddp_bucket_all_reduce"]["count"] > 0
    assert any(r.metric == "exposed_comm" for r in recs)


def test_torchrun_job_is_profiled_per_rank(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "ddp_job.py", spec="command: [python, ddp_job.py, --steps, '200']\n"
                                                  "launcher: torchrun\nnproc: 2\n")
    proc, out = profile(tmp_path, folder, "--steps", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_two_ranks(out)


@pytest.mark.skipif(mpiexec() is None, reason="no mpiexec: install the [test] extra")
def test_mpiexec_job_is_profiled_per_rank(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "ddp_job.py")
    proc, out = profile(tmp_path, folder, "--launcher", "mpiexec", "--nproc", "2", "--steps", "6", "--",
                        "python", "ddp_job.py", "--steps", "200")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_two_ranks(out)


def test_trace_window_is_exported_as_a_chrome_trace(tmp_path: Path) -> None:
    import json

    folder = job_dir(tmp_path, "plain_loop.py")
    proc, out = profile(tmp_path, folder, "--steps", "3", "--warmup-steps", "1", "--trace", "--",
                        "python", "plain_loop.py", "--steps", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, recs = records(out)
    trace = Path(meta["ranks"][0]["trace_file"])
    assert trace.parent == (out / "job" / "ranks").resolve()
    events = json.loads(trace.read_text())["traceEvents"]
    assert any("aten::" in str(e.get("name", "")) for e in events)  # operator events a trace reader can use
    assert len(metric(recs, "step_time").samples) == 3  # the traced steps come after the timed ones
