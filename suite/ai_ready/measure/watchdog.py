"""Step watchdog: a rank that dies or hangs must not hang the others forever.

Every rank brackets each step (one collective at one size) with
``begin``/``end``. At ``begin`` rank 0 posts a receive for each other rank's
"done" message and every rank arms a timer; at ``end`` the others send "done"
and rank 0 collects them. If a step outlasts its timeout, rank 0's timer
knows exactly which ranks never reported and names them (with their hosts);
the others wait a grace period so rank 0 speaks first. Then the
``on_timeout`` callback saves what was measured and the job is aborted
through the launcher's engine (MPI_Abort, or exit so torchrun stops the rest).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable

from ai_ready.measure.comm import Comm, Request

#: Tags of "done" messages: base + step number modulo the span (MPI guarantees tags up to 32767).
TAG_BASE = 20000
TAG_SPAN = 10000
#: Other ranks wait this much longer than rank 0 before reporting, so rank 0's message comes first.
GRACE_S = 5.0
EXIT_TIMEOUT = 1


class StepTimeout(RuntimeError):
    pass


class StepWatchdog:
    def __init__(self, comm: Comm, timeout_s: float, hosts: list[str] | None = None,
                 on_timeout: Callable[[str, list[int]], None] | None = None,
                 abort: Callable[[int], None] | None = None) -> None:
        self.comm, self.timeout_s = comm, timeout_s
        self.hosts = hosts or []
        self._on_timeout = on_timeout
        self._abort = abort or default_abort(comm)
        self._step = 0
        self._label = ""
        self._pending: dict[int, Request] = {}
        self._sends: list[Request] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._fired = False

    def begin(self, label: str) -> None:
        """Start a step; every rank must call it with the same step sequence."""
        self._step += 1
        self._label = label
        if self.comm.size > 1 and self.comm.rank == 0:
            tag = self._tag()
            self._pending = {r: self.comm.irecv_int(r, tag) for r in range(1, self.comm.size)}
        delay = self.timeout_s if self.comm.rank == 0 else self.timeout_s + GRACE_S
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def end(self) -> None:
        """Finish a step: report to rank 0 (or collect the reports), then disarm."""
        if self.comm.size > 1:
            if self.comm.rank == 0:
                for request in self._pending.values():
                    request.wait()
                self._pending = {}
            else:
                self._sends = [s for s in self._sends if not s.test()]
                self._sends.append(self.comm.isend_int(self._step, 0, self._tag()))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def missing(self) -> list[int]:
        """Ranks that have not reported the current step (meaningful on rank 0)."""
        return [r for r, request in self._pending.items() if not request.test()]

    def describe(self, ranks: list[int]) -> str:
        return ", ".join(f"{r} ({self.hosts[r]})" if r < len(self.hosts) else str(r) for r in ranks)

    def _tag(self) -> int:
        return TAG_BASE + self._step % TAG_SPAN

    def _fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
        if self.comm.rank == 0:
            missing = self.missing() if self.comm.size > 1 else []
            who = f"rank(s) {self.describe(missing)} did not finish it" if missing else \
                "every rank reported, so a rank hung inside the operation"
            message = f"{self._label} did not finish within {self.timeout_s:g} s: {who}"
        else:
            missing = []
            message = (f"rank {self.comm.rank}: {self._label} did not finish within {self.timeout_s:g} s "
                       "(rank 0 names the missing rank)")
        print(f"ai-ready: timeout: {message}", file=sys.stderr, flush=True)
        try:
            if self._on_timeout is not None:
                self._on_timeout(message, missing)
        finally:
            sys.stderr.flush()
            sys.stdout.flush()
            self._abort(EXIT_TIMEOUT)


def default_abort(comm: Comm) -> Callable[[int], None]:
    """MPI_Abort when MPI runs the job (it ends every rank), else a hard exit (torchrun ends the rest)."""
    abort = getattr(comm, "abort", None)
    if abort is not None:
        return abort
    return os._exit
