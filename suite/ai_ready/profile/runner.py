"""The outside half of `ai-ready profile`: start the job with the recorder armed, watch it, stop it.

The job runs in its own session (process group) so that stopping it reaches
its launcher, ranks and DataLoader workers; descendants that left the group
are found through psutil and a token in their environment (ai_ready.proctree).
A stop signal to ai-ready (SIGTERM, SIGINT, SIGHUP) is forwarded to the whole
job tree, and what the job measured until then is returned as a `stopped`
profile. The job's output passes through to the terminal (unless quiet) and
the tail of its stderr is kept for the profile.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from ai_ready import proctree, stop
from ai_ready.profile import agent
from ai_ready.profile.jobspec import JobSpec, launch_argv

STDERR_TAIL_LINES = 40
POLL_S = 0.25
#: After every rank finished its profile, the job gets this long to stop by itself before it is stopped.
GRACE_S = 30.0
#: Between the stop signal and SIGKILL when stopping the job.
TERM_WAIT_S = 5.0
TEARDOWN_CUPTI = "TEARDOWN_CUPTI"


@dataclass
class JobOutcome:
    """What happened to the job: how it ended, what it printed last, and every rank's profile."""

    status: str  # complete | failed | timeout | incomplete | no_steps | stopped
    reason: str | None
    exit_code: int | None
    stopped_by: str | None  # None (ended by itself), "profile complete", "timeout", "SIGTERM", "SIGINT", ...
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
    """Every rank's profile written so far, with the steps its step log holds beyond its last rank file."""
    ranks = [r for r in (agent.read_rank(path) for path in sorted(rank_dir.glob("rank-*.json"))) if r]
    return sorted(ranks, key=lambda r: r.get("rank", 0))


def _pump(stream: IO[str], sink: IO[str] | None, tail: collections.deque[str] | None) -> None:
    for line in iter(stream.readline, ""):
        if sink is not None:
            sink.write(line)
            sink.flush()
        if tail is not None:
            tail.append(line)
    stream.close()


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
    token = proctree.new_token()
    proc = proctree.start(argv, token, env, cwd=spec.directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, errors="replace")
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
                proctree.stop_tree(proc, token, grace_s=TERM_WAIT_S)
                break
            if not run_to_completion:
                ranks = read_ranks(rank_dir)
                done = [r for r in ranks if r.get("status") == "complete"]
                if len(done) >= expected and complete_at is None:
                    complete_at = now
                if complete_at is not None and now - complete_at > grace_s:
                    stopped_by = "profile complete"
                    proctree.stop_tree(proc, token, grace_s=TERM_WAIT_S)
                    break
            time.sleep(POLL_S)
    except (stop.Stopped, KeyboardInterrupt):
        signum = stop.received() or signal.SIGINT  # a KeyboardInterrupt not from a signal: as Ctrl-C
        stopped_by = stop.signal_name(signum)
        proctree.stop_tree(proc, token, first=signum, grace_s=TERM_WAIT_S)
    finally:
        with stop.deferred():
            for pump in pumps:
                pump.join(timeout=5.0)
    code = proc.wait()
    left = proctree.sweep(proc, token)
    duration = clock() - start
    ranks = read_ranks(rank_dir)
    status, reason = _verdict(ranks, code, stopped_by, expected, spec)
    if left:
        reason = ((reason + "; ") if reason else "") + (f"{left} process(es) the job left running (a daemon or "
                                                        "a process in its own session) were stopped")
    return JobOutcome(status=status, reason=reason, exit_code=code, stopped_by=stopped_by,
                      stderr_tail="".join(tail), ranks=ranks, duration_s=duration, argv=argv)


def _verdict(ranks: list[dict[str, Any]], code: int, stopped_by: str | None, expected: int,
             spec: JobSpec) -> tuple[str, str | None]:
    """The profile's status and, unless complete, why, in words a user can act on."""
    complete = [r for r in ranks if r.get("status") == "complete"]
    wanted = spec.profile.warmup_steps + spec.profile.steps
    if len(complete) >= expected:
        return "complete", None
    got = max((len(r.get("steps", [])) for r in ranks), default=0)
    if stopped_by == "timeout":
        return "timeout", (f"the job was stopped after timeout_s = {spec.profile.timeout_s:g} s with {got} of "
                           f"{wanted} steps measured; what was measured is kept")
    if stopped_by is not None and stopped_by.startswith("SIG"):
        return "stopped", (f"ai-ready was stopped by {stopped_by} and stopped the job with it, after {got} of "
                           f"{wanted} steps; what was measured is kept")
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
    return "incomplete", (f"the job ended after {got} steps, fewer than the {wanted} requested "
                          f"(warm-up {spec.profile.warmup_steps} + {spec.profile.steps}); lower `steps` or run it "
                          "longer")


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
