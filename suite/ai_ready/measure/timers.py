"""Timers: how a block of calls is turned into elapsed seconds.

Device work is asynchronous, so a host timer synchronises the device before
each clock read, and the CUDA timer records events around each block and
synchronises once at the end (no host round trip between samples). The host
clock is injectable so the harness is unit-tested without hardware.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

Clock = Callable[[], float]
Fn = Callable[[], Any]


class Timer(Protocol):
    """Runs `fn` in `count` blocks of `inner` calls and returns each block's seconds."""

    name: str

    def blocks(self, fn: Fn, inner: int, count: int) -> list[float]: ...

    def sync(self) -> None: ...


class HostTimer:
    """perf_counter (or an injected clock) around each block, syncing the device first."""

    name = "host"

    def __init__(self, clock: Clock = time.perf_counter, sync: Callable[[], None] | None = None) -> None:
        self._clock = clock
        self._sync = sync or (lambda: None)

    def sync(self) -> None:
        self._sync()

    def blocks(self, fn: Fn, inner: int, count: int) -> list[float]:
        out = []
        clock, sync = self._clock, self._sync
        for _ in range(count):
            sync()
            start = clock()
            for _ in range(inner):
                fn()
            sync()
            out.append(clock() - start)
        return out


class CudaEventTimer:
    """CUDA events around each block; one synchronise after the last block."""

    name = "cuda-event"

    def __init__(self, torch_module: Any | None = None) -> None:
        if torch_module is None:
            import torch as torch_module
        self._torch = torch_module

    def sync(self) -> None:
        self._torch.cuda.synchronize()

    def blocks(self, fn: Fn, inner: int, count: int) -> list[float]:
        cuda = self._torch.cuda
        events = [(cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)) for _ in range(count)]
        cuda.synchronize()
        for start, stop in events:
            start.record()
            for _ in range(inner):
                fn()
            stop.record()
        cuda.synchronize()
        return [start.elapsed_time(stop) / 1e3 for start, stop in events]


def timer_for(device: str) -> Timer:
    """The right timer for a torch device string ("cpu", "cuda", "cuda:1")."""
    if device.startswith("cuda"):
        return CudaEventTimer()
    return HostTimer()


class CupyEventTimer:
    """CUDA events through CuPy around each block on the current stream; one synchronise at the end."""

    name = "cuda-event"

    def __init__(self, cupy_module: Any | None = None) -> None:
        if cupy_module is None:
            import cupy as cupy_module
        self._cp = cupy_module

    def sync(self) -> None:
        self._cp.cuda.get_current_stream().synchronize()

    def blocks(self, fn: Fn, inner: int, count: int) -> list[float]:
        cuda = self._cp.cuda
        events = [(cuda.Event(), cuda.Event()) for _ in range(count)]
        self.sync()
        for start, stop in events:
            start.record()
            for _ in range(inner):
                fn()
            stop.record()
        stop.synchronize()
        return [cuda.get_elapsed_time(start, stop) / 1e3 for start, stop in events]
