"""Checkpoint save and load: how long a training job stalls to write, and later read, its state.

Two writers are measured on the same synthetic transformer state:

* ``torch.save`` into one file per rank (what most training scripts do), and
* ``torch.distributed.checkpoint`` (DCP) into one folder per rank, run as a
  single process (``no_dist=True``) so every rank measures its own share.

A save counts only once it is durable: ``fsync`` is inside the timed region.
Before a load the files' page cache is dropped (``posix_fadvise DONTNEED``),
so the load reads the storage, not memory; where that cannot be done the
record says the read was warm. Every load is compared tensor by tensor with
what was saved before any figure is reported. Each repeat writes new files
and deletes them after its load, so the disk holds at most one checkpoint.
"""

from __future__ import annotations

import inspect
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ai_ready.bench.context import BenchContext
from ai_ready.bench.io.scratch import Scratch
from ai_ready.records import Record
from ai_ready.stop import reraise_if_stopping

BENCHMARK = "io"
#: Injectable host clock (tests may replace it).
CLOCK: Callable[[], float] = time.perf_counter
GB = 1e9

#: The synthetic state's shape: layers of a transformer block and the vocabulary / hidden ratio.
LAYERS = 8
VOCAB_PER_HIDDEN = 8
#: Hidden sizes are multiples of this (as real models' are); the smallest allowed is one step.
HIDDEN_STEP = 8
#: Weight matrices per layer as (rows, cols) in units of the hidden size: qkv, out proj, mlp up, mlp down.
LAYER_MATRICES = {"attn.qkv": (3, 1), "attn.proj": (1, 1), "mlp.fc1": (4, 1), "mlp.fc2": (1, 4)}
#: 1-D tensors per layer (each of hidden size): two layer norms with bias, and the projection biases.
LAYER_VECTORS = ("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "attn.proj.bias", "mlp.fc2.bias")
MODEL_DTYPE = torch.bfloat16
OPTIM_DTYPE = torch.float32
OPTIM_MOMENTS = ("exp_avg", "exp_avg_sq")
#: Random magnitudes are drawn from [MIN_MAGNITUDE, 1): never zero, so a file of zeros cannot pass the check.
MIN_MAGNITUDE = 1e-3

API_TORCH = "torch.save"
API_DCP = "torch.distributed.checkpoint"
CACHE_WRITE = "write: fsync inside the timed region"
CACHE_DROPPED = "page cache dropped (posix_fadvise DONTNEED)"
CACHE_WARM = "warm: could not drop the page cache"
READ = "read: "
#: DCP warns that it runs in one process; here that is the intent (each rank measures its own share).
DCP_SINGLE_PROCESS_WARNING = "torch.distributed is disabled, unavailable or uninitialized"


def _bytes_per_hidden_sq() -> int:
    """Bytes of one layer's matrices plus the embedding, per hidden², with model and optimizer copies."""
    per_element = MODEL_DTYPE.itemsize + len(OPTIM_MOMENTS) * OPTIM_DTYPE.itemsize
    layer = sum(r * c for r, c in LAYER_MATRICES.values())
    return per_element * (LAYERS * layer + VOCAB_PER_HIDDEN)


def _random(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Random magnitudes in [MIN_MAGNITUDE, 1) with alternating signs: a real spread of values
    (nothing compresses or dedups them away) and never a zero, at the cost of one pass of memory."""
    values = torch.empty(shape, dtype=torch.float32).uniform_(MIN_MAGNITUDE, 1.0, generator=generator)
    values.view(-1)[::2].neg_()
    return values.to(dtype)


def synthetic_state(total_bytes: int, seed: int) -> dict[str, torch.Tensor]:
    """A transformer-like checkpoint of about `total_bytes` (within 2%), so the file system sees
    the size mix real checkpoints have: few large tensors holding most bytes, many tiny ones.

    The mix, with hidden size h chosen to fill the budget:

    * ``LAYERS`` layers, each with 2-D weights qkv (3h×h), proj (h×h), fc1 (4h×h), fc2 (h×4h)
      as ``model.layers.{i}.*`` in bf16, and the 1-D norms and biases (h each) in fp32;
    * for every weight, Adam's moments ``optim.exp_avg.*`` and ``optim.exp_avg_sq.*`` in fp32
      (the moments are ~80% of the bytes, as in mixed-precision training);
    * one embedding ``model.embed.weight`` (V×h, bf16, with its moments), whose row count V
      (about 8h) is trimmed last so the total lands on `total_bytes`.
    """
    hidden = int((total_bytes / _bytes_per_hidden_sq()) ** 0.5) // HIDDEN_STEP * HIDDEN_STEP
    if hidden < HIDDEN_STEP:
        raise ValueError(f"a checkpoint of {total_bytes} bytes is too small for the synthetic transformer mix")
    generator = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for layer in range(LAYERS):
        for name, (rows, cols) in LAYER_MATRICES.items():
            shapes[f"layers.{layer}.{name}.weight"] = ((rows * hidden, cols * hidden), MODEL_DTYPE)
        for name in LAYER_VECTORS:
            shapes[f"layers.{layer}.{name}"] = ((hidden,), OPTIM_DTYPE)
    used = sum(_state_bytes(shape, dtype) for shape, dtype in shapes.values())
    vocab = max(1, (total_bytes - used) // _state_bytes((hidden,), MODEL_DTYPE))
    shapes["embed.weight"] = ((vocab, hidden), MODEL_DTYPE)
    state: dict[str, torch.Tensor] = {}
    for name, (shape, dtype) in shapes.items():
        state[f"model.{name}"] = _random(shape, dtype, generator)
        for moment in OPTIM_MOMENTS:
            state[f"optim.{moment}.{name}"] = _random(shape, OPTIM_DTYPE, generator)
    return state


def _state_bytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Bytes of one parameter plus its optimizer moments."""
    elements = 1
    for n in shape:
        elements *= n
    return elements * (dtype.itemsize + len(OPTIM_MOMENTS) * OPTIM_DTYPE.itemsize)


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of tensor data in a state dict (the figure bandwidths are computed from)."""
    return sum(t.numel() * t.element_size() for t in state.values())


def mismatch(expected: dict[str, torch.Tensor], got: Any) -> str | None:
    """Why `got` differs from `expected` (first difference), or None when every tensor is equal."""
    if not isinstance(got, dict) or set(got) != set(expected):
        return "the loaded checkpoint does not hold the saved tensor names"
    for name, tensor in expected.items():
        other = got[name]
        if not isinstance(other, torch.Tensor) or other.dtype != tensor.dtype or other.shape != tensor.shape:
            return f"tensor {name} came back with another dtype or shape"
        if not torch.equal(other, tensor):
            return f"tensor {name} came back with different values"
    return None


def drop_cache(path: Path) -> bool:
    """Ask the kernel to forget the clean cached pages of `path`, so the next read hits storage."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Make every file a library wrote under `folder` durable, and the folder entries with them."""
    for root, _dirs, files in os.walk(folder):
        for name in files + ["."]:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def tree_files(folder: Path) -> list[Path]:
    return [Path(root) / name for root, _dirs, files in os.walk(folder) for name in files]


@dataclass
class OpSeries:
    """The raw timings of one case across repeats, or why it failed."""

    case: str
    api: str
    op: str
    seconds: list[float] = field(default_factory=list)
    file_bytes: int = 0
    cache: str = ""
    reason: str | None = None

    def fail(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


# --- torch.save -------------------------------------------------------------------------------


def _torch_repeat(state: dict[str, torch.Tensor], scratch: Scratch, name: str,
                  save: OpSeries, load: OpSeries) -> None:
    """One durable torch.save, cache drop, and torch.load with its equality check."""
    path = scratch.file(name)
    try:
        start = CLOCK()
        with os.fdopen(scratch.create(name), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
            save.seconds.append(CLOCK() - start)
        save.file_bytes = load.file_bytes = path.stat().st_size
        load.cache = READ + (CACHE_DROPPED if drop_cache(path) else CACHE_WARM)
        start = CLOCK()
        loaded = torch.load(path, weights_only=True, map_location="cpu")
        load.seconds.append(CLOCK() - start)
        problem = mismatch(state, loaded)
        if problem:
            _fail_both(save, load, problem)
    except Exception as exc:  # noqa: BLE001 - any failure is this case's result, reported with its reason
        reraise_if_stopping(exc)  # a signal surfacing inside the library is not this case's failure
        _fail_error(save, load, f"{API_TORCH} round trip failed: {type(exc).__name__}: {exc}")
    finally:
        if path.exists() and not path.is_symlink():
            path.unlink()


# --- torch.distributed.checkpoint -------------------------------------------------------------


def dcp_module() -> tuple[Any, str | None]:
    """DCP, or None with the reason this torch build cannot offer it."""
    if not torch.distributed.is_available():
        return None, "torch was built without torch.distributed, so torch.distributed.checkpoint is unavailable"
    try:
        import torch.distributed.checkpoint as dcp
    except ImportError as exc:
        return None, f"torch.distributed.checkpoint cannot be imported: {exc}"
    return dcp, None


def _dcp_save(dcp: Any, state: dict[str, torch.Tensor], folder: Path) -> None:
    """Single-process DCP save into `folder`."""
    _dcp_call(dcp.save, state, folder, "storage_writer", dcp.FileSystemWriter)


def _dcp_load(dcp: Any, target: dict[str, torch.Tensor], folder: Path) -> None:
    """Single-process DCP load from `folder`, in place into `target`."""
    _dcp_call(dcp.load, target, folder, "storage_reader", dcp.FileSystemReader)


def _dcp_call(call: Callable[..., Any], state: dict[str, torch.Tensor], folder: Path, storage_arg: str,
              storage: Callable[[str], Any]) -> None:
    """Newer torch names the folder with `checkpoint_id`; older torch takes a file-system storage
    object instead. The form is chosen from the signature, so a TypeError inside DCP stays an error."""
    if "checkpoint_id" in inspect.signature(call).parameters:
        where: dict[str, Any] = {"checkpoint_id": folder}
    else:
        where = {storage_arg: storage(str(folder))}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DCP_SINGLE_PROCESS_WARNING)
        call(state, no_dist=True, **where)


def _dcp_repeat(dcp: Any, state: dict[str, torch.Tensor], scratch: Scratch, name: str,
                save: OpSeries, load: OpSeries) -> None:
    """One durable DCP save, cache drop, and DCP load into a pre-allocated state, checked."""
    folder = scratch.subdir(name)
    try:
        start = CLOCK()
        _dcp_save(dcp, state, folder)
        fsync_tree(folder)
        save.seconds.append(CLOCK() - start)
        files = tree_files(folder)
        save.file_bytes = load.file_bytes = sum(p.stat().st_size for p in files)
        dropped = all([drop_cache(p) for p in files])
        load.cache = READ + (CACHE_DROPPED if dropped else CACHE_WARM)
        target = {k: torch.empty_like(v) for k, v in state.items()}
        start = CLOCK()
        _dcp_load(dcp, target, folder)
        load.seconds.append(CLOCK() - start)
        problem = mismatch(state, target)
        if problem:
            _fail_both(save, load, problem)
    except Exception as exc:  # noqa: BLE001 - DCP wraps errors in CheckpointException, not an OSError
        reraise_if_stopping(exc)  # a signal surfacing inside the library is not this case's failure
        _fail_error(save, load, f"{API_DCP} round trip failed: {type(exc).__name__}: {exc}")
    finally:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)


def _fail_both(save: OpSeries, load: OpSeries, problem: str) -> None:
    """A round trip that does not return the saved state vouches for neither half."""
    load.fail(f"wrong result: {problem}")
    save.fail(f"unverified: the saved checkpoint did not load back equal ({problem})")


def _fail_error(save: OpSeries, load: OpSeries, reason: str) -> None:
    """An error mid round trip: neither half has a trustworthy figure."""
    save.fail(reason)
    load.fail(reason)


# --- records ----------------------------------------------------------------------------------


def series_records(ctx: BenchContext, series: OpSeries, state: dict[str, torch.Tensor],
                   repeats: int) -> list[Record]:
    """A bandwidth record and its companion time record, or failed ones carrying the reason."""
    nbytes = tensor_bytes(state)
    params = {"op": series.op, "bytes": nbytes, "file_bytes": series.file_bytes, "tensors": len(state),
              "repeats": repeats, "api": series.api, "per_rank": True}
    timing = {"clock": "host", "cache": series.cache, "samples_s": list(series.seconds)}
    common = dict(benchmark=BENCHMARK, case=series.case, params=params, timing=timing, **ctx.record_fields())
    if series.reason is not None:
        return [Record(metric="bandwidth", unit="GB/s", status="failed", reason=series.reason, **common),
                Record(metric="time", unit="s", status="failed", reason=series.reason, **common)]
    bandwidth = [nbytes / s / GB for s in series.seconds]
    return [Record.from_samples(bandwidth, metric="bandwidth", unit="GB/s", **common),
            Record.from_samples(series.seconds, warn_noise=False, metric="time", unit="s", **common)]


def skipped_records(ctx: BenchContext, cases: list[str], reason: str, repeats: int) -> list[Record]:
    return [Record(benchmark=BENCHMARK, case=case, metric="bandwidth", unit="GB/s", status="skipped",
                   reason=reason, params={"op": case.split("-")[1], "api": API_DCP, "repeats": repeats,
                                          "per_rank": True}, **ctx.record_fields())
            for case in cases]


def run_checkpoint(ctx: BenchContext, scratch: Scratch, total_bytes: int, repeats: int) -> list[Record]:
    """Save and load a synthetic checkpoint `repeats` times with torch.save and with DCP, each rank
    its own files; ranks start each timed step together, as they do when a job checkpoints."""
    if repeats < 1:
        raise ValueError(f"checkpoint repeats must be at least 1, got {repeats}")
    state = synthetic_state(total_bytes, ctx.seed + ctx.rank)
    rank = ctx.rank
    torch_save = OpSeries("checkpoint-save-torch", API_TORCH, "save", cache=CACHE_WRITE)
    torch_load = OpSeries("checkpoint-load-torch", API_TORCH, "load")
    dcp_save = OpSeries("checkpoint-save-dcp", API_DCP, "save", cache=CACHE_WRITE)
    dcp_load = OpSeries("checkpoint-load-dcp", API_DCP, "load")
    dcp, dcp_reason = dcp_module()
    for i in range(repeats):
        ctx.comm.barrier()  # every rank reaches every barrier, failed or not, so none waits forever
        if torch_save.reason is None:
            _torch_repeat(state, scratch, f"ckpt-r{rank}-{i}.pt", torch_save, torch_load)
        ctx.comm.barrier()
        if dcp is not None and dcp_save.reason is None:
            _dcp_repeat(dcp, state, scratch, f"dcp-r{rank}-{i}", dcp_save, dcp_load)
    records = series_records(ctx, torch_save, state, repeats) + series_records(ctx, torch_load, state, repeats)
    if dcp_reason is not None:
        return records + skipped_records(ctx, [dcp_save.case, dcp_load.case], dcp_reason, repeats)
    return records + series_records(ctx, dcp_save, state, repeats) + series_records(ctx, dcp_load, state, repeats)
