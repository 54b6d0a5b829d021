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
from ai_ready.meaning import latencies, not_judgeable
from ai_ready.report.inputs import drawn_from_incomplete, incomplete_inputs
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
#: Flagged figures shown unfolded (the worst first); the rest of each group is folded under its summary line.
SHOWN_ROWS = 15
#: Rows a group shows before the next group gets its turn, so one bad operation does not hide the others.
SHOWN_PER_GROUP = 3


def operation(record: Record) -> str:
    """What a flag is about, to group by: the collective or memory operation, the GEMM dtype, else the case's stem."""
    params = record.params if isinstance(record.params, dict) else {}
    for key in ("op", "dtype", "phase"):
        if isinstance(params.get(key), str) and params[key]:
            return params[key]
    return str(record.case).split("-")[0]


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
                              "operation": operation(e.record),
                              "value": value, "unit": e.record.unit, "where": _where(e), "source": e.source,
                              "reference": median, "reference_label": f"median of {len(group)} peers",
                              "worse_pct": 100.0 * worse, "kind": "peer"})
    return flags


#: Training workloads are judged by their MFU in the train section and the verdicts, not as a system anomaly:
#: a model's MFU far below the dense peak is normal for small or memory-bound models.
NOT_AGAINST_CEILING = ("train",)


def _best_gemm_only(entries: list[Entry]) -> list[Entry]:
    """GEMM shapes too small to fill the GPU are launch-bound: a device's GEMM health is its best shape per dtype,
    so only that one is held against the peak."""
    best: dict[tuple[Any, ...], Entry] = {}
    rest = []
    for e in entries:
        if e.record.benchmark != "gemm":
            rest.append(e)
            continue
        key = (operation(e.record), e.record.metric, e.record.host, e.record.device, e.record.rank)
        if key not in best or float(e.record.value) > float(best[key].record.value):  # type: ignore[arg-type]
            best[key] = e
    return rest + list(best.values())


def _ceiling_flags(entries: list[Entry]) -> list[dict[str, Any]]:
    flags = []
    for e in _best_gemm_only(entries):
        if e.record.benchmark in NOT_AGAINST_CEILING or e.record.metric == "mfu":
            continue
        pct = _pct_of_ceiling(e.record)
        ceiling = _ceiling(e.record)
        if pct is None or ceiling is None or lower_is_better(e.record) or pct >= FAR_BELOW_CEILING_PCT:
            continue
        flags.append({"benchmark": e.record.benchmark, "case": e.record.case, "metric": e.record.metric,
                      "operation": operation(e.record),
                      "value": float(e.record.value), "unit": e.record.unit,  # type: ignore[arg-type]
                      "where": _where(e), "source": e.source, "reference": ceiling["value"],
                      "reference_label": f"{ceiling['label'] or 'ceiling'} ({ceiling['kind']})",
                      "worse_pct": 100.0 - pct, "pct": pct, "kind": "ceiling"})
    return flags


def _groups(flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flags per benchmark, operation, metric and kind: count, range of how far below, the worst first; groups
    ordered by their worst flag."""
    grouped: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for flag in flags:
        grouped[(flag["benchmark"], flag["operation"], flag["metric"], flag["kind"])].append(flag)
    out = []
    for (benchmark, op, metric, kind), rows in grouped.items():
        rows.sort(key=lambda f: -f["worse_pct"])
        worst = [f["worse_pct"] for f in rows]
        out.append({"benchmark": benchmark, "operation": op, "metric": metric, "kind": kind,
                    "count": len(rows), "worst_pct": max(worst), "least_pct": min(worst), "rows": rows})
    return sorted(out, key=lambda g: -g["worst_pct"])


def _shown(groups: list[dict[str, Any]]) -> None:
    """Mark the rows shown unfolded: up to SHOWN_PER_GROUP per group in turn, SHOWN_ROWS in all."""
    budget = SHOWN_ROWS
    for g in groups:
        g["shown"] = g["rows"][:min(SHOWN_PER_GROUP, budget)]
        g["folded"] = g["rows"][len(g["shown"]):]
        budget -= len(g["shown"])
    for g in groups:  # what the per-group share left unused goes to the worst groups' next rows
        take = min(budget, len(g["folded"]))
        if take:
            g["shown"], g["folded"] = g["shown"] + g["folded"][:take], g["folded"][take:]
            budget -= take


def build_anomalies(data: ReportData) -> dict[str, Any] | None:
    """Flags over every system benchmark's ok records; None when no such record was given."""
    entries = [e for e in data.entries if e.record.benchmark in SYSTEM_BENCHMARKS and e.record.status == "ok"
               and e.record.value is not None]
    if not entries:
        return None
    alphas = latencies(e.record for e in data.entries)
    unjudged = len(entries)
    entries = [e for e in entries if not_judgeable(e.record, alphas) is None]  # one rank, latency-bound sizes
    unjudged -= len(entries)
    peers = sorted(_peer_flags(entries), key=lambda f: -f["worse_pct"])
    ceilings = sorted(_ceiling_flags(entries), key=lambda f: f["pct"])
    incomplete = incomplete_inputs(data.documents, data.labels)
    for flag in peers + ceilings:  # a flag from a run that did not finish says so
        flag["input_status"] = drawn_from_incomplete((flag["source"],), incomplete)
    places = {(e.record.host, e.record.device, e.record.rank) for e in entries}
    groups = _groups(peers + ceilings)
    _shown(groups)
    return {"peers": peers, "ceilings": ceilings, "groups": groups, "figures": len(entries), "places": len(places),
            "unjudged": unjudged, "peer_margin_pct": 100.0 * PEER_MARGIN, "min_peers": MIN_PEERS,
            "far_below_pct": FAR_BELOW_CEILING_PCT, "shown_rows": SHOWN_ROWS}
