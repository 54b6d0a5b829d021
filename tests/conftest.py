"""Shared test helpers: a fake clock and an in-process multi-rank communicator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    """A clock that only moves when the code under test says work happened."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ThreadWorld:
    """N ranks as threads sharing slots: enough to test that rank 0's decisions reach everyone."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._barrier = threading.Barrier(size)
        self._slots: list[Any] = [None] * size

    def comm(self, rank: int) -> "ThreadComm":
        return ThreadComm(self, rank)


class ThreadComm:
    name = "threads"

    def __init__(self, world: ThreadWorld, rank: int) -> None:
        self.world, self.rank, self.size = world, rank, world.size

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        if self.rank == root:
            self.world._slots[root] = obj
        self.world._barrier.wait()
        value = self.world._slots[root]
        self.world._barrier.wait()
        return value

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        self.world._slots[self.rank] = obj
        self.world._barrier.wait()
        out = list(self.world._slots) if self.rank == root else None
        self.world._barrier.wait()
        return out

    def barrier(self) -> None:
        self.world._barrier.wait()


def run_ranks(size: int, target: Callable[[ThreadComm], Any]) -> list[Any]:
    """Run `target(comm)` on `size` thread-ranks and return each rank's result."""
    world = ThreadWorld(size)
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def body(rank: int) -> None:
        try:
            results[rank] = target(world.comm(rank))
        except BaseException as exc:  # surface failures in the test thread
            errors.append(exc)
            world._barrier.abort()

    threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def cli_env() -> dict[str, str]:
    """Environment for a CLI subprocess that imports the same ai_ready as the tests (source or installed)."""
    import ai_ready

    env = dict(os.environ)
    package_parent = str(Path(ai_ready.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


def ai_ready_cmd() -> list[str]:
    return [sys.executable, "-m", "ai_ready"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ai_ready_cmd(), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=cli_env())


def mpiexec() -> str | None:
    """mpiexec next to this Python (the mpich wheel in the test extra) or on PATH."""
    local = Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else shutil.which("mpiexec")


def section_of(html: str, key: str) -> str:
    """One report section's HTML: from its opening tag to the next section's (or the end of the page)."""
    start = html.index(f'<section id="{key}"')
    following = html.find('<section id="', start + 1)
    return html[start:following if following != -1 else len(html)]
