#!/usr/bin/env python3
"""Overhead of `ai-ready profile` on the job it profiles: target median step time <= 1.05 x bare.

The example job (examples/myjob) prints its own wall time per step (`--print-step-times`: from the end
of one optimizer.step() to the end of the next, time.perf_counter). In paired rounds (ABBA order) the
job runs bare, as `python train.py`, and under `ai-ready profile --run-to-completion` (trace off), from
the same Python and process tree; in both runs the job's own clock measures the same step indices
(after a warm-up of 10 steps), so the comparison does not depend on our own timing. The ratio of the
medians is taken pair by pair and the median ratio is compared with the target. Caches are warm: the
synthetic corpus is written once before the first round.

    python benchmarks/profile_overhead.py [--rounds 3] [--steps 80]
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
TARGET = 1.05
SKIP = 10  # first steps of each run left out (allocator and cache warm-up)
STEP_LINE = re.compile(r"^STEPTIME (\d+) ([0-9.eE+-]+)$", re.M)


def step_times(stdout: str) -> dict[int, float]:
    return {int(i): float(t) for i, t in STEP_LINE.findall(stdout)}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[int, float]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    times = step_times(proc.stdout)
    if not times:
        sys.exit(f"no STEPTIME lines from: {' '.join(argv)}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=80, help="steps per run")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "suite"), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="ai-ready-overhead-") as tmp:
        job = Path(tmp) / "myjob"
        shutil.copytree(REPO / "examples" / "myjob", job, ignore=shutil.ignore_patterns("data", "checkpoints"))
        command = [sys.executable, "train.py", "--steps", str(args.steps), "--print-step-times"]
        bare = lambda: run(command, job, env)  # noqa: E731
        profiled = lambda: run([sys.executable, "-m", "ai_ready", "profile", str(job), "-o",  # noqa: E731
                                str(Path(tmp) / "out"), "--run-to-completion", "--no-trace", "--warmup-steps", "3",
                                "--steps", "20", "--", *command], job, env)
        bare()  # writes the corpus once: every timed round reads warm files
        pairs = []
        for r in range(args.rounds):
            first, second = (bare, profiled) if r % 2 == 0 else (profiled, bare)
            a, b = first(), second()
            plain, under = (a, b) if r % 2 == 0 else (b, a)
            steps = sorted(set(plain) & set(under))[SKIP:]
            m_bare = statistics.median(plain[i] for i in steps)
            m_prof = statistics.median(under[i] for i in steps)
            pairs.append((m_bare, m_prof, m_prof / m_bare))
            print(f"round {r + 1}: bare {m_bare * 1e3:.3f} ms/step, profiled {m_prof * 1e3:.3f} ms/step, "
                  f"ratio {m_prof / m_bare:.3f} ({len(steps)} steps each)", flush=True)
    ratio = statistics.median(p[2] for p in pairs)
    print(f"examples/myjob, {args.rounds} paired rounds: median bare {statistics.median(p[0] for p in pairs) * 1e3:.3f} "
          f"ms/step, profiled {statistics.median(p[1] for p in pairs) * 1e3:.3f} ms/step, ratio {ratio:.3f} "
          f"(range {min(p[2] for p in pairs):.3f}..{max(p[2] for p in pairs):.3f}; target <= {TARGET})")
    print("target met" if ratio <= TARGET else "target NOT met")


if __name__ == "__main__":
    main()
