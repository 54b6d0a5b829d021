"""Weak scaling: the same training at 1, 2, 4, ... ranks (batch per rank fixed), and its efficiency.

Efficiency at k ranks = total throughput at k ranks / (k × throughput at 1 rank): 100% means every
added rank adds a full rank's worth of tokens (or samples) per second; the loss is communication,
stragglers and contention for the node's shared resources.
"""

from __future__ import annotations

from typing import Any

from ai_ready.records import Record

BENCHMARK = "train"
#: Below this efficiency the report and the summary flag the rank count.
EFFICIENCY_FLAG_PCT = 80.0


def total_throughput(records: list[Record], ranks: int) -> Record | None:
    """The run's total items/s: rank 0's throughput for one rank, the aggregate record for several."""
    for r in records:
        if r.metric != "throughput" or r.status != "ok":
            continue
        if (ranks == 1 and r.rank == 0 and not r.params.get("aggregate")) or (ranks > 1 and r.params.get("aggregate")):
            return r
    return None


def efficiency_records(runs: dict[int, tuple[list[Record], str | None]], base: dict[str, Any],
                       case: str) -> list[Record]:
    """One scaling record per rank count; `runs[k]` = (records of the run, why it failed or None)."""
    one = total_throughput(runs.get(1, ([], None))[0], 1)
    out = []
    for ranks in sorted(runs):
        records, failure = runs[ranks]
        total = total_throughput(records, ranks)
        params = dict(base, ranks=ranks)
        common = dict(benchmark=BENCHMARK, case=case, metric="scaling_efficiency", unit="%", rank=0)
        if failure or total is None or one is None:
            reason = failure or ("the 1-rank run gave no throughput" if one is None else
                                 f"the {ranks}-rank run gave no throughput")
            out.append(Record(params=params, status="failed", reason=reason, **common))
            continue
        params.update(throughput=total.value, throughput_1=one.value, item=total.params.get("item"))
        out.append(Record(params=params, value=100.0 * total.value / (ranks * one.value), **common))
    return out
