#!/usr/bin/env python3
"""Harness fidelity: does ai-ready's GEMM figure match a bare torch.matmul loop?

In one process, for each shape, rounds alternate between a bare loop and
ai-ready's GEMM case (same call: ``torch.matmul(a, b, out=c)``, same
operands' shape and dtype). The bare loop's figure is its best round; the
ai-ready figure is the median it reports. Target: ratio >= 0.97 (harness
overhead <= 3%). Prints a table of ratios; exits 1 when a ratio misses.

    python benchmarks/gemm_fidelity.py                # CPU (or the GPU if there is one)
    python benchmarks/gemm_fidelity.py --device cuda --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ai_ready.bench import gemm
from ai_ready.bench.context import BenchContext
from ai_ready.measure.harness import DEFAULT

TARGET = 0.97
SHAPES = {
    "cpu": [("square", 1024, 1024, 1024, "fp32"), ("square", 2048, 2048, 2048, "fp32"),
            ("llm-mlp-up", 1024, 4096, 1024, "fp32"), ("square", 1024, 1024, 1024, "bf16")],
    "cuda": [("square", 4096, 4096, 4096, "bf16"), ("square", 8192, 8192, 8192, "bf16"),
             ("llm-mlp-up", 8192, 16384, 4096, "bf16"), ("square", 8192, 8192, 8192, "fp32")],
}
#: Seconds of each bare-loop round (after its own warm-up of the same length).
BARE_ROUND_S = 1.0


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_loop_tflops(case: gemm.GemmCase, device: str, seconds: float) -> float:
    """Best-effort plain loop: warm up, then time N back-to-back calls with one clock pair."""
    ops = gemm.make_operands(case, device, torch.Generator().manual_seed(0))
    call = ops.call
    call()
    sync(device)
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:  # warm-up by time, also sizes the timed loop
        call()
        n += 1
        if device.startswith("cuda") and n % 8 == 0:
            sync(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(max(n, 3)):
        call()
    sync(device)
    elapsed = time.perf_counter() - t0
    return case.flops * max(n, 3) / elapsed / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    ctx = BenchContext(device=args.device, device_name=args.device, budget=DEFAULT)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.rounds} interleaved rounds, ai-ready budget {DEFAULT.warmup_s}s warm-up + {DEFAULT.min_time_s}s")
    print(f"{'case':34s} {'bare best':>10s} {'ai-ready':>10s} {'ratio':>7s} {'ratio range':>15s}")
    worst = float("inf")
    for shape, m, n, k, dtype in SHAPES[kind]:
        case = gemm.GemmCase(shape, m, n, k, dtype)
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_loop_tflops(case, args.device, BARE_ROUND_S))
            [record] = gemm.run_case(case, ctx, None)
            if record.status != "ok":
                print(f"{case.name}: {record.status}: {record.reason}")
                return 1
            ours.append(record.value)
        best = max(bare)
        ratio = statistics.median(ours) / best
        lo, hi = min(ours) / best, max(ours) / best
        worst = min(worst, ratio)
        print(f"{case.name:34s} {best:10.4f} {statistics.median(ours):10.4f} {ratio:7.3f} {lo:7.3f}..{hi:5.3f}")
    verdict = "meets" if worst >= TARGET else "MISSES"
    print(f"worst ratio {worst:.3f}: {verdict} the >= {TARGET} target (TFLOP/s; ai-ready median / bare-loop best)")
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
