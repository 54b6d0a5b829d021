"""Memory bandwidth and kernels: STREAM definitions, CPU runs, skip records, bad input, and the GPU
benchmarks' host logic against a NumPy stand-in for CuPy (no GPU here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakecupy import LAUNCH_S, FakeClock, FakeKernels, make_cupy
from ai_ready.bench.context import BenchContext
from ai_ready.bench.memory import cpu, gpu
from ai_ready.bench.memory.stream import STREAM_OPS, max_rel_error
from ai_ready.cli import main
from ai_ready.cli.memory import annotate_cache
from ai_ready.measure.harness import Budget
from ai_ready.records import load_results

TINY = Budget(warmup_s=0.005, min_time_s=0.01, min_samples=3, max_samples=5, min_block_s=1e-4)
FAST = ["--warmup", "0.005", "--min-time", "0.02", "--size", "4M"]


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_stream_bytes_follow_the_stream_convention() -> None:
    assert [STREAM_OPS[n].bytes_moved(1000) for n in ("copy", "scale", "add", "triad")] == [8000, 8000, 12000, 12000]


def test_max_rel_error_catches_wrong_and_unwritten_values() -> None:
    b, c = np.ones(4, np.float32), np.full(4, 2.0, np.float32)
    good = (b + 3.0 * c).astype(np.float32)
    assert max_rel_error(good, [b, c], STREAM_OPS["triad"]) == 0.0
    bad = good.copy()
    bad[2] += 0.01
    assert max_rel_error(bad, [b, c], STREAM_OPS["triad"]) == pytest.approx(0.01 / 7, rel=1e-4)  # float32 7.01
    bad[1] = np.nan
    assert max_rel_error(bad, [b, c], STREAM_OPS["triad"]) == float("inf")


def test_cpu_memory_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.json"
    code, stdout, err = call(capsys, "bench", "memory", *FAST, "-o", str(out))
    assert code == 0, err
    records = {r.case: r for r in load_results(out).records}
    copy = records["copy"]
    assert copy.status == "ok" and copy.params["role"] == "ceiling" and copy.params["threads"] >= 1
    for name in ("scale", "add", "triad"):
        r = records[name]
        assert r.status == "ok" and r.check["passed"] and r.unit == "GB/s"
        assert r.ceiling["kind"] == "measured" and r.ceiling["value"] == copy.value
        assert r.pct_of_ceiling == pytest.approx(100 * r.value / copy.value)
        assert r.params["bytes_moved"] == STREAM_OPS[name].bytes_moved(r.params["elements"])
    for name in ("d2d-copy", "h2d-pinned", "h2d-pageable", "d2h-pinned", "d2h-pageable"):
        assert records[name].status == "skipped" and "no CUDA device" in records[name].reason
    assert "measured ceiling" in stdout


def test_cpu_kernels_run_is_all_skip_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k.json"
    code, _, err = call(capsys, "bench", "kernels", *FAST, "-o", str(out))
    assert code == 0, err
    records = load_results(out).records
    assert [r.case for r in records] == ["reduce-sum", "bias-gelu", "launch-empty", "launch-empty-graph"]
    assert all(r.status == "skipped" and "no CUDA device" in r.reason for r in records)
    assert [r.unit for r in records][2:] == ["us", "us"]


def test_planted_wrong_cpu_result_fails_and_is_not_timed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = cpu.torch_call

    def wrong_triad(name, inputs, out):
        fn = real(name, inputs, out)
        if name != "triad":
            return fn
        return lambda: (fn(), out.__setitem__(0, out[0] + 1.0))

    monkeypatch.setattr(cpu, "torch_call", wrong_triad)
    out = tmp_path / "m.json"
    code, _, err = call(capsys, "bench", "memory", *FAST, "-o", str(out))
    assert code == 1
    triad = next(r for r in load_results(out).records if r.case == "triad")
    assert triad.status == "failed" and "wrong result" in triad.reason and triad.value is None


@pytest.mark.parametrize(
    "args, fragment",
    [(["--size", "1000G"], "needs 3 arrays"), (["--size", "lots"], "--size lots"), (["--size", "8"], "at least 16"),
     (["--device", "cuda"], "no CUDA device"), (["--device", "tpu"], "--device tpu")],
)
def test_bad_input_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], fragment: str) -> None:
    code, _, err = call(capsys, "bench", "memory", *args, "-o", str(tmp_path / "m.json"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0]


def test_cache_annotation_warns_when_arrays_fit_in_cache() -> None:
    from ai_ready.records import Record

    r = Record.from_samples([10.0, 11.0], benchmark="memory", case="copy", params={}, metric="bandwidth", unit="GB/s",
                            timing={"cache": "warm"})
    annotate_cache(r, 64 << 20, 256 << 20)
    assert "they fit" in r.timing["cache"] and any("cache bandwidth" in w for w in r.warnings)
    r2 = Record.from_samples([10.0], benchmark="memory", case="copy", params={}, metric="bandwidth", unit="GB/s",
                             timing={"cache": "warm"})
    annotate_cache(r2, 512 << 20, 256 << 20)
    assert "exceeds it" in r2.timing["cache"] and not r2.warnings


# --- GPU host logic on a NumPy stand-in for CuPy ------------------------------------------------

@pytest.fixture
def fake_gpu() -> tuple[object, FakeKernels, BenchContext]:
    clock = FakeClock()
    return make_cupy(clock), FakeKernels(clock), BenchContext(device="cpu", device_name="fake-gpu", budget=TINY)


HBM = {"value": 3350.0, "unit": "GB/s", "kind": "catalog", "label": "h100-sxm HBM bandwidth", "source": "S4"}
COPY = {"value": 3000.0, "unit": "GB/s", "kind": "measured", "label": "measured device-to-device copy"}


@pytest.mark.parametrize("name", ["copy", "scale", "add", "triad"])
def test_gpu_stream_kernel_checked_timed_and_counted(fake_gpu, name: str) -> None:
    cp, kernels, ctx = fake_gpu
    elements = 4096
    record = gpu.with_ceilings(gpu.stream_kernel(cp, kernels, name, elements, ctx), COPY, HBM)
    assert record.status == "ok" and record.check["passed"]
    assert record.params["vector_width"] == 4 and kernels.launched[0] == f"stream_{name}_vec4"
    expected = STREAM_OPS[name].bytes_moved(elements) / LAUNCH_S / 1e9  # exact on the fake clock
    assert record.value == pytest.approx(expected)
    assert record.pct_of_ceiling == pytest.approx(100 * expected / 3000.0)
    assert record.other_ceilings[0]["pct"] == pytest.approx(100 * expected / 3350.0)


def test_gpu_scalar_kernel_when_not_divisible_by_four(fake_gpu) -> None:
    cp, kernels, ctx = fake_gpu
    record = gpu.stream_kernel(cp, kernels, "triad", 4097, ctx)
    assert record.status == "ok" and record.params["vector_width"] == 1 and kernels.launched[0] == "stream_triad"


def test_gpu_wrong_kernel_is_a_failed_record(fake_gpu) -> None:
    cp, _, ctx = fake_gpu
    kernels = FakeKernels(FakeClock(), broken="triad")
    record = gpu.stream_kernel(cp, kernels, "triad", 4096, ctx)
    assert record.status == "failed" and "wrong result" in record.reason and len(kernels.launched) == 1


def test_gpu_reduce_and_bias_gelu(fake_gpu) -> None:
    cp, kernels, ctx = fake_gpu
    reduce = gpu.reduce_sum(cp, kernels, 8192, ctx)
    assert reduce.status == "ok" and reduce.value == pytest.approx(8192 * 4 / LAUNCH_S / 1e9)
    gelu = gpu.bias_gelu(cp, kernels, 2 * gpu.GELU_COLS, ctx)
    assert gelu.status == "ok" and gelu.check["value"] < gpu.GELU_TOLERANCE
    assert gelu.params["bytes_moved"] == (2 * 2 * gpu.GELU_COLS + gpu.GELU_COLS) * 4
