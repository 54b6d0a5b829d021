"""The collectives sweep: for each operation, placement and size, check, then time, on every rank.

Per step (one operation at one size), every rank: allocates and fills its
buffers, runs the operation once and counts wrong elements (nccl-tests -c),
agrees with the others on whether to time, and runs the harness with rank 0's
iteration counts. Rank 0 gathers each rank's samples, reports the slowest
rank's (as nccl-tests -a 3), names a straggler when ranks
differ by more than 10%, writes the records, and finally fits t = α + S/β
per operation and placement. A step watchdog ends the job if a rank hangs.
"""

from __future__ import annotations

import socket
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from ai_ready.bench.collectives.fit import FitError, fit_alpha_beta
from ai_ready.bench.collectives.ops import (
    BROADCAST_ROOT, COLLECTIVES, PLACEMENTS, Collective, bandwidths, count_wrong, human_bytes, tolerance_for,
)
from ai_ready.bench.runner import ResultSink
from ai_ready.measure.comm import Comm, agree
from ai_ready.measure.harness import Budget, measure
from ai_ready.measure.timers import Timer
from ai_ready.measure.watchdog import StepWatchdog
from ai_ready.records import Record
from ai_ready.stop import reraise_if_stopping

BENCHMARK = "collectives"
#: Ranks whose median times differ by more than this ratio name a straggler.
STRAGGLER_RATIO = 1.10
US_PER_S = 1e6


#: Operations that move data from one rank to another and cannot run alone.
NEEDS_A_PEER = frozenset({"sendrecv"})
ONE_RANK_FIT = ("one rank: nothing moves between ranks, so there is no bandwidth to fit; the time at the smallest "
                "size is the call's latency")


@dataclass(frozen=True)
class SweepConfig:
    ops: tuple[str, ...]
    sizes: tuple[int, ...]
    placements: tuple[str, ...] = PLACEMENTS
    check: bool = True
    timeout_s: float = 300.0


@dataclass(frozen=True)
class Point:
    """One step: an operation, a placement and nccl-tests' element count."""

    op: Collective
    placement: str
    count: int
    size_bytes: int

    @property
    def case(self) -> str:
        return f"{self.op.name}-{self.placement}-{self.size_bytes}B"

    @property
    def label(self) -> str:
        return f"{self.op.name} ({self.placement}) at {human_bytes(self.size_bytes)}"


class Sweep:
    """Runs a SweepConfig with one backend; rank 0 owns the result sink."""

    def __init__(self, backend: Any, cfg: SweepConfig, comm: Comm, budget: Budget, timer: Timer,
                 sink: ResultSink | None, ceiling: dict[str, Any] | None = None,
                 progress: Any | None = None, watchdog: StepWatchdog | None = None) -> None:
        self.backend, self.cfg, self.comm = backend, cfg, comm
        self.budget, self.timer, self.sink = budget, timer, sink
        self.ceiling, self.progress = ceiling, progress
        self.host = socket.gethostname()
        self.watchdog = watchdog or StepWatchdog(comm, cfg.timeout_s)
        self.failed = 0

    # --- identity of records -------------------------------------------------------------
    def params(self, op: Collective, placement: str, **extra: Any) -> dict[str, Any]:
        return {"op": op.name, "backend": self.backend.name, "buffers": self.backend.buffers,
                "placement": placement, "dtype": self.backend.dtype_name, "world_size": self.comm.size,
                "redop": "sum" if op.reduces else "none",
                "root": BROADCAST_ROOT if op.name == "broadcast" else None, **extra}

    def _record(self, **kwargs: Any) -> Record:
        kwargs.setdefault("benchmark", BENCHMARK)
        kwargs.setdefault("device", f"{self.backend.name}/{self.backend.buffers}")
        kwargs.setdefault("host", self.host)
        return Record(**kwargs)

    def _add(self, records: Sequence[Record]) -> None:
        if self.sink is not None:
            self.sink.add(records)

    # --- the sweep ---------------------------------------------------------------------
    def points(self, op: Collective, placement: str) -> list[Point]:
        n, type_size = self.comm.size, self.backend.type_size
        out = []
        for size in self.cfg.sizes:
            count = op.count_for(size, n, type_size)
            if count > 0:
                out.append(Point(op, placement, count, op.bytes_for(count, type_size)))
        return out

    def _why_not(self, op: Collective, placement: str) -> str | None:
        """Why (op, placement) is not measured here: the backend lacks it, or it needs a peer and there is none."""
        if op.name in NEEDS_A_PEER and self.comm.size < 2:
            return (f"{op.name} needs a peer and this run has one rank; run `ai-ready bench collectives` on 2 or more "
                    "ranks (GPUs or nodes)")
        return self.backend.unsupported(op, placement)

    def total_steps(self) -> int:
        return sum(len(self.points(COLLECTIVES[o], p)) for o in self.cfg.ops for p in self.cfg.placements
                   if self._why_not(COLLECTIVES[o], p) is None)

    def run(self) -> None:
        for name in self.cfg.ops:
            op = COLLECTIVES[name]
            for placement in self.cfg.placements:
                reason = self._why_not(op, placement)
                if reason is not None:
                    if self.comm.rank == 0:
                        self._add([self._record(case=f"{op.name}-{placement}", params=self.params(op, placement),
                                                metric="time", unit="us", status="skipped", reason=reason)])
                    continue
                self._run_placement(op, placement)

    def _run_placement(self, op: Collective, placement: str) -> None:
        fitted: list[tuple[int, float]] = []
        for point in self.points(op, placement):
            if self.progress is not None:
                self.progress.start(point.case)
            records = self.measure_point(point)
            if records is None:
                continue
            self._add(records)
            if self.progress is not None:
                self.progress.done(point.case, [r for r in records if r.metric == "busbw"] or records[:1])
            time_record = next(r for r in records if r.metric == "time")
            if time_record.status == "ok":
                fitted.append((point.size_bytes, float(time_record.value)))
        if self.comm.rank == 0:
            self._add(self._fit_records(op, placement, fitted))

    def measure_point(self, point: Point) -> list[Record] | None:
        """One guarded step on every rank; rank 0 gets the point's records, the others None."""
        self.watchdog.begin(point.label)
        gathered = self.comm.gather(self._step(point))
        self.watchdog.end()
        return self._point_records(point, gathered) if gathered is not None else None

    def point(self, op_name: str, placement: str, size_bytes: int) -> Point:
        """The step for nccl-tests size `size_bytes` (rounded down to whole elements per rank)."""
        op = COLLECTIVES[op_name]
        count = op.count_for(size_bytes, self.comm.size, self.backend.type_size)
        return Point(op, placement, count, op.bytes_for(count, self.backend.type_size))

    def _step(self, point: Point) -> dict[str, Any]:
        """This rank's part of one step: check, agree, measure."""
        rank, n = self.comm.rank, self.comm.size
        result: dict[str, Any] = {"rank": rank, "host": self.host, "wrong": 0, "error": None, "timed": False}
        prepared = None
        try:
            prepared = self.backend.prepare(point.op, point.placement, point.count)
            if self.cfg.check:
                expected = point.op.expected(rank, n, point.count)
                prepared.poison()
                prepared.run()
                result["wrong"] = count_wrong(prepared.output(), expected,
                                              tolerance_for(expected, self.backend.eps, n))
        except Exception as exc:  # out of memory, backend refusal: this step fails, the sweep goes on
            reraise_if_stopping(exc)  # a signal is never a failed step
            result["error"] = f"{type(exc).__name__}: {exc}"
        ok, _bad = agree(self.comm, result["error"] is None and result["wrong"] == 0)
        if not ok:
            return result
        assert prepared is not None
        m = measure(prepared.run, self.budget, self.timer, self.comm, label=point.case)
        result.update(timed=True, samples_s=m.samples_s, timing=m.timing_dict())
        return result

    # --- records (rank 0) ---------------------------------------------------------------
    def _point_records(self, point: Point, per_rank: list[dict[str, Any]]) -> list[Record]:
        # nccl-tests prints the count each rank passes to the call (per rank for split operations)
        per_rank_count = point.count // self.comm.size if point.op.split else point.count
        params = self.params(point.op, point.placement, bytes=point.size_bytes, count=per_rank_count)
        wrong = sum(int(r["wrong"]) for r in per_rank)
        errors = [f"rank {r['rank']}: {r['error']}" for r in per_rank if r["error"]]
        check = {"passed": wrong == 0 and not errors, "metric": "wrong_elements", "value": wrong,
                 "tolerance": 0, "reference": "rank-specific input pattern"} if self.cfg.check else None
        common = {"case": point.case, "params": params}
        if not all(r["timed"] for r in per_rank):
            self.failed += 1
            reason = "; ".join(errors) if errors else f"{wrong} wrong element(s) across ranks: not timed"
            records = [self._record(metric=m, unit=u, status="failed", reason=reason, check=check, **common)
                       for m, u in (("time", "us"), ("algbw", "GB/s"), ("busbw", "GB/s"))]
            if self.cfg.check and not errors:
                records.append(self._record(metric="wrong", unit="elements", value=float(wrong), status="failed",
                                            reason=f"{wrong} element(s) differ from the expected values",
                                            check=check, **common))
            return records

        medians = {r["rank"]: statistics.median(r["samples_s"]) * US_PER_S for r in per_rank}
        hosts = {r["rank"]: r["host"] for r in per_rank}
        slow = max(medians, key=medians.__getitem__)
        fast = min(medians, key=medians.__getitem__)
        # The slowest rank's own samples (nccl-tests -a 3: the maximum over ranks of each rank's time).
        # A per-sample maximum across ranks would add the ranks' jitter on top and bias the time upwards.
        slowest_samples = [t * US_PER_S for t in next(r["samples_s"] for r in per_rank if r["rank"] == slow)]
        timing = dict(per_rank[0]["timing"])
        timing.pop("samples_s", None)
        timing.update(aggregate="samples of the slowest rank (largest median)",
                      per_rank=[{"rank": r, "host": hosts[r], "median_us": medians[r]} for r in sorted(medians)])
        warnings = []
        ratio = medians[slow] / medians[fast] if medians[fast] > 0 else 1.0
        timing["straggler"] = None
        if ratio > STRAGGLER_RATIO:
            timing["straggler"] = {"rank": slow, "host": hosts[slow], "ratio": ratio}
            warnings.append(f"{point.case}: slowest rank {slow} on host {hosts[slow]} is {ratio - 1:.0%} slower "
                            f"than the fastest (rank {fast} on {hosts[fast]})")
        identity = dict(rank=slow, host=hosts[slow], timing=timing, check=check, **common)
        times_s = [t / US_PER_S for t in slowest_samples]
        algbw = [bandwidths(point.op, point.size_bytes, t, self.comm.size)[0] for t in times_s]
        busbw = [bandwidths(point.op, point.size_bytes, t, self.comm.size)[1] for t in times_s]
        records = [
            Record.from_samples(slowest_samples, benchmark=BENCHMARK, metric="time", unit="us",
                                device=f"{self.backend.name}/{self.backend.buffers}", warnings=list(warnings),
                                **identity),
            Record.from_samples(algbw, warn_noise=False, benchmark=BENCHMARK, metric="algbw", unit="GB/s",
                                device=f"{self.backend.name}/{self.backend.buffers}", **identity),
            Record.from_samples(busbw, warn_noise=False, benchmark=BENCHMARK, metric="busbw", unit="GB/s",
                                device=f"{self.backend.name}/{self.backend.buffers}", **identity),
        ]
        if self.ceiling is not None:
            from ai_ready.bench.ceiling import apply_ceiling

            apply_ceiling(records[2], self.ceiling)
        if self.cfg.check:
            records.append(Record.from_samples([float(wrong)], warn_noise=False, benchmark=BENCHMARK, metric="wrong", unit="elements",
                                               device=f"{self.backend.name}/{self.backend.buffers}", **identity))
        return records

    def _fit_records(self, op: Collective, placement: str, points: list[tuple[int, float]]) -> list[Record]:
        if not points:
            return []
        case = f"fit-{op.name}-{placement}"
        base = self.params(op, placement, model="t = alpha + S/beta")
        if self.comm.size < 2:  # nothing moves between ranks: the time is the call's overhead at every size
            return [self._record(case=case, params=dict(base, points=len(points)), metric=m, unit=u, status="skipped",
                                 reason=ONE_RANK_FIT) for m, u in (("alpha", "us"), ("beta", "GB/s"))]
        try:
            fit = fit_alpha_beta([p[0] for p in points], [p[1] for p in points])
        except FitError as exc:
            return [self._record(case=case, params=dict(base, points=len(points)), metric=m, unit=u,
                                 status="failed", reason=str(exc)) for m, u in (("alpha", "us"), ("beta", "GB/s"))]
        params = dict(base, min_bytes=fit.min_bytes, max_bytes=fit.max_bytes, points=fit.points, r2=fit.r2,
                      max_rel_error=fit.max_rel_error)
        return [self._record(case=case, params=params, metric="alpha", unit="us", value=fit.alpha_us),
                self._record(case=case, params=dict(params), metric="beta", unit="GB/s", value=fit.beta_gbs)]


def summary_rows(records: Sequence[Record], op: str) -> tuple[list[tuple[Any, ...]], float | None]:
    """nccl-tests-style rows for one op and its average busbw over every ok point, both placements."""
    by_size: dict[int, dict[str, dict[str, Record]]] = {}
    dtype = ""
    for r in records:
        if r.benchmark != BENCHMARK or r.params.get("op") != op or "bytes" not in r.params:
            continue
        dtype = r.params.get("dtype", dtype)
        by_size.setdefault(r.params["bytes"], {}).setdefault(r.params["placement"], {})[r.metric] = r
    rows, busbws = [], []
    for size in sorted(by_size):
        first = next(iter(next(iter(by_size[size].values())).values()))
        root = first.params.get("root")
        row: list[Any] = [size, first.params.get("count", ""), dtype, first.params.get("redop", ""),
                          -1 if root is None else root]
        for placement in PLACEMENTS:
            metrics = by_size[size].get(placement, {})
            time = metrics.get("time")
            if time is None:
                row += ["n/a", "", "", ""]
            elif time.status != "ok":
                row += [time.status, "", "", str(int(metrics["wrong"].value)) if "wrong" in metrics else "?"]
            else:
                bus = metrics["busbw"].value
                busbws.append(bus)
                wrong = metrics.get("wrong")
                row += [f"{time.value:.2f}", f"{metrics['algbw'].value:.4g}", f"{bus:.4g}",
                        str(int(wrong.value)) if wrong else "N/A"]
        rows.append(tuple(row))
    return rows, (sum(busbws) / len(busbws) if busbws else None)

