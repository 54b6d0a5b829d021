#!/usr/bin/env python3
"""Instrumentation overhead of `ai-ready train`: the phase breakdown must cost <= 3% of step time.

In one process, paired rounds (ABBA order) run a bare training loop (zero_grad, forward, loss, backward,
optimizer step; one clock pair around all steps, the device synchronised once at the end) and
ai-ready's instrumented loop (`train_steps`: a clock read and, on GPUs, a device synchronisation at
every phase boundary, and the loss read every step), on the same model, data (written to disk and read
through a DataLoader) and batch. Mean step times are compared pair by pair; target: the median of the
paired ratios bare / instrumented >= 0.97.

    python benchmarks/train_overhead.py [--rounds 3] [--steps 30] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ai_ready.bench.io.scratch import Scratch
from ai_ready.train import data, models, presets
from ai_ready.train.loop import train_steps

TARGET = 0.97
#: Shapes timed: the tiny preset and a mid-size GPT whose steps take tens of milliseconds on a CPU.
CASES = {"gpt-tiny": {}, "gpt-mid": {"layers": 4, "hidden": 256, "heads": 8, "seq_len": 128, "batch": 8}}


def bare_loop_s(model, loader, loss_fn, optimizer, steps: int, warmup: int, device: str) -> float:
    """Mean seconds per step of a plain loop, timed as a whole."""
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            inputs, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs, targets = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs.to(device)), targets.to(device))
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    loss_fn = lambda logits, targets: torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())  # noqa: E731
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} alternating rounds of {args.steps} steps (+{args.warmup} warm-up)")
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in CASES.items():
            with Scratch(Path(tmp), tag=f"{name}-") as scratch:
                worst = min(worst, run_case(name, overrides, scratch, loss_fn, args))
    print("target met" if worst >= TARGET else "TARGET MISSED")
    return 0 if worst >= TARGET else 1


def run_case(name: str, overrides: dict, scratch: Scratch, loss_fn, args: argparse.Namespace) -> float:
    """Paired bare and instrumented step times; prints them and returns the median paired ratio."""
    cfg = presets.resolve("gpt", "tiny", overrides)
    dataset = data.TokenFile(data.write_tokens(scratch, cfg.batch * 16, cfg.seq_len, cfg.vocab, 0), cfg.seq_len)
    loader = data.loader(dataset, cfg.batch, 0, 0)
    torch.manual_seed(0)
    template = models.GPT(cfg).to(args.device)
    bare, ours, ratios = [], [], []
    for round_index in range(args.rounds):
        # pair each instrumented figure with a bare one taken beside it, alternating which runs first
        # (ABBA), so the shared machine's drift cancels in the ratio
        order = ("bare", "ours") if round_index % 2 == 0 else ("ours", "bare")
        for which in order:
            model = copy.deepcopy(template)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            if which == "bare":
                bare.append(bare_loop_s(model, loader, loss_fn, optimizer, args.steps, args.warmup, args.device))
            else:
                log = train_steps(model, loader, loss_fn, optimizer, args.steps, args.warmup, args.device)
                ours.append(statistics.fmean(log.total))
        ratios.append(bare[-1] / ours[-1])
    ratio = statistics.median(ratios)
    print(f"{name:10s} bare {statistics.median(bare) * 1e3:8.3f} ms/step  instrumented "
          f"{statistics.median(ours) * 1e3:8.3f} ms/step  paired bare/instrumented: median {ratio:.3f}, "
          f"range {min(ratios):.3f}..{max(ratios):.3f} (overhead {1 / ratio - 1:+.1%}; target ratio >= {TARGET})")
    return ratio


if __name__ == "__main__":
    sys.exit(main())
