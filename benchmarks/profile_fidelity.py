#!/usr/bin/env python3
"""`ai-ready profile` on user-style jobs against each job's own figures: targets step time and FLOPs within 10%.

Each job in tests/jobs/ written the way public training scripts are (hand-cut memmap batches, compiled,
hand-updated sequence-first LM, HF Trainer, Lightning, Accelerate, FSDP2 + compile under torchrun) prints
its own clock per optimizer step (`JOBSTEP <i> <seconds>`) and once its own count of the work of a step
(`JOBINFO tokens_per_step=<n> flops_per_step=<f>`). This script profiles each one unmodified and prints,
in one run: profile step time / the job's clock (median over the timed steps, matched by index; the
cycle-stepped job by the medians of its steady state), profile FLOPs / the job's count, tokens per step
against the job's, the vocabulary found, and whether an outlook was made. On a GPU the jobs run on CUDA.

    python benchmarks/profile_fidelity.py [--only gpt_memmap,lightning_job] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "tests" / "jobs"
TARGET = 0.10
#: (label, script, job arguments, extra profile flags, framework module needed or None)
CASES = (
    ("memmap GPT, accumulation 4", "gpt_memmap.py", ["--max-iters", "40"], [], None),
    ("memmap GPT, torch.compile", "gpt_memmap.py", ["--max-iters", "40", "--accum", "2", "--compile"], [], None),
    ("word LM by hand (no optimizer)", "word_lm_manual.py", ["--epochs", "1"], [], None),
    ("HF Trainer", "hf_trainer_job.py", [], [], "transformers"),
    ("PyTorch Lightning", "lightning_job.py", [], [], "pytorch_lightning"),
    ("HF Accelerate", "accelerate_job.py", [], [], "accelerate"),
    ("FSDP2 + compile + DCP, torchrun 2 ranks", "fsdp2_compile_job.py", ["--ckpt-every", "4"],
     ["--launcher", "torchrun", "--nproc", "2"], None),
)
STEP = re.compile(r"^JOBSTEP (\d+) ([0-9.eE+-]+)$", re.M)
INFO = re.compile(r"^JOBINFO tokens_per_step=(\d+) flops_per_step=([0-9.eE+-]+)$", re.M)


def _importable(module: str | None) -> bool:
    if module is None:
        return True
    from importlib.util import find_spec

    return find_spec(module) is not None


def run_case(label: str, script: str, job_args: list[str], flags: list[str], out: Path) -> dict:
    folder = out / script.removesuffix(".py")
    folder.mkdir(parents=True, exist_ok=True)
    for name in (script, "jobkit.py"):
        shutil.copy(JOBS / name, folder / name)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "suite"), env.get("PYTHONPATH", "")])
    results = out / "results"
    argv = [sys.executable, "-m", "ai_ready", "profile", str(folder), "-o", str(results), "--name", folder.name,
            "--warmup-steps", "3", "--steps", "6", "--system", "hammerhai", *flags, "--", "python", script, *job_args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    row = {"job": label, "exit": proc.returncode}
    info = INFO.search(proc.stdout)
    raw_path = results / folder.name / "ranks" / "rank-0.json"
    if not info or not raw_path.exists():
        row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return row
    tokens, flops = int(info.group(1)), float(info.group(2))
    raw = json.loads(raw_path.read_text())
    doc = json.loads((results / folder.name / "profile.json").read_text())
    recs = [r for r in doc["records"] if r.get("rank", 0) == 0 and not r.get("params", {}).get("aggregate")]
    by = {r["metric"]: r for r in recs if r["metric"] != "phase_time"}
    own = {int(i): float(t) for i, t in STEP.findall(proc.stdout)}
    timed = [s for s in raw["steps"] if s["index"] in raw["timed_steps"]]
    if raw["step_source"] == "cycle":  # cycle steps are numbered from the fallback: compare steady states
        ratio = statistics.median(s["total_s"] for s in timed) / statistics.median(
            t for i, t in own.items() if i >= 20)
    else:
        ratio = statistics.median(s["total_s"] / own[s["index"]] for s in timed if s["index"] in own)
    flops_value = (by.get("model_flops") or {}).get("value")
    tput = by.get("throughput") or {}
    systems = (doc["meta"]["profile"].get("extrapolation") or {}).get("systems") or []
    row.update(step_ratio=ratio, flops_ratio=(flops_value / flops) if flops_value else None,
               tokens_profile=tput.get("params", {}).get("per_step"), tokens_job=tokens, source=tput.get("params", {}).get("source"),
               vocab=((raw.get("model") or {}).get("transformer") or {}).get("vocab"),
               mfu=(by.get("mfu") or {}).get("value"),
               outlook=bool(systems) and all(s.get("prediction") for s in systems))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated script names (without .py)")
    parser.add_argument("--out", type=Path, help="keep the profiles here (default: a temporary folder)")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="ai-ready-profile-fidelity-") as tmp:
        out = args.out or Path(tmp)
        rows = []
        for label, script, job_args, flags, needs in CASES:
            if wanted and script.removesuffix(".py") not in wanted:
                continue
            if not _importable(needs):
                print(f"{label}: skipped ({needs} is not installed; it is in the [test] extra)", flush=True)
                continue
            row = run_case(label, script, job_args, flags, out / f"case{len(rows)}")
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'job':42} {'step/own':>9} {'FLOPs/own':>10} {'tokens/step (profile / job)':>28} {'vocab':>6} "
          f"{'MFU %':>6} outlook")
    met = True
    for r in rows:
        if "error" in r:
            met = False
            print(f"{r['job']:42} failed: {r['error']}")
            continue
        flops = f"{r['flops_ratio']:.3f}" if r["flops_ratio"] else "none"
        mfu = f"{r['mfu']:.2f}" if r["mfu"] is not None else "-"
        tokens = f"{r['tokens_profile']} / {r['tokens_job']}"
        print(f"{r['job']:42} {r['step_ratio']:9.3f} {flops:>10} {tokens:>28} {str(r['vocab']):>6} {mfu:>6} "
              f"{'yes' if r['outlook'] else 'NO'}")
        ok = abs(r["step_ratio"] - 1) <= TARGET and r["flops_ratio"] and abs(r["flops_ratio"] - 1) <= TARGET
        met = met and bool(ok) and r["outlook"] and r["tokens_profile"] == r["tokens_job"]
    print(f"targets (step time and FLOPs within {TARGET:.0%}, tokens equal, outlook made): "
          f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
