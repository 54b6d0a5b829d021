"""Which measured figures may be held against a ceiling or judged at all.

A figure can be correct and still say nothing about the machine:

- a collective's bus bandwidth on **one rank** is 0 by definition (nccl-tests' bus factor (n−1)/n), so it
  cannot show a slow link;
- a message too small to **approach the link rate** measures latency, not bandwidth: with the α-β model
  t = α + S/B, a message reaches half of B only when S ≥ α·B. Below that size a bandwidth far under the
  link's rate is expected, not an anomaly.

:func:`not_judgeable` says why a record must not be flagged or graded (None when it may be). The α comes
from the same operation's fit in the same run when there is one, else :data:`DEFAULT_LATENCY_S`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ai_ready.records import Record

COLLECTIVES = "collectives"
BANDWIDTH_METRICS = ("busbw", "algbw")
#: Latency of one collective where the run has no α-β fit for the operation: NCCL within a node is 5-30 µs
#: for small messages (nccl-tests on DGX A100/H100; the H200 run in tests/data measured 29-31 µs at one rank).
DEFAULT_LATENCY_S = 10e-6
SINGLE_RANK = ("one rank: a collective moves nothing between ranks, so its bus bandwidth is 0 by definition "
               "(nccl-tests); run `ai-ready bench collectives` on 2 or more GPUs or nodes")
RUN_ON_TWO = "run `ai-ready bench collectives` on 2 or more GPUs or nodes"


def _params(record: Record) -> Mapping[str, Any]:
    return record.params if isinstance(record.params, Mapping) else {}


def world_size(record: Record) -> int | None:
    value = _params(record).get("world_size")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def latencies(records: Iterable[Record]) -> dict[tuple[str, str], float]:
    """(operation, placement) -> α in seconds, from the collectives' α-β fit records."""
    found = {}
    for r in records:
        if r.benchmark != COLLECTIVES or r.metric != "alpha" or r.status != "ok" or r.value is None:
            continue
        p = _params(r)
        if r.unit == "us" and r.value > 0:
            found[(str(p.get("op")), str(p.get("placement")))] = float(r.value) * 1e-6
    return found


def not_judgeable(record: Record, alphas: Mapping[tuple[str, str], float] | None = None) -> str | None:
    """Why ``record`` must not be graded or flagged against its ceiling; None when it may be."""
    if record.benchmark != COLLECTIVES or record.metric not in BANDWIDTH_METRICS:
        return None
    ranks = world_size(record)
    if ranks is not None and ranks < 2:
        return SINGLE_RANK
    size = _params(record).get("bytes")
    ceiling = record.ceiling if isinstance(record.ceiling, Mapping) else None
    if not isinstance(size, (int, float)) or ceiling is None or ceiling.get("unit") != "GB/s":
        return None
    p = _params(record)
    alpha = (alphas or {}).get((str(p.get("op")), str(p.get("placement"))), DEFAULT_LATENCY_S)
    smallest = alpha * float(ceiling["value"]) * 1e9
    if size < smallest:
        return (f"{int(size)} bytes is latency-bound: a message reaches half of the {float(ceiling['value']):g} GB/s "
                f"link only from α·B = {smallest / 1e6:.3g} MB (α {alpha * 1e6:.3g} µs)")
    return None
