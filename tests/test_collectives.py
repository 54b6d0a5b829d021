"""Collectives: nccl-tests' definitions, exact expected values, the fit, and real 2-rank jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, cli_env, mpiexec
from ai_ready.bench.collectives.fit import FitError, fit_alpha_beta
from ai_ready.bench.collectives.ops import (
    COLLECTIVES, bandwidths, count_wrong, parse_size, pattern, size_sweep,
)
from ai_ready.cli import main
from ai_ready.records import load_results

MIB = 1 << 20
FAST = ["--warmup", "0.005", "--min-time", "0.02"]
needs_mpi = pytest.mark.skipif(mpiexec() is None, reason="no mpiexec: install the [test] extra (mpich wheel)")


# --- nccl-tests definitions ------------------------------------------------------------------

@pytest.mark.parametrize(
    "op, n, expected_bus",
    [  # 1 GB in 1 s: algbw 1 GB/s; busbw by nccl-tests doc/PERFORMANCE.md
        ("all_reduce", 2, 1.0), ("all_reduce", 8, 1.75), ("all_reduce", 1, 0.0),
        ("all_gather", 4, 0.75), ("reduce_scatter", 8, 0.875), ("all_to_all", 2, 0.5),
        ("broadcast", 8, 1.0), ("sendrecv", 2, 1.0),
    ],
)
def test_bus_bandwidth_factors(op: str, n: int, expected_bus: float) -> None:
    algbw, busbw = bandwidths(COLLECTIVES[op], 10**9, 1.0, n)
    assert algbw == pytest.approx(1.0)
    assert busbw == pytest.approx(expected_bus)


def test_sizes_follow_nccl_tests() -> None:
    assert size_sweep(8, 64, 2) == [8, 16, 32, 64]
    assert size_sweep(8, 100, 4) == [8, 32]
    assert parse_size("256M") == 256 * MIB and parse_size("1G") == 1 << 30 and parse_size("64k") == 65536
    for bad in ("", "12X", "M", "-4", "1.5M"):
        with pytest.raises(ValueError):
            parse_size(bad)
    # split operations give every rank whole elements: S rounds down to a multiple of n × type size
    assert COLLECTIVES["all_gather"].count_for(100, 4, 4) == 24
    assert COLLECTIVES["all_reduce"].count_for(100, 4, 4) == 25


def simulate(op_name: str, n: int, count: int) -> list[np.ndarray]:
    """A plain NumPy model of each collective on the ranks' input patterns."""
    op = COLLECTIVES[op_name]
    inputs = [pattern(r, *op.input_span(r, n, count)) for r in range(n)]
    per = count // n
    if op_name == "all_reduce":
        return [sum(inputs)] * n
    if op_name == "all_gather":
        return [np.concatenate(inputs)] * n
    if op_name == "reduce_scatter":
        total = sum(inputs)
        return [total[r * per:(r + 1) * per] for r in range(n)]
    if op_name == "all_to_all":
        return [np.concatenate([inputs[s][r * per:(r + 1) * per] for s in range(n)]) for r in range(n)]
    if op_name == "broadcast":
        return [inputs[0]] * n
    return [inputs[(r - 1) % n] for r in range(n)]  # sendrecv


@pytest.mark.parametrize("op", sorted(COLLECTIVES))
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_expected_values_match_a_model_of_the_collective(op: str, n: int) -> None:
    count = 24 * n
    outputs = simulate(op, n, count)
    for r in range(n):
        expected = COLLECTIVES[op].expected(r, n, count)
        assert count_wrong(outputs[r], expected, 0.0) == 0
        # inputs differ between ranks, so a block from the wrong rank is caught
        if n > 1 and op != "broadcast":
            assert count_wrong(outputs[(r + 1) % n], expected, 0.0) > 0 or op in ("all_reduce", "all_gather")


def test_count_wrong_counts_nan_and_shape() -> None:
    expected = np.arange(6.0)
    got = expected.copy()
    got[2], got[4] = np.nan, 99
    assert count_wrong(got, expected, 0.0) == 2
    assert count_wrong(np.zeros(3), expected, 0.0) == 6


# --- alpha-beta fit ----------------------------------------------------------------------------

def test_fit_recovers_alpha_and_beta_from_noisy_data() -> None:
    rng = np.random.default_rng(7)
    alpha_us, beta_gbs = 12.0, 25.0
    sizes = np.array(size_sweep(8, 256 * MIB, 2), dtype=float)
    times = alpha_us + sizes / (beta_gbs * 1e3)  # GB/s = 1e3 bytes/µs
    noisy = times * rng.normal(1.0, 0.02, times.size)
    fit = fit_alpha_beta(sizes, noisy)
    assert fit.alpha_us == pytest.approx(alpha_us, rel=0.05)
    assert fit.beta_gbs == pytest.approx(beta_gbs, rel=0.05)
    assert fit.r2 > 0.99 and fit.points == sizes.size
    assert (fit.min_bytes, fit.max_bytes) == (8, 256 * MIB)
    assert fit.predict_us(MIB) == pytest.approx(alpha_us + MIB / (beta_gbs * 1e3), rel=0.05)


def test_fit_keeps_latency_non_negative_and_refuses_flat_data() -> None:
    sizes = [1e3, 1e4, 1e5, 1e6]
    fit = fit_alpha_beta(sizes, [s / 1e3 for s in sizes])  # pure bandwidth, 1 GB/s
    assert fit.alpha_us == pytest.approx(0.0, abs=1e-9) and fit.beta_gbs == pytest.approx(1.0)
    with pytest.raises(FitError):
        fit_alpha_beta(sizes, [5.0, 5.0, 5.0, 5.0])
    with pytest.raises(FitError):
        fit_alpha_beta([8], [1.0])


# --- single-process runs (world size 1 is valid, as for NCCL on one GPU) -----------------------

def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--ops", "all_reduce,allreduce"], "unknown operation 'allreduce'"),
        (["--min-bytes", "8X"], "--min-bytes 8X"),
        (["--min-bytes", "1M", "--max-bytes", "1K"], "larger than --max-bytes"),
        (["--dtype", "complex64"], "unknown --dtype complex64"),
        (["--backend", "mpi", "--dtype", "bfloat16"], "no standard MPI datatype"),
        (["--backend", "nccl"], "needs CUDA GPUs"),
        (["--max-bytes", "64G"], "needs about"),
        (["--factor", "1"], "--factor"),
        (["--timeout", "0"], "--timeout"),
    ],
)
def test_bad_input_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], fragment: str) -> None:
    code, _, err = call(capsys, "bench", "collectives", *args, "-o", str(tmp_path / "c.json"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in err


def test_single_rank_gloo_sweep(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    code, stdout, err = call(capsys, "bench", "collectives", "--backend", "gloo", "--ops", "all_reduce,all_gather",
                             "--max-bytes", "4K", "--factor", "8", *FAST, "-o", str(out))
    assert code == 0, err
    assert "Avg bus bandwidth" in stdout
    doc = load_results(out)
    assert doc.meta["status"] == "complete" and doc.meta["world_size"] == 1
    skipped = [r for r in doc.records if r.status == "skipped" and not r.case.startswith("fit-")]
    assert [r.case for r in skipped] == ["all_reduce-out-of-place"]  # torch has no out-of-place all_reduce
    fits = [r for r in doc.records if r.case.startswith("fit-")]
    assert fits and all(r.status == "skipped" and "one rank" in (r.reason or "") for r in fits)
    points = [r for r in doc.records if r.metric == "busbw"]
    assert {r.params["bytes"] for r in points} == {8, 64, 512, 4096}
    assert all(r.value == 0.0 for r in points if r.params["op"] == "all_reduce")  # 2(n-1)/n = 0 for n = 1


def test_a_one_rank_run_of_every_operation_exits_0_and_says_why(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    """One GPU or one process: operations that need a peer are skipped with the reason, nothing is a failure, and
    the sweep stops at 64 KiB (only latency means something) unless --max-bytes says otherwise."""
    out = tmp_path / "c.json"
    code, _, err = call(capsys, "bench", "collectives", "--backend", "gloo", "--quick", *FAST, "-o", str(out))
    assert code == 0, err
    assert "one rank" in err and "only the latency means something" in err
    doc = load_results(out)
    assert not [r for r in doc.records if r.status == "failed"]
    sendrecv = [r for r in doc.records if r.params.get("op") == "sendrecv"]
    assert sendrecv and all(r.status == "skipped" and "needs a peer" in (r.reason or "") for r in sendrecv)
    assert max(r.params["bytes"] for r in doc.records if "bytes" in r.params) <= 64 * 1024


# --- real 2-rank jobs ----------------------------------------------------------------------------

def run_two_ranks(tmp_path: Path, backend: str, *extra: str, fault: str | None = None,
                  timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], Path, float]:
    out = tmp_path / f"{backend}.json"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    entry = [str(REPO / "tests" / "helpers" / "collectives_fault.py")] if fault else ["-m", "ai_ready"]
    if fault:
        env["AI_READY_TEST_FAULT"] = fault
    start = time.monotonic()
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, *entry, "bench", "collectives",
                           "--backend", backend, *extra, "-o", str(out)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc, out, time.monotonic() - start


@needs_mpi
@pytest.mark.parametrize("backend", ["gloo", "mpi"])
def test_two_ranks_all_ops_correct(tmp_path: Path, backend: str) -> None:
    proc, out, _ = run_two_ranks(tmp_path, backend, "--max-bytes", "64K", "--factor", "16", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = load_results(out)
    assert doc.meta["world_size"] == 2 and doc.meta["status"] == "complete"
    points = [r for r in doc.records if "bytes" in r.params]
    assert points and all(r.status == "ok" for r in points)
    assert all(r.value == 0 for r in points if r.metric == "wrong")
    ops = {r.params["op"] for r in points}
    assert ops == set(COLLECTIVES)
    for r in points:
        if r.metric == "time":
            per_rank = r.timing["per_rank"]
            assert [p["rank"] for p in per_rank] == [0, 1]
            assert r.value == pytest.approx(max(p["median_us"] for p in per_rank))  # the slowest rank's
            assert r.rank == max(per_rank, key=lambda p: p["median_us"])["rank"]
    # busbw = algbw × nccl-tests factor for n = 2, point by point
    by_key = {(r.case, r.metric): r for r in points}
    for (case, metric), r in by_key.items():
        if metric == "busbw":
            factor = COLLECTIVES[r.params["op"]].bus_factor(2)
            assert r.value == pytest.approx(by_key[(case, "algbw")].value * factor)
    fits = [r for r in doc.records if r.metric in ("alpha", "beta")]
    assert fits and all(r.params["min_bytes"] == 8 for r in fits if r.status == "ok")
    if backend == "mpi":  # no GPU here: device buffers are skipped with the reason, never silently
        device = [r for r in doc.records if r.params.get("buffers") == "device"]
        assert len(device) == len(COLLECTIVES) and all(r.status == "skipped" and "CUDA" in r.reason for r in device)


@needs_mpi
def test_ranks_option_starts_local_ranks(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    proc = subprocess.run([sys.executable, "-m", "ai_ready", "--quiet", "bench", "collectives", "--ranks", "2",
                           "--backend", "mpi", "--ops", "all_reduce", "--max-bytes", "1K", "--factor", "32", *FAST,
                           "-o", str(out)], capture_output=True, text=True, timeout=240, env=cli_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_results(out).meta["world_size"] == 2


@needs_mpi
@pytest.mark.parametrize("backend", ["gloo", "mpi"])
def test_planted_wrong_result_is_caught(tmp_path: Path, backend: str) -> None:
    proc, out, _ = run_two_ranks(tmp_path, backend, "--ops", "all_reduce", "--max-bytes", "64", "--factor", "8",
                                 *FAST, fault="wrong:1")
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = load_results(out)
    wrong = [r for r in doc.records if r.metric == "wrong"]
    assert wrong and all(r.status == "failed" and r.value >= 1 for r in wrong)
    times = [r for r in doc.records if r.metric == "time" and "bytes" in r.params]
    assert all(r.status == "failed" and "not timed" in r.reason for r in times)  # never a fast wrong answer


@needs_mpi
@pytest.mark.parametrize("backend", ["gloo", "mpi"])
def test_hung_rank_times_out_and_keeps_finished_sizes(tmp_path: Path, backend: str) -> None:
    proc, out, elapsed = run_two_ranks(tmp_path, backend, "--ops", "all_reduce", "--max-bytes", "512",
                                       "--factor", "8", "--timeout", "3", *FAST, fault="hang:1:512")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert elapsed < 50  # the sleeping rank (60 s) did not hold the job
    assert "ai-ready: timeout:" in proc.stderr and "at 512B" in proc.stderr and "rank(s) 1" in proc.stderr
    doc = load_results(out)
    assert doc.meta["status"] == "timeout"
    finished = {r.params["bytes"] for r in doc.records if r.metric == "time" and r.status == "ok"}
    assert finished == {8, 64}
    [timeout] = [r for r in doc.records if r.case == "timeout"]
    assert timeout.params["missing_ranks"] == [1] and "all_reduce" in timeout.reason
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_busbw_ceiling_from_the_catalog() -> None:
    from ai_ready.bench.ceiling import busbw_ceiling
    from ai_ready.catalog import load_catalog

    catalog = load_catalog()
    dgx = catalog.system("dgx-h100")
    inside = busbw_ceiling(catalog, dgx, multi_node=False)
    assert inside["value"] == 450.0 and inside["kind"] == "catalog" and "scale-up" in inside["label"]
    assert inside["references"] and inside["source"]
    across = busbw_ceiling(catalog, dgx, multi_node=True)
    assert across["value"] == pytest.approx(400 / 8)  # 400 Gb/s NIC per GPU = 50 GB/s


@needs_mpi
def test_bad_input_under_mpiexec_prints_one_line(tmp_path: Path) -> None:
    proc, _, _ = run_two_ranks(tmp_path, "mpi", "--dtype", "bfloat16")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ai-ready:")]
    assert proc.returncode == 2 and len(lines) == 1 and "no standard MPI datatype" in lines[0]
    assert "Traceback" not in proc.stderr


def test_torchrun_ranks_over_gloo(tmp_path: Path) -> None:
    """torchrun's world: coordination and the step watchdog run over torch.distributed itself."""
    out = tmp_path / "torchrun.json"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "ai_ready", "--quiet", "bench", "collectives", "--backend", "gloo",
                           "--ops", "all_reduce,sendrecv", "--max-bytes", "4K", "--factor", "16", *FAST,
                           "-o", str(out)], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = load_results(out)
    assert doc.meta["world_size"] == 2 and doc.meta["environment"]["launcher"]["name"] == "torchrun"
    points = [r for r in doc.records if r.metric == "wrong"]
    assert points and all(r.status == "ok" and r.value == 0 for r in points)
