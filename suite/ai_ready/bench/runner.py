"""Run a list of cases, keep every finished record on disk, survive a failing case.

After every case rank 0 rewrites the result file atomically, so a crash, a
kill or Ctrl-C later in the run loses nothing already measured; the
document's ``meta.status`` says whether the run completed. When the file
cannot be written (a full disk), the run stops and what it measured is kept
in the temporary folder or printed (records.keep_unsaved). A case that raises
becomes a failed record with the reason and the run goes on.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from ai_ready.bench.context import BenchContext
from ai_ready.measure.harness import budget_dict
from ai_ready.fileio import WriteFailed
from ai_ready.records import Record, ResultDocument, keep_unsaved, new_meta, utc_now
from ai_ready.stop import Stopped, reraise_if_stopping

C = TypeVar("C")


#: Seconds between periodic saves; `finish` (on success, error, Ctrl-C or timeout) always saves.
SAVE_INTERVAL_S = 2.0


class ResultSink:
    """Rank 0's result document, saved when a path is given.

    Saves are atomic and throttled: a long sweep of short steps rewrites its
    file at most every SAVE_INTERVAL_S (a kill -9 loses at most that much),
    and every orderly ending goes through `finish`, which always saves.
    """

    def __init__(self, path: Path | None, meta: dict[str, Any], min_interval_s: float = SAVE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.document = ResultDocument(meta=meta)
        self._interval, self._clock = min_interval_s, clock
        self._last_save: float | None = None

    def add(self, records: Sequence[Record]) -> None:
        self.document.records.extend(records)
        now = self._clock()
        if self._last_save is None or now - self._last_save >= self._interval:
            self._save()
            self._last_save = now

    def finish(self, status: str) -> None:
        """Save the final status. When the file cannot be written (a periodic save that failed ends the run
        here too), the records measured so far are kept elsewhere and the WriteFailed says where."""
        self.document.meta["status"] = status
        self.document.meta["finished"] = utc_now()
        try:
            self._save()
        except WriteFailed as exc:
            raise keep_unsaved(self.document, exc) from exc

    def _save(self) -> None:
        if self.path is not None:
            self.document.save(self.path)


@contextlib.contextmanager
def finishing(sink: ResultSink | None) -> Iterator[None]:
    """Save the run's final status however it ends: complete, interrupted (Ctrl-C), stopped (SIGTERM, SIGHUP)
    or failed."""
    status = "failed"
    try:
        yield
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Stopped:
        status = "stopped"
        raise
    finally:
        if sink is not None:
            sink.finish(status)


def failed_record(benchmark: str, case: str, params: dict[str, Any], metric: str, unit: str,
                  reason: str, ctx: BenchContext, status: str = "failed") -> Record:
    return Record(benchmark=benchmark, case=case, params=params, metric=metric, unit=unit,
                  status=status, reason=reason, **ctx.record_fields())


def run_cases(
    benchmark: str,
    cases: Sequence[C],
    run_one: Callable[[C, BenchContext], list[Record]],
    describe: Callable[[C], tuple[str, dict[str, Any], str, str]],
    ctx: BenchContext,
    out: Path | None,
    command: Sequence[str] | None = None,
    progress: Any | None = None,
    debug: bool = False,
) -> ResultDocument | None:
    """Run `cases` on every rank; rank 0 gathers the records and returns the document.

    `describe(case)` gives (case id, params, metric, unit) for the failed
    record written when `run_one` raises.
    """
    meta = new_meta(command, ctx.environment)
    meta["budget"] = budget_dict(ctx.budget)
    meta["world_size"] = ctx.comm.size
    sink = ResultSink(out, meta) if ctx.rank == 0 else None
    with finishing(sink):
        with progress or nullcontext():
            for case in cases:
                name, params, metric, unit = describe(case)
                if progress is not None:
                    progress.start(name)
                try:
                    records = run_one(case, ctx)
                except Exception as exc:  # one case failing must not lose the others
                    reraise_if_stopping(exc)  # a signal is never a failed case
                    if debug:
                        traceback.print_exc(file=sys.stderr)
                    reason = f"{type(exc).__name__}: {exc}"
                    records = [failed_record(benchmark, name, params, metric, unit, reason, ctx)]
                gathered = ctx.comm.gather(records)
                if sink is not None and gathered is not None:
                    sink.add([r for rank_records in gathered for r in rank_records])
                if progress is not None:
                    progress.done(name, records)
    return sink.document if sink is not None else None
