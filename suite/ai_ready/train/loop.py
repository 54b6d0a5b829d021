"""An instrumented training loop: where each step's time goes.

Each step is split at four boundaries read from one host clock: waiting for
the DataLoader (and the copy to the device), forward with the loss, backward,
and the optimizer step. On a GPU every boundary synchronises the device so a
phase is not billed for work queued before it; that costs a little, and
`benchmarks/train_overhead.py` measures how much against a bare loop. The
clock is injectable for tests.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

PHASES = ("data", "forward", "backward", "optimizer")


@dataclass
class StepLog:
    """Per-step seconds of each phase, total seconds and loss, warm-up steps excluded."""

    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    total: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    warmup_loss: list[float] = field(default_factory=list)
    #: Seconds of each warm-up step (the first includes compilation with --compile).
    warmup_total: list[float] = field(default_factory=list)


def _batches(loader: Any) -> Iterator[Any]:
    """Endless batches: a new epoch (and reshuffle) whenever the loader is exhausted."""
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def autocast_for(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision through torch.autocast; fp32 runs as it is."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


def train_steps(model: torch.nn.Module, loader: Any, loss_fn: Callable[[Any, Any], torch.Tensor],
                optimizer: torch.optim.Optimizer, steps: int, warmup_steps: int, device: str,
                precision: str = "fp32", clock: Callable[[], float] = time.perf_counter,
                schedule: Any = None) -> StepLog:
    """Run warm-up then timed steps; returns the per-phase times of the timed steps. ``schedule`` (a torch LR
    scheduler) steps after every optimizer step, outside the timed phases."""
    sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.startswith("cuda") else None
    batches = _batches(loader)
    log = StepLog()
    model.train()
    for step in range(warmup_steps + steps):
        t0 = clock()
        inputs, targets = next(batches)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        sync()
        t1 = clock()
        with autocast_for(device, precision):
            loss = loss_fn(model(inputs), targets)
        sync()
        t2 = clock()
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        sync()
        t3 = clock()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        sync()
        t4 = clock()
        if schedule is not None:
            schedule.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {step}: the run diverged")
        if step < warmup_steps:
            log.warmup_loss.append(value)
            log.warmup_total.append(t4 - t0)
            continue
        for name, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            log.phases[name].append(seconds)
        log.total.append(t4 - t0)
        log.loss.append(value)
    return log


def backward_probe(model: torch.nn.Module, loader: Any, loss_fn: Callable[[Any, Any], torch.Tensor],
                   steps: int, device: str, sync_context: Callable[[bool], Any],
                   clock: Callable[[], float] = time.perf_counter) -> dict[bool, list[float]]:
    """Backward seconds with and without gradient synchronisation across ranks, in alternating steps.

    The difference is the communication backward could not hide behind computation (the exposed
    share). No optimizer step is taken, and gradients are cleared after each probe step.
    """
    sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    batches = _batches(loader)
    out: dict[bool, list[float]] = {True: [], False: []}
    for step in range(2 * steps):
        synced = step % 2 == 0
        inputs, targets = next(batches)
        inputs, targets = inputs.to(device), targets.to(device)
        with sync_context(synced):
            loss = loss_fn(model(inputs), targets)
            sync()
            t0 = clock()
            loss.backward()
            sync()
            out[synced].append(clock() - t0)
        model.zero_grad(set_to_none=True)
    return out
