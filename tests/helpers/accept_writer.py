"""Synthetic acceptance runs for the history tests, and a writer process for the concurrency and kill tests.

    python accept_writer.py URL TAG RUNS RECORDS

writes RUNS runs of RECORDS records each (every run tagged TAG in its meta) to the history at URL,
through ai_ready.accept.history.store_run, as a nightly run would. With AI_READY_TEST_PAUSE_MID_WRITE
set, the writer pauses inside its first run's transaction (see ai_ready.accept.history).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Sequence

from ai_ready.accept.detect import Night
from ai_ready.accept.history import RunRow, open_history, store_run

START = datetime(2025, 1, 1, 2, 0, tzinfo=timezone.utc)


def record(index: int, host: str = "node01", value: float = 100.0) -> dict:
    return {"benchmark": "synthetic", "case": f"case-{index}", "params": {"index": index}, "metric": "throughput",
            "unit": "GB/s", "value": value, "status": "ok", "reason": None, "samples": [value] * 5, "rank": 0,
            "host": host, "device": "cpu", "stats": None, "warnings": []}


def verdict(metric: str, node: str, value: float, samples: Sequence[float] = (), unit: str = "GB/s",
            outcome: str = "pass", regression: bool = False, benchmark: str = "synthetic") -> dict:
    return {"metric": metric, "node": node, "benchmark": benchmark, "outcome": outcome, "regression": regression,
            "value": value, "unit": unit, "samples": list(samples), "reference": None, "findings": []}


def synthetic_run(tag: str, records: int, night: int = 0, system: str = "local", suite: str = "synthetic",
                  verdicts: Sequence[dict] = (), nodes: Sequence[str] = ("node01",)) -> RunRow:
    started = START + timedelta(days=night)
    return RunRow(system=system, partition="", gpu_model="", suite=suite, started=started,
                  finished=started + timedelta(minutes=5), nodes=list(nodes), versions={"ai_ready": "test"},
                  outcome="pass", meta={"tag": tag}, records=[record(i) for i in range(records)],
                  verdicts=list(verdicts))


def history_runs(nights: Sequence[Night], metric: str, node: str = "node01", unit: str = "GB/s",
                 suite: str = "synthetic", system: str = "local", benchmark: str = "gemm") -> list[RunRow]:
    """One stored run per synthetic night: its verdict row carries the night's figure and samples."""
    return [synthetic_run(f"night-{i}", 1, night=i, system=system, suite=suite, nodes=[node],
                          verdicts=[verdict(metric, node, n.value, n.samples, unit, regression=n.flagged,
                                            benchmark=benchmark)])
            for i, n in enumerate(nights)]


def main(argv: Sequence[str]) -> int:
    url, tag, runs, records = argv[0], argv[1], int(argv[2]), int(argv[3])
    engine = open_history(url)
    for i in range(runs):
        store_run(engine, synthetic_run(f"{tag}-{i}", records, night=i))
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
