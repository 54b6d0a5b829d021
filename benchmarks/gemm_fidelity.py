#!/usr/bin/env python3
"""Harness fidelity: does ai-ready's GEMM figure match a bare torch.matmul loop?

In one process, for each shape, rounds alternate between a bare loop and
ai-ready's GEMM case (same call: ``torch.matmul(a, b, out=c)``, same
operands' shape, dtype and random fill). Like with like: the bare loop warms up
for as long as ai-ready does (its budget's warm-up) and is timed for as long
(its minimum time), so a GPU's clocks and power state are the same for both:
"sustained". ``--burst`` also times the bare loop as a short burst (5 warm-up
calls, 30 timed, as the H200 reference of 2026-12-04 did) and prints how much
faster a burst runs than a sustained load. The bare loop's figure is its best
round; the ai-ready figure is the median it reports. Target: sustained ratio
>= 0.97 (harness overhead <= 3%). Exits 1 when a ratio misses.

    python benchmarks/gemm_fidelity.py                # CPU (or the GPU if there is one)
    python benchmarks/gemm_fidelity.py --device cuda --rounds 5 --burst
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
#: A burst as the bare reference of 2026-12-04 ran it: warm-up calls and timed calls.
BURST_WARMUP_CALLS, BURST_CALLS = 5, 30


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_loop_tflops(case: gemm.GemmCase, device: str, warmup_s: float, timed_s: float) -> float:
    """Plain loop: warm up for ``warmup_s`` (which also sizes the loop), then time back-to-back calls for about
    ``timed_s`` with one clock pair."""
    ops = gemm.make_operands(case, device, torch.Generator().manual_seed(0))
    call = ops.call
    call()
    sync(device)
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < warmup_s:
        call()
        n += 1
        if device.startswith("cuda") and n % 8 == 0:
            sync(device)
    sync(device)
    calls = max(3, round(n * timed_s / max(warmup_s, 1e-9)))
    t0 = time.perf_counter()
    for _ in range(calls):
        call()
    sync(device)
    return case.flops * calls / (time.perf_counter() - t0) / 1e12


def burst_tflops(case: gemm.GemmCase, device: str) -> float:
    """The short burst: a few warm-up calls, then BURST_CALLS timed ones (clocks still at their boost)."""
    ops = gemm.make_operands(case, device, torch.Generator().manual_seed(0))
    for _ in range(BURST_WARMUP_CALLS):
        ops.call()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(BURST_CALLS):
        ops.call()
    sync(device)
    return case.flops * BURST_CALLS / (time.perf_counter() - t0) / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", action="store_true", help="also time a short burst (sustained vs burst clocks)")
    args = parser.parse_args()
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    ctx = BenchContext(device=args.device, device_name=args.device, budget=DEFAULT)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.rounds} interleaved rounds, ai-ready budget {DEFAULT.warmup_s}s warm-up + {DEFAULT.min_time_s}s")
    print(f"mode: sustained (bare loop {DEFAULT.warmup_s}s warm-up + {DEFAULT.min_time_s}s timed, as ai-ready)"
          + (f"; burst: {BURST_WARMUP_CALLS} + {BURST_CALLS} calls" if args.burst else ""))
    print(f"{'case':34s} {'bare best':>10s} {'ai-ready':>10s} {'ratio':>7s} {'ratio range':>15s}"
          + (f" {'burst':>10s} {'burst/sust.':>11s}" if args.burst else ""))
    worst = float("inf")
    for shape, m, n, k, dtype in SHAPES[kind]:
        case = gemm.GemmCase(shape, m, n, k, dtype)
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_loop_tflops(case, args.device, DEFAULT.warmup_s, DEFAULT.min_time_s))
            [record] = gemm.run_case(case, ctx, None)
            if record.status != "ok":
                print(f"{case.name}: {record.status}: {record.reason}")
                return 1
            ours.append(record.value)
        best = max(bare)
        ratio = statistics.median(ours) / best
        lo, hi = min(ours) / best, max(ours) / best
        worst = min(worst, ratio)
        line = f"{case.name:34s} {best:10.4f} {statistics.median(ours):10.4f} {ratio:7.3f} {lo:7.3f}..{hi:5.3f}"
        if args.burst:
            burst = max(burst_tflops(case, args.device) for _ in range(args.rounds))
            line += f" {burst:10.4f} {burst / best:11.3f}"
        print(line)
    verdict = "meets" if worst >= TARGET else "MISSES"
    print(f"worst ratio {worst:.3f}: {verdict} the >= {TARGET} target (TFLOP/s; ai-ready median / sustained "
          "bare-loop best, same duration and operands)")
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
