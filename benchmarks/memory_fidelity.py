#!/usr/bin/env python3
"""Memory-benchmark fidelity: ai-ready's STREAM triad against a bare torch triad loop, same run.

CPU: each round pairs a bare loop of `torch.add(b, c, alpha=3, out=a)`
(perf_counter around N back-to-back calls) with ai-ready's triad case on arrays
of the same size, alternating which runs first; target: the median of the
per-round ratios ai-ready/bare >= 0.95 (pairing cancels the shared host's
bandwidth drift, which is larger than the effect measured).
The measured host copy bandwidth is printed beside it, as the report shows it.

    python benchmarks/memory_fidelity.py [--rounds 5] [--size 260M]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ai_ready.bench.collectives.ops import parse_size
from ai_ready.bench.context import BenchContext
from ai_ready.bench.memory import cpu
from ai_ready.bench.memory.stream import SCALAR, STREAM_OPS
from ai_ready.cli.memory import last_level_cache_bytes
from ai_ready.measure.harness import DEFAULT

TARGET = 0.95
BARE_SECONDS = 1.0


def bare_triad_gbs(elements: int, seconds: float) -> float:
    b, c = torch.randn(elements), torch.randn(elements)
    a = torch.empty(elements)
    torch.add(b, c, alpha=SCALAR, out=a)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 2:  # warm-up, sizes the timed loop
        torch.add(b, c, alpha=SCALAR, out=a)
        n += 1
    t0 = time.perf_counter()
    for _ in range(max(n, 3)):
        torch.add(b, c, alpha=SCALAR, out=a)
    per_call = (time.perf_counter() - t0) / max(n, 3)
    return STREAM_OPS["triad"].bytes_moved(elements) / per_call / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", help="bytes per array [default: the last-level cache size, at least 64M]")
    args = parser.parse_args()
    llc = last_level_cache_bytes("cpu") or 0
    size = parse_size(args.size) if args.size else max(64 << 20, llc)
    elements = size // 4
    ctx = BenchContext(device="cpu", device_name="cpu", budget=DEFAULT)
    bare, ours, copies, ratios = [], [], [], []
    for round_index in range(args.rounds):
        # pair each ai-ready figure with a bare one taken right beside it, alternating which goes
        # first (ABBA), so drift of the shared host's bandwidth cancels in the ratio
        first_bare = round_index % 2 == 0
        if first_bare:
            bare.append(bare_triad_gbs(elements, BARE_SECONDS))
        record = cpu.run_stream("triad", elements, ctx, None)
        if record.status != "ok":
            print(f"triad: {record.status}: {record.reason}")
            return 1
        ours.append(record.value)
        if not first_bare:
            bare.append(bare_triad_gbs(elements, BARE_SECONDS))
        ratios.append(ours[-1] / bare[-1])
        copies.append(cpu.run_stream("copy", elements, ctx, None).value)
    ratio = statistics.median(ratios)
    print(f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, arrays of {size >> 20} MiB "
          f"(last-level cache {llc >> 20} MiB), {args.rounds} paired rounds (ABBA):")
    print(f"bare torch triad {statistics.median(bare):.2f} GB/s, ai-ready triad {statistics.median(ours):.2f} GB/s "
          f"(medians); paired ratio ai-ready/bare: median {ratio:.3f}, range {min(ratios):.3f}..{max(ratios):.3f} "
          f"(target >= {TARGET})")
    print(f"measured host copy {statistics.median(copies):.2f} GB/s: ai-ready triad is "
          f"{statistics.median(ours) / statistics.median(copies):.1%} of it")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
