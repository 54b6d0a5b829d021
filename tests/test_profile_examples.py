"""The bundled example jobs under `ai-ready profile`: the CNN (a non-LLM job) and a job left to finish."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli_env

from ai_ready.records import load_results


def copy_example(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(REPO / "examples" / name, folder, ignore=shutil.ignore_patterns("data", "checkpoints"))
    return folder


def run_profile(folder: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "ai_ready", "profile", str(folder), "-o", str(out), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cnn_example_is_profiled_as_a_non_transformer_job(tmp_path: Path) -> None:
    folder = copy_example(tmp_path, "cnnjob")
    proc = run_profile(folder, tmp_path / "out", "--steps", "4", "--warmup-steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = load_results(tmp_path / "out" / "cnnjob" / "profile.json")
    rank = document.meta["profile"]["ranks"][0]
    assert rank["model"]["transformer"] is None and rank["model"]["parameters"] > 0
    flops = next(r for r in document.records if r.metric == "model_flops")
    assert flops.status == "ok" and flops.params["source"] == "FlopCounterMode on one step"  # convolutions counted
    tput = next(r for r in document.records if r.metric == "throughput")
    assert tput.unit == "samples/s"
    assert (tmp_path / "out" / "cnnjob.html").exists()


def test_run_to_completion_lets_the_job_finish(tmp_path: Path) -> None:
    folder = copy_example(tmp_path, "myjob")
    proc = run_profile(folder, tmp_path / "out", "--steps", "3", "--warmup-steps", "1", "--run-to-completion",
                       "--no-extrapolate", "--",
                       "python", "train.py", "--steps", "12", "--print-step-times", "--checkpoint-every", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert max(int(i) for i in re.findall(r"^STEPTIME (\d+) ", proc.stdout, flags=re.M)) == 11  # all 12 steps ran
    assert "done: 12 steps" in proc.stdout
    document = load_results(tmp_path / "out" / "myjob" / "profile.json")
    meta = document.meta["profile"]
    assert meta["status"] == "complete" and meta["stopped_by"] is None
    assert meta["ranks"][0]["steps_recorded"] == 4  # warm-up 1 + 3 timed; the rest ran unrecorded
    assert meta["ranks"][0]["features"]["checkpointing"] is True
