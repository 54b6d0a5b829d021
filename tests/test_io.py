"""I/O benchmark: safety (scratch folder, symlinks, free space, cleanup on kill), cache-state statements,
and real runs: one process, and two MPI ranks with aggregates and a shared MPI-IO file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_env, mpiexec
from ai_ready.bench.io.scratch import PREFIX, Scratch, check_space
from ai_ready.cli import main
from ai_ready.errors import InputError
from ai_ready.records import load_results

QUICK_SMALL = ["--quick", "--size", "8M", "--block-sizes", "64K,1M", "--files", "50", "--reads", "200",
               "--checkpoint-gb", "0", "--samples", "0", "--repeats", "2"]


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(PREFIX))


def test_single_rank_run_states_cache_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "fs"
    target.mkdir()
    out = tmp_path / "io.json"
    code, _, err = call(capsys, "bench", "io", "--path", str(target), *QUICK_SMALL, "-o", str(out))
    assert code == 0, err
    assert list(target.iterdir()) == []  # the scratch folder and all it held are gone
    records = {(r.case, r.metric): r for r in load_results(out).records}
    for block in ("64K", "1M"):
        write, read = records[(f"seq-write-{block}", "bandwidth")], records[(f"seq-read-{block}", "bandwidth")]
        assert write.status == read.status == "ok"
        assert "fsync inside the timed region" in write.timing["cache"]
        assert ("O_DIRECT" in read.timing["cache"]) or ("posix_fadvise" in read.timing["cache"])
        assert read.params["direct"] == ("O_DIRECT" in read.timing["cache"])
        assert write.params["file_bytes"] == 8 << 20 and len(write.samples) == 2
    iops, latency = records[("rand-read-4K", "iops")], records[("rand-read-4K", "latency")]
    assert iops.value > 0 and latency.params["p99_us"] >= latency.params["p50_us"] > 0
    assert len(latency.samples) == 2 * 200
    assert {c for c, _ in records} >= {"metadata-create", "metadata-stat", "metadata-unlink"}
    mpiio = records[("mpiio-write-shared", "bandwidth")]
    assert mpiio.status == "skipped" and "mpiexec" in mpiio.reason


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "a-file").write_text("x") and p / "a-file", "is not a folder"),
])
def test_bad_paths_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, fragment: str) -> None:
    code, _, err = call(capsys, "bench", "io", "--path", str(make(tmp_path)), "--quick")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permissions cannot make a folder unwritable")
def test_unwritable_path_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path.chmod(0o500)
    try:
        code, _, err = call(capsys, "bench", "io", "--path", str(tmp_path), "--quick")
    finally:
        tmp_path.chmod(0o700)
    assert code == 2 and "not writable" in err


def test_free_space_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="more than 50%"):
        check_space(tmp_path, 10**18)
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    size_mib = free // (1 << 20)  # one file as large as all the free space: twice the safe share with its copy
    code, _, err = call(capsys, "bench", "io", "--path", str(tmp_path), "--quick", "--size", f"{size_mib}M",
                        "--block-sizes", "1M")
    assert code == 2 and "free" in err and "accepted" in err and len(err.strip().splitlines()) == 1
    assert leftovers(tmp_path) == []  # refused before writing anything


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)])
def test_killed_run_leaves_nothing(tmp_path: Path, sig: int, code: int) -> None:
    """Start a long run, kill it once its scratch folder exists, and check nothing remains."""
    proc = subprocess.Popen([sys.executable, "-m", "ai_ready", "--quiet", "bench", "io", "--path", str(tmp_path),
                             "--size", "32M", "--block-sizes", "4K", "--repeats", "1000", "--checkpoint-gb", "0",
                             "--samples", "0", "-o", str(tmp_path / "io.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert leftovers(tmp_path), "the run never created its scratch folder"
    time.sleep(0.5)  # mid-write
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_scratch_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    with Scratch(tmp_path) as scratch:
        os.symlink(outside, scratch.path / "trap.dat")
        with pytest.raises(OSError):
            scratch.create("trap.dat")  # O_EXCL | O_NOFOLLOW: refuses the planted link
        with pytest.raises(ValueError):
            scratch.file("../escape.dat")
        folder = scratch.path
    assert outside.read_text() == "precious" and not folder.exists()


def test_scratch_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with Scratch(tmp_path) as scratch:
            os.close(scratch.create("a.dat"))
            raise RuntimeError("benchmark failed")
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(mpiexec() is None, reason="no mpiexec: install the [test] extra (mpich wheel)")
def test_two_ranks_aggregate_and_shared_file(tmp_path: Path) -> None:
    target = tmp_path / "fs"
    target.mkdir()
    out = tmp_path / "io.json"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "ai_ready", "--quiet", "bench", "io",
                           "--path", str(target), *QUICK_SMALL, "--samples", "16", "--checkpoint-gb", "0.005",
                           "-o", str(out)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(target.iterdir()) == []
    records = load_results(out).records
    assert {r.rank for r in records if r.case == "seq-write-1M"} == {0, 1}
    aggregate = next(r for r in records if r.case == "seq-write-1M-aggregate")
    assert aggregate.params["ranks"] == 2 and len(aggregate.params["per_rank_gbs"]) == 2
    assert aggregate.value == pytest.approx(aggregate.value) and aggregate.value > 0
    shared = {r.case: r for r in records if r.case.startswith("mpiio")}
    assert shared["mpiio-write-shared"].status == "ok" and shared["mpiio-read-shared"].status == "ok"
    assert shared["mpiio-write-shared"].params["file_bytes"] == 2 * (8 << 20)
    # ranks share rank 0's scratch folder: their samples and checkpoints must not collide
    assert {r.rank for r in records if r.case == "dataloader-w0" and r.status == "ok"} == {0, 1}
    assert {r.rank for r in records if r.case == "checkpoint-load-torch" and r.status == "ok"} == {0, 1}
