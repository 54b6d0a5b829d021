#!/usr/bin/env python3
"""Search speed of the extrapolation: the full layout search for 100,000 GPUs must finish in <= 2 s.

Times `ai_ready.model.search.search` (TP x PP x DP x CP x micro-batch x interleave x recomputation x
ZeRO under the memory cap) for published-scale workloads on the gigafactory-100k system and two
others, `--repeats` times each in this process. The first call of a workload fills the per-layer
cache (cold); later ones reuse it (warm): both are printed, the target applies to the cold one.
Prints median and spread per case and the ratio target / slowest cold search (>= 1 passes).

Then whole commands as a user starts them (new processes, median of `--repeats`): `ai-ready extrapolate` of the
example workloads on gigafactory-100k (target <= 1 s) and `ai-ready --help` (target <= 0.5 s), neither of
which may import torch.

    python benchmarks/search_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ai_ready.catalog import load_catalog
from ai_ready.model.hardware import hardware_for
from ai_ready.model.search import search
from ai_ready.model.step import layer_time
from ai_ready.model.workload import Training, TransformerModel

TARGET_S = 2.0
COMMAND_TARGET_S = 1.0
HELP_TARGET_S = 0.5
REPO = Path(__file__).resolve().parents[1]
COMMAND_WORKLOADS = ("gpt3-175b", "llama3-405b")
WORKLOADS = {
    "gpt3-175b": (TransformerModel(96, 12288, 96, 51200, 2048), Training(1536)),
    "llama3-405b": (TransformerModel(126, 16384, 128, 128256, 8192, kv_heads=8, ffn_hidden=53248, ffn="swiglu"),
                    Training(2048)),
    "gpt-1t": (TransformerModel(128, 25600, 160, 51200, 2048), Training(3072)),
    "moe-8x22b": (TransformerModel(56, 6144, 48, 32768, 4096, kv_heads=8, ffn_hidden=16384, ffn="swiglu",
                                   experts=8, top_k=2), Training(4096)),
}
SYSTEMS = ("gigafactory-100k", "jupiter-booster", "alps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    catalog = load_catalog()
    slowest_cold = 0.0
    print(f"{'system':18} {'workload':12} {'GPUs':>7} {'cold s':>7} {'warm median s':>14} {'spread':>7} "
          f"{'evaluated':>9}  best layout")
    for system_name in SYSTEMS:
        hw = hardware_for(catalog.system(system_name), "bf16")
        for name, (model, training) in WORKLOADS.items():
            layer_time.cache_clear()
            t0 = time.perf_counter()
            result = search(model, training, hw)
            cold = time.perf_counter() - t0
            warm = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                search(model, training, hw)
                warm.append(time.perf_counter() - t0)
            slowest_cold = max(slowest_cold, cold) if system_name == "gigafactory-100k" else slowest_cold
            p = result.best.parallelism
            spread = (max(warm) - min(warm)) / statistics.median(warm)
            print(f"{system_name:18} {name:12} {hw.total_gpus:>7} {cold:7.3f} {statistics.median(warm):14.3f} "
                  f"{spread:7.1%} {result.evaluated:9d}  {result.best.gpus} GPUs tp{p.tp} pp{p.pp} dp{p.dp} "
                  f"cp{p.cp} ep{p.ep} mb{p.microbatch} v{p.interleave} {p.recompute} ZeRO-{p.zero}, "
                  f"MFU {result.best.mfu:.1%}")
    ratio = TARGET_S / slowest_cold
    print(f"\nslowest cold search on 100,000 GPUs: {slowest_cold:.3f} s; target {TARGET_S:g} s; "
          f"ratio target/slowest {ratio:.2f} ({'pass' if ratio >= 1 else 'FAIL'})")
    whole_commands(args.repeats)


def _wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def whole_commands(repeats: int) -> None:
    """Whole processes, as a user times them: start-up, imports, search and printing."""
    base = [sys.executable, "-m", "ai_ready"]
    print()
    slowest = 0.0
    for name in COMMAND_WORKLOADS:
        workload = REPO / "examples" / "workloads" / f"{name}.yaml"
        wall = _wall([*base, "extrapolate", str(workload), "--system", "gigafactory-100k"], repeats)
        slowest = max(slowest, wall)
        print(f"ai-ready extrapolate {name} --system gigafactory-100k: {wall:.3f} s (median of {repeats} processes)")
    help_wall = _wall([*base, "--help"], repeats)
    print(f"ai-ready --help: {help_wall:.3f} s")
    print(f"whole extrapolate command: ratio target/slowest {COMMAND_TARGET_S / slowest:.2f} "
          f"({'pass' if slowest <= COMMAND_TARGET_S else 'FAIL'}); --help: ratio {HELP_TARGET_S / help_wall:.2f} "
          f"({'pass' if help_wall <= HELP_TARGET_S else 'FAIL'})")


if __name__ == "__main__":
    main()
