#!/usr/bin/env python3
"""Wall time of `ai-ready bench gemm --quick` as a whole process (target: <= 30 s on 2 CPU cores).

Runs the command N times into a temporary folder and prints the median, the
spread and the ratio to the target. Uses only the public command line.

    python benchmarks/gemm_quick_walltime.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory(prefix="ai-ready-bench-") as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"r{i}.json"
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "ai_ready", "--quiet", "bench", "gemm", "--quick", "-o", str(out)],
                                  capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                print(proc.stderr)
                return 1
    median = statistics.median(times)
    print(f"ai-ready bench gemm --quick: median {median:.1f} s over {args.runs} runs "
          f"(min {min(times):.1f}, max {max(times):.1f}); target {TARGET_S:.0f} s; "
          f"median/target = {median / TARGET_S:.2f}")
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
