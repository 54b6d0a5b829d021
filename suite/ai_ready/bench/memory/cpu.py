"""Host memory bandwidth: STREAM copy, scale, add and triad through torch with `out=`, on all cores.

Each operation is a single pass over arrays much larger than the last-level
cache, so the figure is DRAM bandwidth. The copy's bandwidth is this run's
measured ceiling for the other three.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ai_ready.bench.ceiling import apply_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.bench.memory.stream import SCALAR, STREAM_OPS, STREAM_TOLERANCE, max_rel_error, sample_indices
from ai_ready.measure.harness import measure
from ai_ready.records import Record

BENCHMARK = "memory"
UNIT = "GB/s"


def torch_call(name: str, inputs: list[torch.Tensor], out: torch.Tensor) -> Callable[[], Any]:
    """The single-pass torch call for a STREAM operation, writing into `out`."""
    a = inputs[0]
    if name == "copy":
        return lambda: out.copy_(a)
    if name == "scale":
        return lambda: torch.mul(a, SCALAR, out=out)
    b = inputs[1]
    if name == "add":
        return lambda: torch.add(a, b, out=out)
    if name == "triad":
        return lambda: torch.add(a, b, alpha=SCALAR, out=out)
    raise ValueError(name)


def run_stream(name: str, elements: int, ctx: BenchContext, ceiling: dict[str, Any] | None) -> Record:
    """Check then time one operation; the record's value is the median GB/s."""
    op = STREAM_OPS[name]
    generator = torch.Generator().manual_seed(ctx.seed)
    inputs = [torch.randn(elements, generator=generator, dtype=torch.float32) for _ in range(op.inputs)]
    out = torch.empty(elements, dtype=torch.float32)
    call = torch_call(name, inputs, out)
    params = {"op": name, "impl": "torch-cpu", "elements": elements, "dtype": "float32",
              "bytes_moved": op.bytes_moved(elements), "threads": torch.get_num_threads(), "device": "cpu"}
    if name == "copy":
        params["role"] = "ceiling"
    out.fill_(float("nan"))
    call()
    written = bool(torch.isfinite(out).all())
    index = sample_indices(elements, np.random.default_rng(ctx.seed))
    error = max_rel_error(out.numpy()[index], [t.numpy()[index] for t in inputs], op) if written else float("inf")
    check = {"passed": written and error <= STREAM_TOLERANCE, "metric": "max_rel_error",
             "value": error if np.isfinite(error) else None, "tolerance": STREAM_TOLERANCE,
             "reference": "NumPy float64", "all_written": written, "checked_elements": int(index.size)}
    fields = dict(benchmark=BENCHMARK, case=name, params=params, metric="bandwidth", unit=UNIT, check=check,
                  **ctx.record_fields())
    if not check["passed"]:
        reason = "output not fully written" if not written else \
            f"wrong result: max relative error {error:.3g} exceeds {STREAM_TOLERANCE:g}"
        return Record(status="failed", reason=reason, **fields)
    m = measure(call, ctx.budget, ctx.timer, ctx.comm, label=name)
    samples = [params["bytes_moved"] / t / 1e9 for t in m.samples_s]
    record = Record.from_samples(samples, timing=m.timing_dict(), **fields)
    return apply_ceiling(record, ceiling)


def copy_ceiling(copy_record: Record) -> dict[str, Any] | None:
    """The measured host copy as the ceiling of the other operations."""
    if copy_record.status != "ok" or copy_record.value is None:
        return None
    threads = copy_record.params.get("threads")
    return {"value": float(copy_record.value), "unit": UNIT, "kind": "measured",
            "label": f"measured host copy (torch, {threads} threads)", "source": "this run, case copy"}
