"""Children that cannot outlive ai-ready: a job, a benchmark, the ranks of `--ranks` and `--scaling`.

Each child starts in its own session (a terminal's Ctrl-C reaches ai-ready alone, which then stops the
child's whole tree in order) with a token in its environment that every descendant inherits. Stopping
finds the tree twice over: by parenthood (psutil) and by the token, which also finds what left the tree
(a daemon that forked twice, a process that called setsid). The signal ai-ready received is forwarded
first, so the job's own handlers run (a Python job's KeyboardInterrupt, a launcher's forwarding); what
is left after the grace period gets SIGKILL. On Linux the child also gets SIGTERM should ai-ready itself
die by SIGKILL (PR_SET_PDEATHSIG), so not even `kill -9` leaves it running.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from ai_ready import stop

#: Environment variable holding the tokens of every ai-ready tree a process belongs to (comma-separated).
TOKEN_ENV = "AI_READY_JOB_TOKENS"
#: Seconds between forwarding the stop signal and SIGKILL.
GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


def new_token() -> str:
    return secrets.token_hex(8)


def child_env(token: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this environment) with `token` added to the tokens the child inherits."""
    env = dict(os.environ if base is None else base)
    tokens = [t for t in env.get(TOKEN_ENV, "").split(",") if t]
    env[TOKEN_ENV] = ",".join([*tokens, token])
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the token still finds the tree when ai-ready stops it
        pass


def start(argv: list[str], token: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """Start `argv` in its own session, carrying `token`, dying with ai-ready where the OS allows."""
    return subprocess.Popen(argv, env=child_env(token, env), start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None, **popen)


def family(proc: subprocess.Popen[Any], token: str) -> list[psutil.Process]:
    """Every live process of the child's tree: its descendants, and whatever carries the token."""
    found: dict[int, psutil.Process] = {}
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            found[child.pid] = child
    except psutil.Error:
        pass
    me = os.getpid()
    for candidate in psutil.process_iter():
        if candidate.pid in found or candidate.pid in (me, proc.pid):
            continue
        try:
            tokens = candidate.environ().get(TOKEN_ENV, "")
        except (psutil.Error, OSError):
            continue  # another user's process, or one that just ended
        if token in tokens.split(","):
            found[candidate.pid] = candidate
    return list(found.values())


def stop_tree(proc: subprocess.Popen[Any], token: str, first: int = signal.SIGTERM,
              grace_s: float = GRACE_S) -> None:
    """Send `first` to the child's process group and every process of its tree, wait up to `grace_s` for
    them to end, then SIGKILL what remains. Stop signals arriving meanwhile wait until this is done."""
    with stop.deferred():
        members = family(proc, token)
        for sig, wait_s in ((first, grace_s), (signal.SIGKILL, 2.0)):
            _signal_all(proc, members, sig)
            deadline = time.monotonic() + wait_s
            _, alive = psutil.wait_procs([m for m in members if _alive(m)], timeout=wait_s)
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            members = list({m.pid: m for m in (*alive, *family(proc, token))}.values())
            if proc.poll() is not None and not members:
                return


def sweep(proc: subprocess.Popen[Any], token: str) -> int:
    """After the child ended: stop whatever of its tree is still running (a daemon it left behind)."""
    members = family(proc, token)
    if members:
        stop_tree(proc, token, grace_s=2.0)
    return len(members)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_all(proc: subprocess.Popen[Any], members: list[psutil.Process], sig: int) -> None:
    """`sig` once to each process: the child's process group, then the members outside that group."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for member in members:
        try:
            if os.getpgid(member.pid) != proc.pid:
                member.send_signal(sig)
        except (psutil.Error, OSError):
            pass


def run(argv: list[str], timeout_s: float | None = None, grace_s: float = GRACE_S,
        on_stop: Callable[[int], None] | None = None, **popen: Any) -> int:
    """Run `argv` to its end and return its exit status. A stop signal to ai-ready (or the timeout, which
    raises subprocess.TimeoutExpired) stops the child's whole tree first; then the stop goes on up."""
    token = new_token()
    proc = start(argv, token, **popen)
    try:
        code = proc.wait(timeout=timeout_s)
    except BaseException as exc:
        signum = stop.received() if isinstance(exc, (stop.Stopped, KeyboardInterrupt)) else None
        if on_stop is not None and signum is not None:
            on_stop(signum)
        stop_tree(proc, token, first=signum or signal.SIGTERM, grace_s=grace_s)
        raise
    sweep(proc, token)
    return code


def last_error_line(log: Path) -> str:
    """What a child's log says went wrong: its last `ai-ready:` or error line, else its last line."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no log"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ai-ready:") or "Error" in line]
    chosen = (errors or lines or ["no output"])[-1]
    return chosen if len(chosen) <= 300 else chosen[:297] + "..."
