"""GPU memory benchmarks through CuPy: the device-to-device copy ceiling, host-device transfers,
ai-ready's STREAM kernels, a reduction, a fused bias+GELU and kernel launch latency.

Every kernel is checked against NumPy before it is timed (output poisoned with
NaN first); bandwidth figures count each input read once and each output
written once, and are shown against the measured device-to-device copy (the
ceiling this device actually reaches) and the catalog HBM peak.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ai_ready.bench.ceiling import apply_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.bench.memory.kernels import VECTOR_WIDTH, Kernels
from ai_ready.bench.memory.stream import SCALAR, STREAM_OPS, STREAM_TOLERANCE, max_rel_error, sample_indices
from ai_ready.measure.harness import measure
from ai_ready.measure.timers import CupyEventTimer, HostTimer
from ai_ready.records import Record

UNIT = "GB/s"
ITEM = 4  # float32
#: |sum - ref| / sum(|x|): each thread accumulates in double, so only the order of additions differs.
REDUCE_TOLERANCE = 1e-9
#: |gelu - ref| / (|v| + 1): tanhf against NumPy's tanh, both in the same tanh approximation of GELU.
GELU_TOLERANCE = 1e-5
GELU_COLS = 4096
GELU_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
#: Empty kernels captured into one CUDA graph for the graph-replay latency.
GRAPH_KERNELS = 100


def _fields(ctx: BenchContext, benchmark: str, case: str, params: dict[str, Any], metric: str = "bandwidth",
            unit: str = UNIT) -> dict[str, Any]:
    return dict(benchmark=benchmark, case=case, params=params, metric=metric, unit=unit, **ctx.record_fields())


def _bandwidth_record(fields: dict[str, Any], call: Callable[[], Any], ctx: BenchContext, bytes_moved: int,
                      check: dict[str, Any] | None, timer: Any) -> Record:
    m = measure(call, ctx.budget, timer, ctx.comm, label=fields["case"])
    samples = [bytes_moved / t / 1e9 for t in m.samples_s]
    return Record.from_samples(samples, timing=m.timing_dict(), check=check, **fields)


def _failed(fields: dict[str, Any], check: dict[str, Any], reason: str) -> Record:
    return Record(status="failed", reason=reason, check=check, **fields)


def _check(error: float, tolerance: float, written: bool, checked: int) -> dict[str, Any]:
    return {"passed": written and error <= tolerance, "metric": "max_rel_error",
            "value": error if math.isfinite(error) else None, "tolerance": tolerance,
            "reference": "NumPy float64", "all_written": written, "checked_elements": checked}


def _check_reason(check: dict[str, Any]) -> str:
    if not check["all_written"]:
        return "output not fully written (NaN poison survived)"
    return f"wrong result: max relative error {check['value']} exceeds {check['tolerance']:g}"


def with_ceilings(record: Record, copy_ceiling: dict[str, Any] | None, hbm: dict[str, Any] | None) -> Record:
    """Measured copy as the ceiling; the catalog HBM peak beside it."""
    if record.status != "ok":
        return record
    apply_ceiling(record, copy_ceiling)
    if hbm is not None:
        record.other_ceilings.append(dict(hbm, pct=100.0 * record.value / hbm["value"]))
    return record


def d2d_copy(cp: Any, elements: int, ctx: BenchContext, hbm: dict[str, Any] | None) -> Record:
    """cudaMemcpy device to device: bytes read plus bytes written; this run's measured ceiling."""
    src = cp.random.standard_normal(elements, dtype=cp.float32)
    dst = cp.full(elements, cp.nan, dtype=cp.float32)
    nbytes = elements * ITEM
    runtime = cp.cuda.runtime
    call = lambda: runtime.memcpyAsync(dst.data.ptr, src.data.ptr, nbytes, runtime.memcpyDeviceToDevice,  # noqa: E731
                                       cp.cuda.get_current_stream().ptr)
    params = {"op": "d2d-copy", "impl": "cudaMemcpy", "elements": elements, "dtype": "float32",
              "bytes_moved": 2 * nbytes, "device": "cuda", "role": "ceiling"}
    fields = _fields(ctx, "memory", "d2d-copy", params)
    call()
    cp.cuda.get_current_stream().synchronize()
    equal = bool(cp.array_equal(dst, src))
    check = _check(0.0 if equal else math.inf, 0.0, equal, elements)
    if not equal:
        return _failed(fields, check, "device-to-device copy is not an exact copy")
    record = _bandwidth_record(fields, call, ctx, 2 * nbytes, check, CupyEventTimer(cp))
    return with_ceilings(record, None, hbm)


def measured_copy_ceiling(record: Record) -> dict[str, Any] | None:
    if record.status != "ok":
        return None
    return {"value": float(record.value), "unit": UNIT, "kind": "measured",
            "label": "measured device-to-device copy (cudaMemcpy)", "source": "this run, case d2d-copy"}


def transfer(cp: Any, direction: str, memory: str, elements: int, ctx: BenchContext) -> Record:
    """Host to device or back, from pinned (page-locked) or pageable host memory."""
    import cupyx

    nbytes = elements * ITEM
    host = cupyx.empty_pinned(elements, dtype=np.float32) if memory == "pinned" else np.empty(elements, np.float32)
    host[:] = np.random.default_rng(ctx.seed).standard_normal(elements, dtype=np.float32)
    dev = cp.full(elements, cp.nan, dtype=cp.float32)
    stream = cp.cuda.get_current_stream()
    if direction == "h2d":
        call = lambda: dev.set(host, stream=stream)  # noqa: E731
    else:
        dev[:] = cp.asarray(host)
        host_out = cupyx.empty_pinned(elements, dtype=np.float32) if memory == "pinned" else np.empty(elements, np.float32)
        host = host_out
        call = lambda: dev.get(stream=stream, out=host_out)  # noqa: E731
    params = {"op": direction, "memory": memory, "elements": elements, "bytes_moved": nbytes, "device": "cuda"}
    fields = _fields(ctx, "memory", f"{direction}-{memory}", params)
    call()
    stream.synchronize()
    equal = bool(np.array_equal(cp.asnumpy(dev), np.asarray(host)))
    check = _check(0.0 if equal else math.inf, 0.0, equal, elements)
    if not equal:
        return _failed(fields, check, "transferred data differs from the source")
    return _bandwidth_record(fields, call, ctx, nbytes, check, HostTimer(sync=stream.synchronize))


def stream_kernel(cp: Any, kernels: Kernels, name: str, elements: int, ctx: BenchContext) -> Record:
    """One of ai-ready's STREAM kernels (float4 when aligned), checked against NumPy, then timed."""
    op = STREAM_OPS[name]
    inputs = [cp.random.standard_normal(elements, dtype=cp.float32) for _ in range(op.inputs)]
    out = cp.empty(elements, dtype=cp.float32)
    vector = kernels.vectorizable(out, *inputs)
    n = np.int64(elements // VECTOR_WIDTH if vector else elements)
    scalar = (np.float32(SCALAR),) if name in ("scale", "triad") else ()
    args = (*inputs, out, *scalar, n)
    kernel = f"stream_{name}_vec4" if vector else f"stream_{name}"
    call = lambda: kernels.launch(kernel, args)  # noqa: E731
    params = {"op": name, "impl": "cupy-rawkernel", "kernel": kernel, "elements": elements, "dtype": "float32",
              "bytes_moved": op.bytes_moved(elements), "vector_width": VECTOR_WIDTH if vector else 1,
              "device": "cuda"}
    fields = _fields(ctx, "memory", name, params)
    out.fill(cp.nan)
    call()
    cp.cuda.get_current_stream().synchronize()
    written = bool(cp.isfinite(out).all())
    index = sample_indices(elements, np.random.default_rng(ctx.seed))
    gi = cp.asarray(index)
    error = max_rel_error(cp.asnumpy(out[gi]), [cp.asnumpy(x[gi]) for x in inputs], op) if written else math.inf
    check = _check(error, STREAM_TOLERANCE, written, int(index.size))
    if not check["passed"]:
        return _failed(fields, check, _check_reason(check))
    return _bandwidth_record(fields, call, ctx, params["bytes_moved"], check, CupyEventTimer(cp))


def reduce_sum(cp: Any, kernels: Kernels, elements: int, ctx: BenchContext) -> Record:
    x = cp.random.standard_normal(elements, dtype=cp.float32)
    partial = cp.full(kernels.blocks, cp.nan, dtype=cp.float64)
    vector = kernels.vectorizable(x)
    kernel = "reduce_sum_vec4" if vector else "reduce_sum"
    args = (x, partial, np.int64(elements // VECTOR_WIDTH if vector else elements))
    call = lambda: kernels.launch(kernel, args)  # noqa: E731
    params = {"op": "reduce-sum", "impl": "cupy-rawkernel", "kernel": kernel, "elements": elements,
              "dtype": "float32", "bytes_moved": elements * ITEM, "device": "cuda"}
    fields = _fields(ctx, "kernels", "reduce-sum", params)
    call()
    got = float(cp.asnumpy(partial).sum())
    host = cp.asnumpy(x).astype(np.float64)
    ref, magnitude = float(host.sum()), float(np.abs(host).sum())
    error = abs(got - ref) / magnitude if math.isfinite(got) else math.inf
    check = _check(error, REDUCE_TOLERANCE, math.isfinite(got), elements)
    if not check["passed"]:
        return _failed(fields, check, _check_reason(check))
    return _bandwidth_record(fields, call, ctx, params["bytes_moved"], check, CupyEventTimer(cp))


def gelu_reference(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1.0 + np.tanh(GELU_SQRT_2_OVER_PI * (v + GELU_CUBIC * v ** 3)))


def bias_gelu(cp: Any, kernels: Kernels, elements: int, ctx: BenchContext) -> Record:
    cols = GELU_COLS
    rows = max(1, elements // cols)
    x = cp.random.standard_normal((rows, cols), dtype=cp.float32)
    bias = cp.random.standard_normal(cols, dtype=cp.float32)
    out = cp.full((rows, cols), cp.nan, dtype=cp.float32)
    call = lambda: kernels.launch("bias_gelu", (x, bias, out, np.int64(rows), np.int64(cols)))  # noqa: E731
    bytes_moved = (2 * rows * cols + cols) * ITEM
    params = {"op": "bias-gelu", "impl": "cupy-rawkernel", "kernel": "bias_gelu", "elements": rows * cols,
              "rows": rows, "cols": cols, "dtype": "float32", "bytes_moved": bytes_moved, "device": "cuda"}
    fields = _fields(ctx, "kernels", "bias-gelu", params)
    call()
    written = bool(cp.isfinite(out).all())
    index = sample_indices(rows * cols, np.random.default_rng(ctx.seed))
    gi = cp.asarray(index)
    flat_x, flat_out = x.ravel(), out.ravel()
    v = cp.asnumpy(flat_x[gi]).astype(np.float64) + cp.asnumpy(bias).astype(np.float64)[index % cols]
    got = cp.asnumpy(flat_out[gi]).astype(np.float64)
    error = float(np.max(np.abs(got - gelu_reference(v)) / (np.abs(v) + 1.0))) if written else math.inf
    check = _check(error, GELU_TOLERANCE, written, int(index.size))
    if not check["passed"]:
        return _failed(fields, check, _check_reason(check))
    return _bandwidth_record(fields, call, ctx, bytes_moved, check, CupyEventTimer(cp))


def launch_latency(cp: Any, kernels: Kernels, ctx: BenchContext, graph: bool) -> Record:
    """Host time per empty-kernel launch, plain or as one kernel of a replayed CUDA graph."""
    stream = cp.cuda.Stream(non_blocking=True)
    empty = kernels["empty_kernel"]
    case = "launch-empty-graph" if graph else "launch-empty"
    params = {"op": case, "impl": "cupy-rawkernel", "kernels_per_call": GRAPH_KERNELS if graph else 1,
              "device": "cuda"}
    fields = _fields(ctx, "kernels", case, params, metric="latency", unit="us")
    with stream:
        if graph:
            stream.begin_capture()
            for _ in range(GRAPH_KERNELS):
                empty((1,), (1,), ())
            captured = stream.end_capture()
            call = lambda: captured.launch(stream)  # noqa: E731
        else:
            call = lambda: empty((1,), (1,), ())  # noqa: E731
        call()
        stream.synchronize()  # raises if the launch failed
        check = {"passed": True, "metric": "launch completed", "value": None, "tolerance": None,
                 "reference": "cudaStreamSynchronize returned success"}
        m = measure(call, ctx.budget, HostTimer(sync=stream.synchronize), ctx.comm, label=case)
    per_kernel = params["kernels_per_call"]
    samples = [t / per_kernel * 1e6 for t in m.samples_s]
    return Record.from_samples(samples, timing=m.timing_dict(), check=check, **fields)
