"""Faults, with real processes and real signals (issue 20): a stopped `ai-ready profile` takes its whole job
tree with it and still writes what was measured; a signal is never recorded as a measurement failure; a
job that dies abruptly keeps its finished steps; scratch folders of killed runs are found and cleaned."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, cli_env

from ai_ready.records import load_results

JOB = REPO / "tests" / "jobs" / "fault_job.py"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process trees and signals: Linux")


def _job(tmp_path: Path, *job_args: str) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    shutil.copy(JOB, folder / "fault_job.py")
    command = ", ".join(json.dumps(a) for a in ("python", "fault_job.py", *job_args))
    (folder / "ai-ready.yaml").write_text(f"name: job\ncommand: [{command}]\n"
                                          "profile: {warmup_steps: 2, steps: 100000, timeout_s: 300}\n")
    return folder


class Running:
    """`ai-ready profile` started in the background; its output lines are read as they come."""

    def __init__(self, tmp_path: Path, folder: Path, wrapper: tuple[str, ...] = ()) -> None:
        env = cli_env()
        env["OMP_NUM_THREADS"] = "1"
        self.out = tmp_path / "out"
        self.proc = subprocess.Popen([*wrapper, sys.executable, "-m", "ai_ready", "profile", str(folder), "-o",
                                      str(self.out)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, word: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.seen)
                continue
            self.seen.append(line)
            if line.strip() == word:
                return
        raise AssertionError(f"{word} not seen in {timeout} s:\n" + "".join(self.seen))

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "".join(self.seen)

    def pids(self) -> list[int]:
        return [int(line.split()[1]) for line in self.seen if line.split()[:1] in (["JOBPID"], ["HELPERPID"])]


def _gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_stops_the_whole_job_tree_and_keeps_the_profile(tmp_path: Path, sig: int, code: int) -> None:
    """Item 1: the job, its DataLoader workers, a child in its own session and a double-forked daemon all end;
    profile.json (status stopped, the steps measured) and the report are written; the exit code is 128+N."""
    running = Running(tmp_path, _job(tmp_path, "--workers", "2", "--session-child", "--daemon"))
    try:
        running.wait_for("READY")
        time.sleep(1.0)  # a few steps
        running.proc.send_signal(sig)
        exit_code, output = running.finish()
    finally:
        _kill_all(running.pids())
    assert exit_code == code, output
    assert len(running.pids()) >= 4, output  # the job, two workers, the session child, the daemon
    assert _gone(running.pids()) == [], output
    document = load_results(running.out / "job" / "profile.json")
    assert document.meta["status"] == "stopped"
    profile = document.meta["profile"]
    assert profile["stopped_by"] == signal.Signals(sig).name and profile["status"] == "stopped"
    assert "what was measured is kept" in profile["reason"]
    assert any(r.metric == "step_time" and r.stats and r.stats["n"] >= 1 for r in document.records), output
    html = (running.out / "job.html").read_text(encoding="utf-8")
    assert f"got {signal.Signals(sig).name}" in html and "stopped the job with it" in html
    assert "internal error" not in output  # (a Python job prints its own KeyboardInterrupt traceback on SIGINT)


def test_a_ci_timeout_wrapper_stops_the_job_with_the_profile(tmp_path: Path) -> None:
    """Item 1 as CI meets it: `timeout` sends SIGTERM to ai-ready, which takes its job along."""
    if shutil.which("timeout") is None:
        pytest.skip("coreutils timeout is not installed")
    running = Running(tmp_path, _job(tmp_path), wrapper=("timeout", "-s", "TERM", "15"))
    try:
        exit_code, output = running.finish(timeout=90)
    finally:
        _kill_all(running.pids())
    assert exit_code == 124, output  # timeout's own code: it had to stop the command
    assert _gone(running.pids()) == [], output
    assert load_results(running.out / "job" / "profile.json").meta["status"] == "stopped"


def test_sigkill_of_ai_ready_still_ends_the_job(tmp_path: Path) -> None:
    """Nothing can be written after SIGKILL, but the job must not keep holding the GPUs: it dies with ai-ready."""
    running = Running(tmp_path, _job(tmp_path))
    try:
        running.wait_for("READY")
        running.proc.kill()
        running.finish()
        job = [int(line.split()[1]) for line in running.seen if line.startswith("JOBPID")]
        assert job and _gone(job, timeout=10.0) == []
    finally:
        _kill_all(running.pids())


def test_a_job_leaving_through_os_exit_keeps_its_steps(tmp_path: Path) -> None:
    """Item 'also seen': a job that exits with os._exit after N timed steps (no exit handlers) keeps them."""
    exit_after = 6  # steps 0..6 finished: 2 warm-up + 5 timed
    folder = _job(tmp_path, "--exit-at", str(exit_after), "--sleep", "0.05")
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "ai_ready", "profile", str(folder), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 1, proc.stderr  # incomplete: fewer steps than asked for
    document = load_results(tmp_path / "out" / "job" / "profile.json")
    step = next(r for r in document.records if r.metric == "step_time")
    assert step.stats["n"] >= exit_after + 1 - 2 - 1, step.stats  # at least N-1 of the N timed steps
    assert "ended after 7 steps" in document.meta["profile"]["reason"]


def test_a_daemon_the_job_leaves_behind_is_stopped_and_named(tmp_path: Path) -> None:
    """A job that ends normally but leaves a double-forked daemon: the daemon is stopped, the profile says so."""
    folder = _job(tmp_path, "--daemon", "--sleep", "0.01")
    spec = (folder / "ai-ready.yaml").read_text().replace("steps: 100000, timeout_s: 300", "steps: 3, timeout_s: 120")
    (folder / "ai-ready.yaml").write_text(spec)
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "ai_ready", "profile", str(folder), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=240)
    helpers = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("HELPERPID")]
    try:
        assert proc.returncode == 0, proc.stderr
        assert helpers and _gone(helpers) == []
        profile = load_results(tmp_path / "out" / "job" / "profile.json").meta["profile"]
        assert profile["status"] == "complete" and "left running" in profile["reason"]
    finally:
        _kill_all(helpers)


def test_a_signal_inside_torch_save_is_a_stop_not_a_failed_case(tmp_path: Path, monkeypatch) -> None:
    """Item 2, deterministic: SIGTERM arriving while torch.save writes surfaces from torch as a RuntimeError
    ('unexpected pos'); the benchmark raises the stop again instead of recording a failed round trip."""
    import torch

    from ai_ready import stop
    from ai_ready.bench.io import checkpoint
    from ai_ready.bench.io.scratch import Scratch

    real_fdopen = os.fdopen

    class SignalledFile:
        def __init__(self, handle) -> None:
            self.handle, self.writes = handle, 0

        def write(self, data) -> int:
            self.writes += 1
            if self.writes == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

    monkeypatch.setattr(checkpoint.os, "fdopen", lambda *a, **k: SignalledFile(real_fdopen(*a, **k)))
    stop.reset()
    save, load = checkpoint.OpSeries("ckpt", "torch.save", "save"), checkpoint.OpSeries("ckpt", "torch.save", "load")
    with Scratch(tmp_path) as scratch:
        with pytest.raises(stop.Stopped) as raised:
            checkpoint._torch_repeat({"w": torch.ones(1 << 18)}, scratch, "ckpt.pt", save, load)
        scratch_path = scratch.path
    stop.reset()
    assert isinstance(raised.value.__cause__, RuntimeError)  # what torch made of the signal
    assert save.reason is None and load.reason is None  # no failed case recorded
    assert not scratch_path.exists()


def test_sigterm_during_bench_io_exits_143_without_failed_cases(tmp_path: Path) -> None:
    """Item 2, end to end: SIGTERM in the checkpoint phase: exit 143, status stopped, no case failed, no scratch."""
    target = tmp_path / "fs"
    target.mkdir()
    out = tmp_path / "io.json"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "ai_ready", "bench", "io", "--path", str(target), "--quick",
                             "--size", "4M", "--block-sizes", "1M", "--files", "10", "--reads", "10",
                             "--checkpoint-gb", "0.5", "--repeats", "5", "--samples", "0", "-o", str(out)],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "checkpoint" in line:
            break
    time.sleep(1.5)  # inside the save/load loop
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 143, output
    document = load_results(out)
    assert document.meta["status"] == "stopped", output
    assert not [r for r in document.records if r.status == "failed"], [r.reason for r in document.records]
    assert list(target.iterdir()) == []


def test_stale_scratch_of_killed_runs_is_reported_and_cleaned(tmp_path: Path) -> None:
    """Item 4: a SIGKILLed `bench io` leaves its scratch folder; the next run names it with its size, and
    --clean-stale removes it (and nothing else)."""
    target = tmp_path / "fs"
    target.mkdir()
    (target / "users-data").mkdir()
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "ai_ready", "bench", "io", "--path", str(target), "--quick",
                             "--size", "32M", "--repeats", "20", "-o", str(tmp_path / "a.json")], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("ai-ready-io-") and any(p.iterdir()) for p in target.iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    stale = [p for p in target.iterdir() if p.name.startswith("ai-ready-io-")]
    assert len(stale) == 1
    quick = ["--quick", "--size", "1M", "--block-sizes", "1M", "--files", "10", "--reads", "10",
             "--checkpoint-gb", "0", "--samples", "0", "--repeats", "1"]
    seen = subprocess.run([sys.executable, "-m", "ai_ready", "bench", "io", "--path", str(target), *quick, "-o",
                           str(tmp_path / "b.json")], env=env, capture_output=True, text=True, timeout=120)
    assert seen.returncode == 0, seen.stderr
    assert "1 scratch folder(s) of killed runs" in seen.stderr and stale[0].name in seen.stderr, seen.stderr
    assert " MB under " in seen.stderr and "--clean-stale" in seen.stderr
    assert stale[0].exists()  # never removed silently
    cleaned = subprocess.run([sys.executable, "-m", "ai_ready", "bench", "io", "--path", str(target), *quick,
                              "--clean-stale", "-o", str(tmp_path / "c.json")], env=env, capture_output=True,
                             text=True, timeout=120)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed 1 scratch folder(s)" in cleaned.stderr
    assert sorted(p.name for p in target.iterdir()) == ["users-data"]


def test_scratch_of_a_live_run_or_another_host_is_never_stale(tmp_path: Path) -> None:
    from ai_ready.bench.io.scratch import PREFIX, stale_folders

    host = "node-7"
    (tmp_path / f"{PREFIX}{host}-{os.getpid()}-0123abcd").mkdir()  # this very process: alive
    (tmp_path / f"{PREFIX}other-host-1-0123abcd").mkdir()  # another node's run: not ours to judge
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"{PREFIX}{host}-{dead.pid}-rank1-89abcdef"
    gone.mkdir()
    (gone / "f").write_bytes(b"x" * 1000)
    found = stale_folders(tmp_path, host=host)
    assert [(f.path, f.nbytes) for f in found] == [(gone, 1000)]


def _slow_acceptance(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str], list[psutil.Process]]:
    """`ai-ready accept` with one slow I/O benchmark, started and waited for until the benchmark runs."""
    import yaml

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"schema": "ai-ready/accept-suite", "version": 1, "name": "slow", "benchmarks": [
        {"name": "io", "run": ["bench", "io"], "timeout": 600,
         "args": {"quick": True, "size": "32M", "repeats": 200, "checkpoint_gb": 0, "samples": 0},
         "metrics": [{"name": "io-write", "select": {"case": "seq-write-16M"}}]}]}))
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "ai_ready", "accept", "--system", "local", "--suite", str(suite),
                             "--db", f"sqlite:///{tmp_path / 'h.sqlite'}", "--results", str(tmp_path / "r")],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "running ai-ready" in line:
            break
    deadline = time.monotonic() + 60
    children: list[psutil.Process] = []
    while not children and time.monotonic() < deadline:
        children = [c for c in psutil.Process(proc.pid).children(recursive=True)]
        time.sleep(0.1)
    time.sleep(2.0)
    return proc, lines, children


def test_a_killed_acceptance_run_leaves_no_benchmark_running(tmp_path: Path) -> None:
    """`kill -9` of `ai-ready accept`: its benchmark gets SIGTERM from the kernel at once (no orphan)."""
    proc, _, children = _slow_acceptance(tmp_path)
    try:
        proc.kill()
        proc.communicate(timeout=30)
        assert children and _gone([c.pid for c in children], timeout=10.0) == []
    finally:
        _kill_all([c.pid for c in children])


def test_a_stopped_acceptance_run_stops_its_benchmark(tmp_path: Path) -> None:
    """A SIGTERM to `ai-ready accept` (a batch time limit) ends the benchmark it is running, at once, with
    the benchmark's scratch folder removed."""
    proc, lines, children = _slow_acceptance(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    output = "".join(lines) + rest
    assert proc.returncode == 143, output
    assert _gone([c.pid for c in children]) == [], output
    assert not list((tmp_path / "r").glob("accept-scratch-*")), output
    summary = json.loads((tmp_path / "r" / "accept.json").read_text())
    assert summary["outcome"] == "stopped" and summary["stopped_by"] == "SIGTERM"
    assert summary["stored_in_history"] is False and "not stored in the history" in output


def test_a_stopped_multi_rank_run_takes_its_ranks_with_it(tmp_path: Path) -> None:
    """`--ranks N` starts mpiexec; SIGTERM to ai-ready reaches every rank (mpiexec's ranks run in sessions of
    their own) and ai-ready exits 143 with none left, SIGKILL after the grace period for a rank stuck in a
    collective whose peer already left."""
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "ai_ready", "train", "gpt", "--preset", "tiny", "--steps", "100000",
                             "--ranks", "2", "--data-dir", str(tmp_path), "-o", str(tmp_path / "t.json")], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 90
    ranks: list[psutil.Process] = []
    while len(ranks) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        ranks = [p for p in psutil.Process(proc.pid).children(recursive=True)
                 if "ai_ready" in " ".join(p.cmdline())]
        time.sleep(0.2)
    while not list(tmp_path.glob("ai-ready-io-*")):  # training data written: the ranks are training
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _gone([r.pid for r in ranks]) == [], err


def test_every_broad_except_in_ai_ready_lets_a_stop_through() -> None:
    """Item 2, everywhere: a library may turn a stop signal into its own error (torch does), so every
    `except Exception` in ai-ready's own processes starts by raising the stop again. The in-job agent and
    hooks are left out: they run inside the user's job, whose signals are the job's own."""
    import ast

    package = REPO / "suite" / "ai_ready"
    in_job = {package / "profile" / name for name in ("agent.py", "hooks.py", "work.py")}
    missing = []
    for path in sorted(package.rglob("*.py")):
        if path in in_job or "bootstrap" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ExceptHandler) or not isinstance(node.type, ast.Name):
                continue
            if node.type.id != "Exception":
                continue
            first = node.body[0]
            call = first.value if isinstance(first, ast.Expr) else None
            name = getattr(getattr(call, "func", None), "attr", None) or getattr(getattr(call, "func", None), "id", None)
            if name != "reraise_if_stopping" and not (path.name == "__init__.py" and path.parent.name == "cli"):
                missing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert missing == []
