"""Anomalies: measured figures far below their peers or their ceiling, across every benchmark.

The per-benchmark sections show each figure against its ceiling; this one looks across them for what a
consultant must not miss: a device, rank or node that measured clearly worse than the others doing the
same case (a straggler or a bad part), and a figure far below its catalog or measured ceiling. Both
thresholds are named constants; a flag is a prompt to look, not a verdict.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

from ai_ready.records import Record
from ai_ready.report.sections.common import Entry, ReportData, _ceiling, _pct_of_ceiling

#: Benchmarks whose records measure the machine (a profile measures the user's job, not the system).
SYSTEM_BENCHMARKS = ("gemm", "collectives", "memory", "kernels", "io", "train")
#: A figure this much worse than the median of its peers (same case, other devices/ranks/nodes) is flagged.
PEER_MARGIN = 0.15
#: Peers needed before a median means anything: with two, neither is "the odd one".
MIN_PEERS = 3
#: A figure below this percentage of its ceiling is flagged (the ceiling is the catalog peak or a measured one).
FAR_BELOW_CEILING_PCT = 50.0
#: Units where smaller is better; every other figure (bandwidth, throughput, MFU) is better when larger.
LOWER_IS_BETTER_UNITS = frozenset({"s", "ms", "us", "µs", "ns"})
#: Where the record came from: excluded from the peer key, so the same case on other devices are peers.
PLACE_FIELDS = ("rank", "host", "device")


def lower_is_better(record: Record) -> bool:
    """Times are better small; rates, bandwidths and efficiencies better large."""
    return record.unit in LOWER_IS_BETTER_UNITS


def _peer_key(record: Record) -> tuple[str, str, str, str]:
    params = json.dumps({k: v for k, v in (record.params or {}).items() if k not in PLACE_FIELDS},
                        sort_keys=True, default=str)
    return record.benchmark, record.case, record.metric, params


def _where(entry: Entry) -> str:
    r = entry.record
    parts = [f"rank {r.rank}"] + [p for p in (r.host, r.device) if p]
    return " · ".join(parts)


def _peer_flags(entries: list[Entry]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        groups[_peer_key(e.record)].append(e)
    flags = []
    for group in groups.values():
        if len(group) < MIN_PEERS:
            continue
        median = statistics.median(float(e.record.value) for e in group)  # type: ignore[arg-type]
        if median <= 0:
            continue
        for e in group:
            value = float(e.record.value)  # type: ignore[arg-type]
            worse = (value - median) / median if lower_is_better(e.record) else (median - value) / median
            if worse > PEER_MARGIN:
                flags.append({"benchmark": e.record.benchmark, "case": e.record.case, "metric": e.record.metric,
                              "value": value, "unit": e.record.unit, "where": _where(e), "source": e.source,
                              "reference": median, "reference_label": f"median of {len(group)} peers",
                              "worse_pct": 100.0 * worse, "kind": "peer"})
    return flags


def _ceiling_flags(entries: list[Entry]) -> list[dict[str, Any]]:
    flags = []
    for e in entries:
        pct = _pct_of_ceiling(e.record)
        ceiling = _ceiling(e.record)
        if pct is None or ceiling is None or lower_is_better(e.record) or pct >= FAR_BELOW_CEILING_PCT:
            continue
        flags.append({"benchmark": e.record.benchmark, "case": e.record.case, "metric": e.record.metric,
                      "value": float(e.record.value), "unit": e.record.unit,  # type: ignore[arg-type]
                      "where": _where(e), "source": e.source, "reference": ceiling["value"],
                      "reference_label": f"{ceiling['label'] or 'ceiling'} ({ceiling['kind']})",
                      "worse_pct": 100.0 - pct, "pct": pct, "kind": "ceiling"})
    return flags


def build_anomalies(data: ReportData) -> dict[str, Any] | None:
    """Flags over every system benchmark's ok records; None when no such record was given."""
    entries = [e for e in data.entries if e.record.benchmark in SYSTEM_BENCHMARKS and e.record.status == "ok"
               and e.record.value is not None]
    if not entries:
        return None
    peers = sorted(_peer_flags(entries), key=lambda f: -f["worse_pct"])
    ceilings = sorted(_ceiling_flags(entries), key=lambda f: f["pct"])
    places = {(e.record.host, e.record.device, e.record.rank) for e in entries}
    return {"peers": peers, "ceilings": ceilings, "figures": len(entries), "places": len(places),
            "peer_margin_pct": 100.0 * PEER_MARGIN, "min_peers": MIN_PEERS,
            "far_below_pct": FAR_BELOW_CEILING_PCT}
