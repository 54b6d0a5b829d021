"""The STREAM operations: what each reads and writes, its reference result and its tolerance.

Bytes are counted as in STREAM: each input read once, each output written once
(no write-allocate traffic): copy and scale move 2 words per element, add and
triad 3. The same table serves the CUDA kernels and the CPU counterparts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: The scalar of scale and triad (STREAM's q = 3).
SCALAR = 3.0
#: Largest allowed |got - ref| / (sum of |terms|): float32 rounds each operation once (2^-24 ≈ 6e-8).
STREAM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class StreamOp:
    name: str
    inputs: int
    #: Reference in float64 from the float32 inputs, and the magnitude the error is measured against.
    reference: Callable[[list[np.ndarray]], np.ndarray]
    magnitude: Callable[[list[np.ndarray]], np.ndarray]

    @property
    def words_per_element(self) -> int:
        return self.inputs + 1

    def bytes_moved(self, elements: int, item_size: int = 4) -> int:
        return self.words_per_element * elements * item_size


STREAM_OPS: dict[str, StreamOp] = {
    op.name: op
    for op in (
        StreamOp("copy", 1, lambda x: x[0], lambda x: np.abs(x[0])),
        StreamOp("scale", 1, lambda x: SCALAR * x[0], lambda x: np.abs(SCALAR * x[0])),
        StreamOp("add", 2, lambda x: x[0] + x[1], lambda x: np.abs(x[0]) + np.abs(x[1])),
        StreamOp("triad", 2, lambda x: x[0] + SCALAR * x[1], lambda x: np.abs(x[0]) + np.abs(SCALAR * x[1])),
    )
}
STREAM_NAMES = tuple(STREAM_OPS)


def max_rel_error(got: np.ndarray, inputs: list[np.ndarray], op: StreamOp) -> float:
    """Largest error relative to the size of the terms (robust where the result is near zero); NaN -> inf."""
    x = [a.astype(np.float64) for a in inputs]
    ref = op.reference(x)
    scale = np.maximum(op.magnitude(x), np.finfo(np.float64).tiny)
    err = np.abs(got.astype(np.float64) - ref) / scale
    return float(np.max(err)) if np.all(np.isfinite(err)) else float("inf")


#: Elements compared with NumPy per check; larger arrays are checked on a random sample of
#: this many indices (every element is still checked for being written: no NaN left).
CHECK_SAMPLE = 1 << 20


def sample_indices(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= CHECK_SAMPLE:
        return np.arange(n)
    return np.sort(rng.choice(n, size=CHECK_SAMPLE, replace=False))
