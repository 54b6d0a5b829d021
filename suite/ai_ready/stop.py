"""Stop signals as exceptions: SIGTERM, SIGINT and SIGHUP unwind ai-ready like an error would, so every
``finally`` runs (scratch folders removed, children stopped, finished results written), and are never
mistaken for a failed measurement.

A batch system's time limit, a CI ``timeout`` and ``kill PID`` send SIGTERM; a terminal closing sends
SIGHUP; Ctrl-C sends SIGINT. Python would die on the first two without cleanup. Here each one raises
:class:`Stopped` (SIGINT raises :class:`KeyboardInterrupt`, which Python code already expects) and is
remembered: a library that turns the exception into its own (``torch.save`` reports it as a
``RuntimeError``) cannot hide it, because :func:`reraise_if_stopping` in every ``except Exception``
around user or library code raises the stop again.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived (SIGTERM or SIGHUP): unwind and exit with 128 + the signal's number."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal_name(signum))
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


#: A stop signal repeated within this many seconds of the first is the same stop delivered twice (to the
#: process group and by a launcher that forwards it): ignored. Later, it is someone insisting: raised again.
REPEAT_IGNORED_S = 2.0
#: The first stop signal this process received (None: none yet), and when.
_received: int | None = None
_received_at = 0.0
#: While > 0, signals are only remembered; the outermost `deferred()` raises them on leaving.
_defer_depth = 0
_pending: int | None = None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def received() -> int | None:
    """The stop signal this process received, if any."""
    return _received


def stop_exception(signum: int) -> BaseException:
    """What a stop signal raises: KeyboardInterrupt for SIGINT (as Python does), Stopped otherwise."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def reraise_if_stopping(exc: BaseException) -> None:
    """Call first in every ``except Exception`` around user or library code: when a stop signal arrived,
    the caught error is its echo (or came from the unwinding), not a result, so the stop is raised again."""
    if _received is not None:
        raise stop_exception(_received) from exc


def _handler(signum: int, frame: FrameType | None) -> None:
    global _received, _received_at, _pending
    first = _received is None
    if first:
        _received, _received_at = signum, time.monotonic()
    elif time.monotonic() - _received_at < REPEAT_IGNORED_S:
        return  # the same stop again (a launcher forwarding what the process group also got): let clean-up run
    if _defer_depth > 0:
        if first:  # a repeat of a stop already under way changes nothing while its clean-up runs
            _pending = signum
        return
    raise stop_exception(signum)


@contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the stop signals raise (see the module's docstring); the previous handlers are put
    back after it. Outside the main thread signals cannot be handled, and the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, _handler)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Stop signals that arrive within the block wait until it ends (stopping a job's process tree, writing
    the last result file must not be cut short by a second Ctrl-C); then the first of them is raised."""
    global _defer_depth, _pending
    _defer_depth += 1
    try:
        yield
    finally:
        _defer_depth -= 1
        if _defer_depth == 0 and _pending is not None:  # takes precedence over an exception leaving the block
            signum, _pending = _pending, None
            raise stop_exception(signum)


def reset() -> None:
    """Forget a received signal: each command run in one process (tests, `main()` called twice) starts clean."""
    global _received, _pending, _defer_depth
    _received, _pending, _defer_depth = None, None, 0
