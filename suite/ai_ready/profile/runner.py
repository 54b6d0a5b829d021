"""The outside half of `ai-ready profile`: start the job with the recorder armed, watch it, stop it.

The job runs in its own session (process group) so that stopping it reaches
its launcher, ranks and DataLoader workers; descendants that left the group
are found through psutil. The job's output passes through to the terminal
(unless quiet) and the tail of its stderr is kept for the profile.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import psutil

from ai_ready.profile import agent
from ai_ready.profile.jobspec import JobSpec, launch_argv

STDERR_TAIL_LINES = 40
POLL_S = 0.25
#: After every rank finished its profile, the job gets this long to stop by itself before it is stopped.
GRACE_S = 30.0
#: Between SIGTERM and SIGKILL when stopping the job.
TERM_WAIT_S = 5.0
TEARDOWN_CUPTI = "TEARDOWN_CUPTI"


@dataclass
class JobOutcome:
    """What happened to the job: how it ended, what it printed last, and every rank's profile."""

    status: str  # complete | failed | timeout | incomplete | no_steps
    reason: str | None
    exit_code: int | None
    stopped_by: str | None  # None (ended by itself), "profile complete", "timeout"
    stderr_tail: str
    ranks: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    argv: list[str] = field(default_factory=list)


def bootstrap_dir() -> Path:
    return Path(__file__).resolve().parent / "bootstrap"


def job_environment(spec: JobSpec, rank_dir: Path, stop: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    """The job's environment: the user's, the spec's env, and the bootstrap first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env.update(spec.env)
    package_root = str(Path(agent.__file__).resolve().parents[2])  # the folder holding ai_ready
    path = [str(bootstrap_dir()), package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env[agent.ENV_DIR] = str(rank_dir)
    env[agent.ENV_WARMUP] = str(spec.profile.warmup_steps)
    env[agent.ENV_STEPS] = str(spec.profile.steps)
    env[agent.ENV_STOP] = "1" if stop else "0"
    env[agent.ENV_TRACE] = "1" if spec.profile.trace else "0"
    env.setdefault("PYTHONUNBUFFERED", "1")
    if spec.profile.trace:
        # Kineto leaves CUPTI subscribed after a trace unless told to tear it down, and every later kernel
        # launch pays for it (pytorch/pytorch#144455: 10-20% slower, 45% seen on an H200): the job must run on
        # at its bare speed. torch.compile's CUDA graphs set it back to 0 themselves, where teardown crashes.
        env.setdefault(TEARDOWN_CUPTI, "1")
    return env


def read_ranks(rank_dir: Path) -> list[dict[str, Any]]:
    """Every rank file written so far (a file being replaced is read whole or not at all)."""
    ranks = []
    for path in sorted(rank_dir.glob("rank-*.json")):
        try:
            ranks.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(ranks, key=lambda r: r.get("rank", 0))


def _pump(stream: IO[str], sink: IO[str] | None, tail: collections.deque[str] | None) -> None:
    for line in iter(stream.readline, ""):
        if sink is not None:
            sink.write(line)
            sink.flush()
        if tail is not None:
            tail.append(line)
    stream.close()


def stop_tree(proc: subprocess.Popen[str], wait_s: float = TERM_WAIT_S) -> None:
    """SIGTERM the job's process group and every descendant, then SIGKILL what is left."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for child in family:
            try:
                child.send_signal(sig)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(family, timeout=wait_s if sig == signal.SIGTERM else 1.0)
        try:
            proc.wait(timeout=wait_s if sig == signal.SIGTERM else 1.0)
        except subprocess.TimeoutExpired:
            continue
        family = alive
        if not alive:
            break


#: A bare interpreter name in the job's command means the Python running ai-ready (its environment has
#: torch and ai_ready); a path to another interpreter is used as given.
BARE_PYTHONS = ("python", "python3")


def job_argv(spec: JobSpec, launchers: dict[str, str] | None = None) -> list[str]:
    """The argv that starts the job: its launcher from this Python's environment, `python` as this Python."""
    import dataclasses

    if spec.command and spec.command[0] in BARE_PYTHONS:
        spec = dataclasses.replace(spec, command=(sys.executable, *spec.command[1:]))
    argv = launch_argv(spec, **(launchers or {}))
    if not launchers and spec.launcher == "torchrun":
        argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
    elif not launchers and spec.launcher == "mpiexec":
        from ai_ready.cli.launch import find_mpiexec

        argv = [find_mpiexec(), *argv[1:]]
    return argv


def run_job(spec: JobSpec, rank_dir: Path, run_to_completion: bool = False, quiet: bool = False,
            launchers: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
            grace_s: float = GRACE_S) -> JobOutcome:
    """Run the job until its profile is complete (then let it stop or stop it), it ends, or it times out."""
    rank_dir = rank_dir.resolve()  # the job runs in its own folder: a relative path would land there
    rank_dir.mkdir(parents=True, exist_ok=True)
    argv = job_argv(spec, launchers)
    env = job_environment(spec, rank_dir, stop=not run_to_completion)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    start = clock()
    proc = subprocess.Popen(argv, cwd=spec.directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, None if quiet else sys.stdout, None), daemon=True),
             threading.Thread(target=_pump, args=(proc.stderr, None if quiet else sys.stderr, tail), daemon=True)]
    for pump in pumps:
        pump.start()
    stopped_by = None
    complete_at = None
    expected = spec.nproc
    try:
        while proc.poll() is None:
            now = clock()
            if now - start > spec.profile.timeout_s:
                stopped_by = "timeout"
                stop_tree(proc)
                break
            if not run_to_completion:
                ranks = read_ranks(rank_dir)
                done = [r for r in ranks if r.get("status") == "complete"]
                if len(done) >= expected and complete_at is None:
                    complete_at = now
                if complete_at is not None and now - complete_at > grace_s:
                    stopped_by = "profile complete"
                    stop_tree(proc)
                    break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        stop_tree(proc)
        raise
    finally:
        for pump in pumps:
            pump.join(timeout=5.0)
    code = proc.wait()
    duration = clock() - start
    ranks = read_ranks(rank_dir)
    status, reason = _verdict(ranks, code, stopped_by, expected, spec)
    return JobOutcome(status=status, reason=reason, exit_code=code, stopped_by=stopped_by,
                      stderr_tail="".join(tail), ranks=ranks, duration_s=duration, argv=argv)


def _verdict(ranks: list[dict[str, Any]], code: int, stopped_by: str | None, expected: int,
             spec: JobSpec) -> tuple[str, str | None]:
    """The profile's status and, unless complete, why, in words a user can act on."""
    complete = [r for r in ranks if r.get("status") == "complete"]
    wanted = spec.profile.warmup_steps + spec.profile.steps
    if len(complete) >= expected:
        return "complete", None
    if stopped_by == "timeout":
        got = max((len(r.get("steps", [])) for r in ranks), default=0)
        return "timeout", (f"the job was stopped after timeout_s = {spec.profile.timeout_s:g} s with {got} of "
                           f"{wanted} steps measured; what was measured is kept")
    if ranks and all(r.get("status") == "no_steps" for r in ranks):
        r = ranks[0]
        return "no_steps", (f"the job ran {r.get('forward_calls', 0)} forward and {r.get('backward_calls', 0)} "
                            "backward passes but never called optimizer.step(), so no training step could be "
                            "measured; wrap each step of the loop in `with ai_ready.step():` (import ai_ready)")
    if code != 0:
        return "failed", f"the job exited with status {code} before its profile was complete" + (
            f" ({_signal_name(code)})" if code < 0 else "")
    if not ranks:
        return "failed", ("the job ended without any training step: no optimizer.step(), no forward pass seen "
                          "(does it use PyTorch, and run in this Python environment?)")
    got = max(len(r.get("steps", [])) for r in ranks)
    return "incomplete", (f"the job ended after {got} steps, fewer than the {wanted} requested "
                          f"(warm-up {spec.profile.warmup_steps} + {spec.profile.steps}); lower `steps` or run it "
                          "longer")


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
