#!/usr/bin/env python3
"""A job left to run on after its profile runs at its bare speed: target ratio <= 1.05 (issue 16).

`ai-ready profile --run-to-completion` lets the job finish once its profile is complete; every hook, counter
and profiler must be gone by then. The job is a GPT trained from hand-cut np.memmap batches
(tests/jobs/gpt_memmap.py: the most common style of small LLM scripts; CUDA with bf16 autocast where a GPU
is present), which prints its own wall time per optimizer step (`JOBSTEP <i> <seconds>`). In paired rounds
(ABBA order) it runs bare and under the profile, from the same Python; only the steps after the profile
window (warm-up + timed + trace steps, plus a margin) are compared, on the job's own clock, so the figure does
not depend on ai-ready's timing. The median of the per-round ratios is compared with the target. Caches are
warm (the first run of each round pays for nothing the second does not: the token file is written by each
run, compile caches are shared).

    python benchmarks/after_profile_speed.py [--rounds 3] [--iters 90] [--trace] [--compile]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB = REPO / "tests" / "jobs" / "gpt_memmap.py"
TARGET = 1.05
WARMUP, STEPS, TRACE_STEPS = 3, 10, 3
#: Steps after the profile window left out of the comparison (the trace export, allocator settling).
MARGIN = 5
STEP_LINE = re.compile(r"^JOBSTEP (\d+) ([0-9.eE+-]+)$", re.M)


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[int, float]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    times = {int(i): float(t) for i, t in STEP_LINE.findall(proc.stdout)}
    if not times:
        sys.exit(f"no JOBSTEP lines from: {' '.join(argv)}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=90, help="optimizer steps per run")
    parser.add_argument("--trace", action="store_true", help="profile with --trace (torch.profiler window)")
    parser.add_argument("--compile", action="store_true", help="the job compiles its model")
    parser.add_argument("--job-args", default="--accum 1", help="more arguments for the job")
    args = parser.parse_args()
    first_after = WARMUP + STEPS + (TRACE_STEPS if args.trace else 0) + 1 + MARGIN  # +1: compile's extra step
    if args.iters <= first_after + 10:
        sys.exit(f"--iters must exceed {first_after + 10}: the profile window and a margin come first")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "suite"), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="ai-ready-after-profile-") as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        shutil.copy(JOB, job / JOB.name)
        command = [sys.executable, JOB.name, "--max-iters", str(args.iters), *args.job_args.split()]
        command += ["--compile"] if args.compile else []
        profile_flags = ["--run-to-completion", "--no-extrapolate", "--warmup-steps", str(WARMUP),
                         "--steps", str(STEPS), "--trace" if args.trace else "--no-trace"]
        bare = lambda: run(command, job, env)  # noqa: E731
        profiled = lambda: run([sys.executable, "-m", "ai_ready", "profile", str(job), "-o",  # noqa: E731
                                str(Path(tmp) / "out"), *profile_flags, "--", *command], job, env)
        bare()  # warms the file cache and any compile cache
        ratios = []
        for r in range(args.rounds):
            first, second = (bare, profiled) if r % 2 == 0 else (profiled, bare)
            a, b = first(), second()
            plain, under = (a, b) if r % 2 == 0 else (b, a)
            steps = [i for i in sorted(set(plain) & set(under)) if i >= first_after]
            m_bare = statistics.median(plain[i] for i in steps)
            m_after = statistics.median(under[i] for i in steps)
            ratios.append(m_after / m_bare)
            print(f"round {r + 1}: bare {m_bare * 1e3:.3f} ms/step, after the profile {m_after * 1e3:.3f} ms/step, "
                  f"ratio {m_after / m_bare:.3f} (steps {steps[0]}..{steps[-1]}, {len(steps)} each)", flush=True)
    ratio = statistics.median(ratios)
    what = "trace" if args.trace else "no trace"
    print(f"gpt_memmap ({what}{', compiled' if args.compile else ''}), {args.rounds} paired rounds: steps after "
          f"the profile / bare = {ratio:.3f} (range {min(ratios):.3f}..{max(ratios):.3f}; target <= {TARGET})")
    print("target met" if ratio <= TARGET else "target NOT met")


if __name__ == "__main__":
    main()
