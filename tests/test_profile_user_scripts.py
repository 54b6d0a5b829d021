"""`ai-ready profile` on training scripts in the styles people publish: a GPT from hand-cut ``np.memmap``
batches (gradient accumulation, no DataLoader), the same under torch.compile, a sequence-first language
model updated by hand (no optimizer), a trace HolisticTraceAnalysis can read, and a job left to run on
after its profile with every hook taken off."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, cli_env
from test_profile_cli import job_dir, metric, own_step_times, profile, records
from test_profile_frameworks import job_info, within


def _agrees_pairwise(out: Path, stdout: str, tolerance: float = 0.10) -> None:
    raw = json.loads((out / "job" / "ranks" / "rank-0.json").read_text())
    own = own_step_times(stdout)
    timed = [s for s in raw["steps"] if s["index"] in raw["timed_steps"]]
    ratios = [s["total_s"] / own[s["index"]] for s in timed if s["index"] in own]
    assert len(ratios) >= len(timed) - 1, (sorted(own), [s["index"] for s in timed])
    assert within(statistics.median(ratios), 1.0, tolerance), ratios


def test_gpt_from_memmap_batches_has_tokens_flops_shape_and_an_outlook(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "gpt_memmap.py")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "2", "--steps", "6", "--system", "hammerhai", "--",
                        "python", "gpt_memmap.py", "--max-iters", "40", "--accum", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokens, flops = job_info(proc.stdout)
    meta, recs = records(out)
    tput = metric(recs, "throughput")
    assert tput.unit == "tokens/s" and tput.params["per_step"] == tokens  # four micro-batches, no DataLoader
    assert tput.params["source"] == "model inputs"
    assert within(metric(recs, "model_flops").value, flops)
    shape = meta["ranks"][0]["model"]["transformer"]
    # the vocabulary is the token table the ids index (65 rows), not the larger position table (128 rows)
    assert (shape["vocab"], shape["layers"], shape["hidden"], shape["heads"]) == (65, 2, 64, 4)
    assert meta["ranks"][0]["seq_len"] == 128
    _agrees_pairwise(out, proc.stdout)
    [system] = meta["extrapolation"]["systems"]
    assert system["error"] is None and system["prediction"]["mfu"] > 0
    assert "hammerhai:" in proc.stdout and "not extrapolated" not in proc.stdout


def test_compiled_gpt_still_has_model_flops_and_mfu(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "gpt_memmap.py")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "2", "--steps", "4", "--no-extrapolate", "--",
                        "python", "gpt_memmap.py", "--max-iters", "40", "--accum", "2", "--compile", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokens, flops = job_info(proc.stdout)
    meta, recs = records(out)
    assert meta["ranks"][0]["features"]["compile"] is True
    model_flops = metric(recs, "model_flops")
    assert model_flops.status == "ok" and within(model_flops.value, flops), model_flops.params
    assert "uncompiled" in model_flops.params["source"]
    assert model_flops.check is not None and model_flops.check["passed"]  # counted and analytic agree
    assert metric(recs, "mfu").value > 0
    assert metric(recs, "throughput").params["per_step"] == tokens
    assert "global hooks" not in proc.stderr  # our first-step hooks do not leave torch's warning in the job's output


def test_sequence_first_language_model_updated_by_hand(tmp_path: Path) -> None:
    folder = job_dir(tmp_path, "word_lm_manual.py")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "2", "--steps", "8", "--no-extrapolate", "--",
                        "python", "word_lm_manual.py", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokens, flops = job_info(proc.stdout)
    meta, recs = records(out)
    rank = meta["ranks"][0]
    assert rank["step_source"] == "cycle"
    tput = metric(recs, "throughput")
    assert tput.unit == "tokens/s" and tput.params["per_step"] == tokens
    assert rank["model"]["sequence_first"] is True and rank["seq_len"] == 35  # [bptt, batch] inputs
    assert rank["model"]["transformer"]["vocab"] == 2000
    assert within(metric(recs, "model_flops").value, flops)
    # cycle steps are numbered from the fallback's first step, so compare the medians of the steady state
    own = own_step_times(proc.stdout)
    steady = statistics.median(t for i, t in own.items() if i >= 20)
    assert within(metric(recs, "step_time").value, steady, 0.15)


def test_trace_is_written_once_and_holistic_trace_analysis_reads_it(tmp_path: Path) -> None:
    hta = pytest.importorskip("hta.trace_analysis", reason="HolisticTraceAnalysis is in the [test] extra")
    folder = job_dir(tmp_path, "gpt_memmap.py")
    proc, out = profile(tmp_path, folder, "--warmup-steps", "1", "--steps", "3", "--trace", "--run-to-completion",
                        "--no-extrapolate", "--", "python", "gpt_memmap.py", "--max-iters", "16", "--accum", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "could not write" not in proc.stderr and max(own_step_times(proc.stdout)) == 15  # the job ran on
    ranks = out / "job" / "ranks"
    assert sorted(p.name for p in ranks.iterdir()) == ["rank-0.json", "rank-0.steps.jsonl", "trace-rank0.json"]  # no temporary left
    trace_dir = tmp_path / "trace"
    trace_dir.mkdir()
    (trace_dir / "trace-rank0.json").write_bytes((ranks / "trace-rank0.json").read_bytes())
    analysis = hta.TraceAnalysis(trace_dir=str(trace_dir))
    names = analysis.t.symbol_table.get_sym_table()
    assert [n for n in names if n.startswith("ProfilerStep#")] and any(n.startswith("aten::") for n in names)
    trace = analysis.t.get_trace(0)
    if (trace["stream"] >= 0).any():  # GPU kernels: the temporal breakdown (idle, compute, non-compute)
        breakdown = analysis.get_temporal_breakdown(visualize=False)
        assert float(breakdown["compute_time(us)"].iloc[0]) > 0
    else:  # a CPU trace has no kernels, so HTA has no device timeline to break down
        assert (trace["dur"] > 0).any()


DETACH_CHECK = textwrap.dedent("""
    import os, sys
    os.environ.update(AI_READY_PROFILE_DIR=sys.argv[1], AI_READY_PROFILE_WARMUP="1", AI_READY_PROFILE_STEPS="2",
                      AI_READY_PROFILE_STOP="0")
    from ai_ready.profile import hooks
    import torch
    from torch.nn.modules import module as module_mod
    from torch.optim import optimizer as optim_mod
    originals = (torch.autograd.backward, torch.Tensor.backward, torch.Tensor.item, torch.compile)
    rec = hooks.start_from_env()
    assert torch.autograd.backward is not originals[0]
    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 50))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(6):
        loss = model(torch.randint(0, 50, (4, 16))).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert rec.status == "complete"
    assert (torch.autograd.backward, torch.Tensor.backward, torch.Tensor.item, torch.compile) == originals
    assert not module_mod._global_forward_pre_hooks and not module_mod._global_forward_hooks
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert not optim_mod._global_optimizer_pre_hooks and not optim_mod._global_optimizer_post_hooks
    import warnings
    assert not any("global hooks" in str(f[1]) for f in warnings.filters)  # our warning filter is gone too
    print("DETACHED", len(rec.done_steps))
""")


def test_a_complete_profile_takes_every_hook_off_a_job_that_runs_on(tmp_path: Path) -> None:
    script = tmp_path / "detach_check.py"
    script.write_text(DETACH_CHECK)
    env = cli_env()
    env["PYTHONPATH"] = str(REPO / "suite")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "ranks")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DETACHED 3" in proc.stdout  # warm-up 1 + 2 timed steps, then nothing more recorded
