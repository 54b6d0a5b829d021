"""Issue 20's faults about where results go, on real file systems, databases and processes: a history
database that cannot be written is refused before anything is measured, a reused --results folder never
loses an earlier night's files, and a full disk is one line naming the file, with every finished
measurement kept.

Read-only places and full disks are real where the system allows: as root (file modes do not stop root)
a read-only bind mount and a filled 64 KiB tmpfs; as another user, removed write bits, and a full disk
emulated in-process when no tmpfs can be mounted."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from ai_ready import fileio
from ai_ready.accept.detect import Night
from ai_ready.accept.history import all_runs, open_history, store_run
from ai_ready.cli import main
from ai_ready.errors import InputError
from ai_ready.records import load_results
from conftest import run_cli
from helpers.accept_writer import history_runs
from helpers.postgres import fresh_database, postgres_url  # noqa: F401  (fixture)

#: A 64x64x64 fp32 GEMM with a tiny time budget: the cheapest real measurement (seconds on a CPU).
TINY_GEMM = {"sizes": "64", "dtype": "fp32", "llm": "none", "warmup": 0.01, "min-time": 0.05}
GEMM_ARGS = [arg for option, value in TINY_GEMM.items() for arg in (f"--{option}", str(value))]
METRIC = "gemm-fp32-64"
#: Where a rescued document went, as the error line says it.
KEPT_IN = re.compile(r"kept in (\S+\.json)")


# --------------------------------------------------------------------------- helpers

def tiny_suite(folder: Path) -> Path:
    """A one-benchmark suite that really measures (ai-ready bench gemm in its own process)."""
    data = {"schema": "ai-ready/accept-suite", "version": 1, "name": "tiny", "benchmarks": [
        {"name": "gemm", "run": ["bench", "gemm"], "args": TINY_GEMM,
         "metrics": [{"name": METRIC, "select": {"case": "square-64-fp32", "metric": "throughput"}}]}]}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plant_nights(url: str, count: int) -> None:
    """`count` good stored nights of METRIC on node01 (enough for a baseline when count >= 3)."""
    engine = open_history(url)
    nights = [Night(run_id=i, started="", value=100.0 + i % 2, samples=(100.0, 101.0, 99.0)) for i in range(count)]
    for run in history_runs(nights, METRIC, unit="TFLOP/s", suite="tiny"):
        store_run(engine, run)
    engine.dispose()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (so an emulated full disk applies to it); exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a folder) read-only for every process: a read-only bind mount as root (root ignores
    file modes), its write bits removed otherwise; skips when root may not mount (an unprivileged container)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    bound = _mount(["--bind", str(path), str(path)])
    if bound:
        pytest.skip(f"running as root, and a read-only bind mount of {path} failed: {bound}")
    try:
        remounted = _mount(["-o", "remount,ro,bind", str(path)])
        if remounted:
            pytest.skip(f"running as root, and remounting {path} read-only failed: {remounted}")
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _mount(args: list[str]) -> str:
    """Run mount; its error text, empty on success."""
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@contextmanager
def full_tmpfs(folder: Path) -> Iterator[str]:
    """`folder` as a real 64 KiB tmpfs filled to the brim; yields why not (empty when mounted): root only."""
    refused = "needs root to mount a tmpfs" if os.geteuid() != 0 else _mount(
        ["-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)])
    if refused:
        yield refused
        return
    try:
        _fill(folder)
        yield ""
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on a file system with no space left: a real full tmpfs where root may mount one, else a folder
    where creating a file fails with ENOSPC (emulated in this process only)."""
    folder = tmp_path / "full"
    folder.mkdir()
    with full_tmpfs(folder) as refused:
        if refused:
            _emulate_full(folder, monkeypatch)
        yield folder


@pytest.fixture
def real_full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real full file system, for checks that run in another process; skips where none can be mounted."""
    folder = tmp_path / "full"
    folder.mkdir()
    with full_tmpfs(folder) as refused:
        if refused:
            pytest.skip(f"a full tmpfs for another process: {refused}")
        yield folder


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def _emulate_full(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if Path(kwargs.get("dir") or tempfile.gettempdir()).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)


# --------------------------------------------------------------------------- 1. an unwritable history database

@pytest.mark.parametrize("locked", ["file", "folder"])
def test_an_unwritable_history_is_refused_before_anything_is_measured(tmp_path: Path, locked: str) -> None:
    """Issue 20: the whole suite ran (a result file in --results), then 'attempt to write a readonly database'."""
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'h.sqlite'}"
    plant_nights(url, 1)
    results = tmp_path / "results"
    with read_only(folder / "h.sqlite" if locked == "file" else folder):
        done = run_cli("accept", "--system", "local", "--suite", str(tiny_suite(tmp_path)), "--db", url,
                       "--results", str(results), cwd=tmp_path)
    assert not (results / "gemm.json").exists(), "the suite was measured before the database was checked"
    assert not results.exists()
    assert done.returncode == 2, done.stderr
    [line] = error_lines(done.stderr)
    assert line.startswith("ai-ready: error: --db ") and url in line and "not writable" in line


def test_a_read_only_postgresql_server_is_refused_on_opening_and_still_read(postgres_url: str) -> None:
    """A read replica (every transaction read-only). Old code: opened without a word, failed when storing."""
    url = fresh_database(postgres_url, f"ro{os.getpid()}")
    plant_nights(url, 1)
    read_only_url = f"{url}&options=-c%20default_transaction_read_only%3Don"
    with pytest.raises(InputError, match="not writable") as info:
        open_history(read_only_url)
    assert "\n" not in str(info.value) and "read-only transaction" in str(info.value)
    engine = open_history(read_only_url, write=False)
    assert len(all_runs(engine)) == 1
    engine.dispose()


def test_a_baseline_stored_by_name_needs_a_writable_history_and_one_read_from_it_does_not(tmp_path: Path) -> None:
    """Issue 20: --name failed only when storing ('could not store baseline'), never saying why up front."""
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    plant_nights(url, 5)
    suite = str(tiny_suite(tmp_path))
    base = ["accept", "baseline", "--from-db", url, "--system", "local", "--suite", suite, "--nights", "3"]
    with read_only(tmp_path / "h.sqlite"):
        named = run_cli(*base, "--name", "good", "-o", str(tmp_path / "named.yaml"), cwd=tmp_path)
        read = run_cli(*base, "-o", str(tmp_path / "read.yaml"), cwd=tmp_path)
    assert named.returncode == 2, named.stderr
    [line] = error_lines(named.stderr)
    assert url in line and "not writable" in line and not (tmp_path / "named.yaml").exists()
    assert read.returncode == 0, read.stderr
    assert METRIC in yaml.safe_load((tmp_path / "read.yaml").read_text())["references"]


# --------------------------------------------------------------------------- 2. a reused --results folder

def test_a_reused_results_folder_keeps_the_earlier_nights_files(tmp_path: Path) -> None:
    """Issue 20: the second night rewrote accept.json, gemm.json and gemm.log that the history of night 1
    still points to."""
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    results = tmp_path / "results"
    suite = str(tiny_suite(tmp_path))
    night = ["accept", "--system", "local", "--suite", suite, "--db", url, "--results", str(results)]
    first = run_cli(*night, cwd=tmp_path)
    assert first.returncode in (0, 1), first.stderr
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.iterdir() if p.is_file()}
    assert {"accept.json", "gemm.json", "gemm.log"} <= set(before)

    second = run_cli(*night, cwd=tmp_path)
    assert second.returncode in (0, 1), second.stderr
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.iterdir() if p.is_file()}
    assert after == before

    engine = open_history(url)
    run1, run2 = all_runs(engine, "local")
    engine.dispose()
    assert Path(run1["meta"]["results"]) == results.resolve()
    assert json.loads((results / "accept.json").read_text())["run_uid"] == run1["uid"]
    fresh = Path(run2["meta"]["results"])
    assert fresh.parent == results.resolve() and str(fresh) in second.stderr
    assert json.loads((fresh / "accept.json").read_text())["run_uid"] == run2["uid"]
    assert load_results(fresh / "gemm.json").records[0].case == "square-64-fp32"


# --------------------------------------------------------------------------- 3. a full disk

def test_a_full_disk_is_one_line_naming_the_result_file_and_the_measured_case_is_kept(
        full_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: 'internal error: OSError: [Errno 28] No space left on device', no path, the case lost."""
    rescue = tmp_path / "tmp"
    rescue.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(rescue))
    target = full_disk / "gemm.json"
    code, out, err = call(capsys, "--quiet", "bench", "gemm", *GEMM_ARGS, "-o", str(target))
    assert code == 1, err
    [line] = error_lines(err)
    assert line.startswith(f"ai-ready: error: cannot write the result file {target}: No space left on device "
                           "(errno 28)"), line
    assert "Traceback" not in err and not target.exists()
    kept = KEPT_IN.search(line)
    assert kept, line
    assert Path(kept.group(1)).parent == rescue
    document = load_results(kept.group(1))
    assert [(r.case, r.status) for r in document.records] == [("square-64-fp32", "ok")]


def test_when_the_temporary_folder_is_full_too_the_measured_case_is_printed(
        full_disk: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: the same internal error, and nothing of the measurement anywhere."""
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    code, out, err = call(capsys, "--quiet", "bench", "gemm", *GEMM_ARGS, "-o", str(full_disk / "gemm.json"))
    assert code == 1, err
    [line] = error_lines(err)
    assert "cannot write the result file" in line and "stdout" in line
    document = json.loads(out)
    assert [(r["case"], r["status"]) for r in document["records"]] == [("square-64-fp32", "ok")]


def test_a_full_disk_under_the_junit_file_names_it(real_full_disk: Path, tmp_path: Path) -> None:
    """Issue 20: 'internal error: OSError: [Errno 28]' after the run, no file named."""
    junit = real_full_disk / "j.xml"
    done = run_cli("--quiet", "accept", "--system", "local", "--suite", str(tiny_suite(tmp_path)), "--db",
                   f"sqlite:///{tmp_path / 'h.sqlite'}", "--results", str(tmp_path / "results"), "--junit", str(junit),
                   cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    assert line == f"ai-ready: error: cannot write the JUnit file {junit}: No space left on device (errno 28)"
