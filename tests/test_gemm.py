from __future__ import annotations

import pytest
import torch

from ai_ready.bench import gemm
from ai_ready.bench.context import BenchContext
from ai_ready.errors import InputError
from ai_ready.measure.harness import Budget

TINY = Budget(warmup_s=0.01, min_time_s=0.02, min_samples=3, max_samples=5)
CEILING = {"value": 1.0, "unit": "TFLOP/s", "kind": "declared", "label": "test", "source": "assumption: test"}


def ctx() -> BenchContext:
    return BenchContext(device="cpu", device_name="test-cpu", budget=TINY)


@pytest.mark.parametrize("dtype", gemm.CPU_DTYPES)
def test_case_is_checked_then_timed(dtype: str) -> None:
    case = gemm.GemmCase("square", 96, 96, 96, dtype)
    [record] = gemm.run_case(case, ctx(), CEILING)
    assert record.status == "ok"
    assert record.check["passed"] and record.check["value"] < gemm.TOLERANCE[dtype]
    assert record.unit == "TFLOP/s" and record.value > 0
    assert record.params["flops"] == 2 * 96**3
    assert record.pct_of_ceiling == pytest.approx(100 * record.value)
    # throughput samples and raw times describe the same measurement
    times = record.timing["samples_s"]
    assert len(times) == len(record.samples) >= TINY.min_samples
    assert record.samples[0] == pytest.approx(case.flops / times[0] / 1e12)


def test_wrong_kernel_is_a_failed_record_not_a_fast_one(monkeypatch: pytest.MonkeyPatch) -> None:
    real = gemm.make_operands

    def broken(case, device, generator):
        ops = real(case, device, generator)
        good = ops.call
        ops.call = lambda: good().mul_(1.01)  # 1% off: far above the fp32 tolerance
        return ops

    monkeypatch.setattr(gemm, "make_operands", broken)
    [record] = gemm.run_case(gemm.GemmCase("square", 64, 64, 64, "fp32"), ctx(), CEILING)
    assert record.status == "failed" and record.value is None and not record.samples
    assert "wrong result" in record.reason and record.check["passed"] is False


def test_unwritten_output_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = gemm.make_operands

    def lazy(case, device, generator):
        ops = real(case, device, generator)
        ops.call = lambda: ops.out  # never computes: the NaN poison survives
        return ops

    monkeypatch.setattr(gemm, "make_operands", lazy)
    [record] = gemm.run_case(gemm.GemmCase("square", 64, 64, 64, "fp32"), ctx(), CEILING)
    assert record.status == "failed" and "not fully written" in record.reason


def test_gpu_only_dtype_is_skipped_on_cpu_with_reason() -> None:
    [record] = gemm.run_case(gemm.GemmCase("square", 64, 64, 64, "tf32"), ctx(), None)
    assert record.status == "skipped" and "CUDA" in record.reason


def test_operands_are_random_not_zero() -> None:
    ops = gemm.make_operands(gemm.GemmCase("square", 32, 32, 32, "bf16"), "cpu", torch.Generator().manual_seed(1))
    assert ops.a.dtype == torch.bfloat16 and ops.a.float().std() > 0.5 and ops.b.count_nonzero() > 1000
    again = gemm.make_operands(gemm.GemmCase("square", 32, 32, 32, "bf16"), "cpu", torch.Generator().manual_seed(1))
    assert torch.equal(ops.a, again.a)  # seeded: reruns check the same data


def test_float8_blocks_are_selected_as_bytes() -> None:
    """fp8 operands are indexed through a byte view; values must survive exactly."""
    a = torch.randn(8, 16).to(torch.float8_e4m3fn)
    rows = torch.tensor([5, 1])
    assert torch.equal(gemm._select64(a, 0, rows), a.to(torch.float64)[rows])
    b = torch.randn(16, 8).to(torch.float8_e4m3fn).t()  # column-major view, as for _scaled_mm
    cols = torch.tensor([3, 0, 7])
    assert torch.equal(gemm._select64(b, 1, cols), b.to(torch.float64)[:, cols])


def test_fp8_needs_multiples_of_16() -> None:
    reason = gemm.unsupported_reason("fp8", ctx(), (48, 32, 20))
    assert reason is not None and "multiples of 16" in reason


def test_case_lists() -> None:
    quick = gemm.build_cases("cpu", True, ("fp32",))
    assert [c.shape for c in quick] == ["square", "square", "square", "llm-mlp-up"]
    up = quick[-1]
    assert (up.m, up.n, up.k) == (1024, 4096, 1024)  # tokens × 4·hidden × hidden
    full = gemm.build_cases("cuda", False, ("bf16",))
    assert {c.shape for c in full} >= {"square", "llm-qkv", "llm-attn-out", "llm-mlp-up", "llm-mlp-down"}
    custom = gemm.build_cases("cpu", True, ("fp32", "bf16"), sizes=[(64, 32, 16)])
    assert [c.name for c in custom] == ["gemm-64x32x16-fp32", "gemm-64x32x16-bf16"]


@pytest.mark.parametrize("text", ["0", "-5", "12x4", "abc", "1024,", "1e3"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(InputError, match="accepted"):
        gemm.parse_sizes(text)


def test_bad_dtype_names_the_accepted_ones() -> None:
    with pytest.raises(InputError, match="fp32, tf32, bf16, fp16, fp8"):
        gemm.parse_dtypes("fp99", "cpu")
    assert gemm.parse_dtypes("BF16, fp32,bf16", "cpu") == ("bf16", "fp32")


def test_llm_shapes_parse() -> None:
    assert gemm.parse_llm("8192x4096,16x8") == [(8192, 4096), (16, 8)]
    assert gemm.parse_llm("none") == []
    with pytest.raises(InputError):
        gemm.parse_llm("8192")


def test_figure_above_its_ceiling_is_flagged() -> None:
    low = dict(CEILING, value=1e-9)
    [record] = gemm.run_case(gemm.GemmCase("square", 64, 64, 64, "fp32"), ctx(), low)
    assert record.pct_of_ceiling > 100
    assert any("of its ceiling" in w and "turbo" in w for w in record.warnings)


def test_noise_warning_matches_the_record_statistics() -> None:
    from ai_ready.records import Record

    r = Record.from_samples([1.0, 2.0, 1.0, 3.0], benchmark="b", case="c", params={}, metric="m", unit="u")
    assert len(r.warnings) == 1 and f"CV {r.stats['cv']:.1%}" in r.warnings[0]
