"""`ai-ready profile` on training jobs written in the styles of the frameworks people use: the HF
Trainer, PyTorch Lightning, HF Accelerate, and torchtitan-style FSDP2 with per-block torch.compile.

Each job prints its own clock (``JOBSTEP <index> <seconds>`` per optimizer step) and, once,
``JOBINFO tokens_per_step=<int> flops_per_step=<float>``: its tokens per optimizer step (per rank)
and its own count of the FLOPs of one step (6 x matmul weights x tokens + 12 x layers x seq x hidden
x tokens).  The profile must agree with all of them: the step time with the job's clock, the
throughput's tokens per step, the model FLOPs with the job's count, and the vocabulary with the real
token vocabulary (each model has MORE positions than tokens, so the largest embedding is not it).

Every check of a test is made and the failed ones are reported together, so one run shows all that
the profiler gets wrong about a framework, not only the first thing.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from test_profile_cli import job_dir, metric, own_step_times, profile, records

TOLERANCE = 0.10  # step time against the job's own clock, FLOPs against the job's own count
WARMUP, STEPS = "3", "6"


def job_info(stdout: str) -> tuple[int, float]:
    match = re.search(r"^JOBINFO tokens_per_step=(\d+) flops_per_step=([0-9.eE+-]+)$", stdout, flags=re.M)
    assert match, f"the job printed no JOBINFO line:\n{stdout[-2000:]}"
    return int(match.group(1)), float(match.group(2))


def within(value: float | None, expected: float, rel: float = TOLERANCE) -> bool:
    return value is not None and abs(value / expected - 1) <= rel


def framework_failures(proc, out: Path, *, vocab: int, layers: int, hidden: int) -> list[str]:
    """Every check the framework tests share; the failed ones, each with its numbers."""
    tokens, flops = job_info(proc.stdout)
    meta, recs = records(out)
    failures: list[str] = []

    # the step time: profile's steps against the job's own clock, step by step over the timed steps
    raw = json.loads((out / "job" / "ranks" / "rank-0.json").read_text())
    own = own_step_times(proc.stdout)
    timed = [s for s in raw["steps"] if s["index"] in raw["timed_steps"]]
    ratios = [s["total_s"] / own[s["index"]] for s in timed if s["index"] in own]
    if not timed or len(ratios) < len(timed) - 1:
        failures.append(f"step indices: timed {[s['index'] for s in timed]}, job's own {sorted(own)}")
    elif not within(statistics.median(ratios), 1.0):
        failures.append(f"step time / job's clock: median {statistics.median(ratios):.3f} (pairwise "
                        f"{[round(r, 3) for r in ratios]}; profile {[round(s['total_s'], 4) for s in timed]})")

    # tokens per optimizer step
    tput = next((r for r in recs if r.metric == "throughput" and r.rank == 0 and not r.params.get("aggregate")), None)
    if tput is None:
        failures.append("no throughput record")
    elif tput.unit != "tokens/s" or tput.params.get("per_step") != tokens:
        failures.append(f"throughput: unit {tput.unit!r} per_step {tput.params.get('per_step')} "
                        f"(job: tokens/s, {tokens} tokens per step)")

    # model FLOPs per step against the job's own count
    model_flops = metric(recs, "model_flops")
    if not within(model_flops.value, flops):
        params = model_flops.params
        failures.append(f"model_flops: {model_flops.value} (status {model_flops.status!r}, "
                        f"source {params.get('source')!r}, counted {params.get('flop_counter')}, "
                        f"analytic {params.get('analytic')}, reason {model_flops.reason!r}) "
                        f"vs the job's {flops:.6g}"
                        + (f" = {model_flops.value / flops:.3f}x" if model_flops.value else ""))

    # the model's shape: the vocabulary is the token embedding's, not the (larger) position table's
    rank0 = next(r for r in meta["ranks"] if r["rank"] == 0)
    shape = (rank0.get("model") or {}).get("transformer")
    if not shape:
        failures.append(f"no transformer shape recognised: model {rank0.get('model')}")
    elif (shape.get("vocab"), shape.get("layers"), shape.get("hidden")) != (vocab, layers, hidden):
        failures.append(f"transformer shape {shape} (job: vocab {vocab}, layers {layers}, hidden {hidden})")
    return failures


def run_framework_job(tmp_path: Path, script: str, *args: str, launcher: tuple[str, ...] = (),
                      timeout: float = 240):
    folder = job_dir(tmp_path, script)
    proc, out = profile(tmp_path, folder, "--warmup-steps", WARMUP, "--steps", STEPS, *launcher, "--",
                        "python", script, "--steps", "100", *args, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta, _ = records(out)
    assert meta["status"] == "complete", (meta["status"], meta.get("stderr_tail"))
    return proc, out


def test_hf_trainer_job(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the HF Trainer job needs transformers")
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")
    proc, out = run_framework_job(tmp_path, "hf_trainer_job.py")
    failures = framework_failures(proc, out, vocab=300, layers=2, hidden=64)
    assert not failures, "\n".join(failures)


def test_lightning_job(tmp_path: Path) -> None:
    try:
        import lightning.pytorch  # noqa: F401
    except ImportError:
        pytest.importorskip("pytorch_lightning", reason="the Lightning job needs lightning or pytorch_lightning")
    proc, out = run_framework_job(tmp_path, "lightning_job.py")
    failures = framework_failures(proc, out, vocab=320, layers=2, hidden=64)
    assert not failures, "\n".join(failures)


def test_accelerate_job(tmp_path: Path) -> None:
    pytest.importorskip("accelerate", reason="the Accelerate job needs accelerate")
    proc, out = run_framework_job(tmp_path, "accelerate_job.py")
    failures = framework_failures(proc, out, vocab=288, layers=2, hidden=64)
    assert not failures, "\n".join(failures)


def test_fsdp2_compile_job_under_torchrun(tmp_path: Path) -> None:
    fsdp = pytest.importorskip("torch.distributed.fsdp", reason="FSDP2 needs torch.distributed")
    if not hasattr(fsdp, "fully_shard"):
        pytest.skip("this torch has no FSDP2 (torch.distributed.fsdp.fully_shard)")
    proc, out = run_framework_job(tmp_path, "fsdp2_compile_job.py", "--ckpt-every", "4",
                                  launcher=("--launcher", "torchrun", "--nproc", "2"), timeout=300)
    meta, _ = records(out)
    assert sorted(r["rank"] for r in meta["ranks"]) == [0, 1]
    failures = framework_failures(proc, out, vocab=256, layers=2, hidden=64)
    assert not failures, "\n".join(failures)
    rank0 = next(r for r in meta["ranks"] if r["rank"] == 0)
    assert rank0["features"]["fsdp"] and rank0["features"]["compile"]
    shape = rank0["model"]["transformer"]
    assert (shape["heads"], shape["kv_heads"], shape["ffn"]) == (4, 2, "swiglu")  # grouped-query, gated MLP
    saves = rank0["checkpoint_io"]["save"]  # dcp.save, each counted once (not its inner writes)
    assert 1 <= saves["count"] <= 3 and saves["bytes"] > 0
