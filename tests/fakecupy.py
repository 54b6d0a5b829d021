"""A NumPy stand-in for the parts of CuPy the GPU memory benchmarks use, plus fake kernels.

Every kernel launch runs the kernel's NumPy equivalent and advances a fake
clock by LAUNCH_S, so bandwidth figures are exact (bytes / LAUNCH_S) and the
host-side logic (checks, byte counts, ceilings, records) is tested without a GPU.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

LAUNCH_S = 1e-3
SCALAR_NAME = {"scale", "triad"}


class FakeClock:
    now = 0.0


class _Event:
    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.t = clock, 0.0

    def record(self, stream: Any = None) -> None:
        self.t = self.clock.now

    def synchronize(self) -> None:
        pass


class _Stream:
    ptr = 0

    def synchronize(self) -> None:
        pass


class _Array(np.ndarray):
    """ndarray with CuPy's `.data.ptr` (16-byte aligned, as CuPy's allocator gives)."""

    @property
    def data(self) -> Any:  # type: ignore[override]
        return types.SimpleNamespace(ptr=self.ctypes.data)


def make_cupy(clock: FakeClock) -> Any:
    def wrap(a: np.ndarray) -> _Array:
        out = np.empty(a.shape, dtype=a.dtype).view(_Array)
        out[...] = a
        return out

    rng = np.random.default_rng(0)
    cp = types.SimpleNamespace()
    cp.float32, cp.float64, cp.nan = np.float32, np.float64, np.nan
    cp.random = types.SimpleNamespace(standard_normal=lambda shape, dtype=np.float64: wrap(
        rng.standard_normal(shape).astype(dtype)))
    cp.empty = lambda shape, dtype=np.float32: wrap(np.empty(shape, dtype))
    cp.full = lambda shape, value, dtype=np.float32: wrap(np.full(shape, value, dtype))
    cp.isfinite = np.isfinite
    cp.asarray = lambda a: wrap(np.asarray(a))
    cp.asnumpy = lambda a: np.asarray(a).view(np.ndarray)
    cp.array_equal = np.array_equal
    cp.cuda = types.SimpleNamespace(Event=lambda: _Event(clock), get_current_stream=lambda: _Stream(),
                                    get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3)
    return cp


class FakeKernels:
    """The kernels of kernels/memory.cu in NumPy; each launch costs LAUNCH_S on the fake clock."""

    blocks = 4

    def __init__(self, clock: FakeClock, broken: str | None = None) -> None:
        self.clock, self.broken = clock, broken
        self.launched: list[str] = []

    def vectorizable(self, *arrays: Any) -> bool:
        return all(a.size % 4 == 0 for a in arrays)

    def launch(self, name: str, args: tuple[Any, ...]) -> None:
        self.launched.append(name)
        self.clock.now += LAUNCH_S
        base = name.removesuffix("_vec4")
        if base.startswith("stream_"):
            op = base.removeprefix("stream_")
            *arrays, n = args
            scalar = None
            if op in SCALAR_NAME:
                *arrays, scalar = arrays
            *inputs, out = arrays
            if op == "copy":
                out[...] = inputs[0]
            elif op == "scale":
                out[...] = scalar * inputs[0]
            elif op == "add":
                out[...] = inputs[0] + inputs[1]
            else:
                out[...] = inputs[0] + scalar * inputs[1]
            if self.broken == op:
                out[0] += 1.0
        elif base == "reduce_sum":
            x, partial, _n = args
            partial[...] = 0.0
            partial[0] = float(np.sum(x, dtype=np.float64))
        elif base == "bias_gelu":
            x, bias, out, rows, cols = args
            v = (x + bias[None, :]).astype(np.float32)
            c = np.float32(np.sqrt(2.0 / np.pi))
            out[...] = 0.5 * v * (1.0 + np.tanh(c * (v + np.float32(0.044715) * v * v * v)))
