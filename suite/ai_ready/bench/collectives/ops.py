"""The collectives: sizes, bus-bandwidth factors, inputs and expected outputs, as nccl-tests defines them.

One table, one row per operation (after nccl-tests' src/*.cu): how the size
S relates to each rank's element count, the factor that turns algorithm
bandwidth into bus bandwidth, and the rank-specific input pattern with the
output every rank must hold afterwards.

Definitions (nccl-tests doc/PERFORMANCE.md):

* algbw = S / t, with S the operation's size in bytes:
  all_reduce, broadcast, sendrecv: the buffer (count × type size);
  all_gather: the gathered output; reduce_scatter: the full input;
  all_to_all: each rank's whole send buffer.
* busbw = algbw × factor: all_reduce 2(n−1)/n; all_gather, reduce_scatter,
  all_to_all (n−1)/n; broadcast and sendrecv 1.

Inputs are small integers, ((rank + index) mod 5) + 1, so sums stay exact in
every floating-point type for the world sizes this runs on, and any wrong,
missing or misplaced element is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: Input values cycle through 1..PATTERN_MOD so reductions stay exactly representable.
PATTERN_MOD = 5
PLACEMENTS = ("out-of-place", "in-place")
BROADCAST_ROOT = 0


def pattern(rank: int, start: int, count: int) -> np.ndarray:
    """Rank `rank`'s input values for global element indices start..start+count-1 (float64)."""
    index = np.arange(start, start + count, dtype=np.int64)
    return ((rank + index) % PATTERN_MOD + 1).astype(np.float64)


def _sum_over_ranks(n: int, start: int, count: int) -> np.ndarray:
    total = np.zeros(count, dtype=np.float64)
    for r in range(n):
        total += pattern(r, start, count)
    return total


@dataclass(frozen=True)
class Collective:
    """One operation: its size rules, bus factor and expected result."""

    name: str
    #: busbw / algbw for n ranks.
    bus_factor: Callable[[int], float]
    #: True when the size S is split over the ranks (each rank sends or receives S/n).
    split: bool
    #: Elements in each rank's input and output buffer for `count` = S / type size.
    input_elems: Callable[[int, int], int]
    output_elems: Callable[[int, int], int]
    #: The expected output of rank `rank` of `n`, for `count` = S / type size.
    expected: Callable[[int, int, int], np.ndarray]
    #: The input of rank `rank`: global indices it starts at and how many it holds.
    input_span: Callable[[int, int, int], tuple[int, int]]
    reduces: bool = False

    def count_for(self, size_bytes: int, n: int, type_size: int) -> int:
        """nccl-tests' element count for size S, rounded down so every rank gets whole elements."""
        count = size_bytes // type_size
        return count - count % n if self.split else count

    def bytes_for(self, count: int, type_size: int) -> int:
        return count * type_size


def _all_gather_expected(rank: int, n: int, count: int) -> np.ndarray:
    per = count // n
    return np.concatenate([pattern(r, 0, per) for r in range(n)])


def _all_to_all_expected(rank: int, n: int, count: int) -> np.ndarray:
    per = count // n
    return np.concatenate([pattern(src, rank * per, per) for src in range(n)])


COLLECTIVES: dict[str, Collective] = {
    c.name: c
    for c in (
        Collective(
            "all_reduce", bus_factor=lambda n: 2 * (n - 1) / n, split=False,
            input_elems=lambda c, n: c, output_elems=lambda c, n: c,
            expected=lambda rank, n, c: _sum_over_ranks(n, 0, c),
            input_span=lambda rank, n, c: (0, c), reduces=True,
        ),
        Collective(
            "all_gather", bus_factor=lambda n: (n - 1) / n, split=True,
            input_elems=lambda c, n: c // n, output_elems=lambda c, n: c,
            expected=_all_gather_expected,
            input_span=lambda rank, n, c: (0, c // n),
        ),
        Collective(
            "reduce_scatter", bus_factor=lambda n: (n - 1) / n, split=True,
            input_elems=lambda c, n: c, output_elems=lambda c, n: c // n,
            expected=lambda rank, n, c: _sum_over_ranks(n, rank * (c // n), c // n),
            input_span=lambda rank, n, c: (0, c), reduces=True,
        ),
        Collective(
            "all_to_all", bus_factor=lambda n: (n - 1) / n, split=True,
            input_elems=lambda c, n: c, output_elems=lambda c, n: c,
            expected=_all_to_all_expected,
            input_span=lambda rank, n, c: (0, c),
        ),
        Collective(
            "broadcast", bus_factor=lambda n: 1.0, split=False,
            input_elems=lambda c, n: c, output_elems=lambda c, n: c,
            expected=lambda rank, n, c: pattern(BROADCAST_ROOT, 0, c),
            input_span=lambda rank, n, c: (0, c),
        ),
        Collective(
            "sendrecv", bus_factor=lambda n: 1.0, split=False,
            input_elems=lambda c, n: c, output_elems=lambda c, n: c,
            expected=lambda rank, n, c: pattern((rank - 1) % n, 0, c),
            input_span=lambda rank, n, c: (0, c),
        ),
    )
}

OP_NAMES = tuple(COLLECTIVES)


def bandwidths(op: Collective, size_bytes: int, seconds: float, n: int) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (1e9 bytes/s) for one operation of `size_bytes` taking `seconds`."""
    algbw = size_bytes / seconds / 1e9
    return algbw, algbw * op.bus_factor(n)


def count_wrong(got: np.ndarray, expected: np.ndarray, tolerance: float) -> int:
    """Elements that differ from the expected values by more than `tolerance` (NaN counts as wrong)."""
    if got.shape != expected.shape:
        return int(max(got.size, expected.size))
    diff = np.abs(got.astype(np.float64) - expected)
    return int(np.count_nonzero(~(diff <= tolerance)))


def tolerance_for(expected: np.ndarray, eps: float, n: int) -> float:
    """Reductions may round once per rank; the integer patterns keep this at 0 in practice."""
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(expected))) * eps * max(n - 1, 0)


def parse_size(text: str) -> int:
    """`8`, `1K`, `256M`, `1G` (binary multiples, as nccl-tests -b/-e) -> bytes; ValueError if malformed."""
    units = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
             "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}
    value = text.strip().upper()
    digits = value.rstrip("KMGIB")
    unit = value[len(digits):]
    if not digits.isdigit() or unit not in units:
        raise ValueError(text)
    return int(digits) * units[unit]


def size_sweep(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    """min, min·f, min·f², ... up to max (inclusive), as nccl-tests' -b/-e/-f."""
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= factor
    return sizes


def human_bytes(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
