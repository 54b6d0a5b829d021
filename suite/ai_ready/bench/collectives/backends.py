"""Backends: who moves the bytes. torch.distributed (NCCL on GPUs, gloo on CPUs) and MPI through mpi4py.

Each backend allocates the buffers for one (operation, placement, count),
fills them with the rank's input pattern, and returns a :class:`Prepared`
whose ``run`` is the single call that gets timed. Placements the library's
API cannot express (an out-of-place ``torch.distributed.all_reduce``) are
reported with the reason instead of being emulated by extra copies, which
would distort the figure.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ai_ready.bench.collectives.ops import BROADCAST_ROOT, Collective, pattern

#: Accepted dtype names (nccl-tests' short names too) -> canonical name.
DTYPE_ALIASES = {
    "float32": "float32", "float": "float32", "fp32": "float32",
    "float64": "float64", "double": "float64", "fp64": "float64",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "half": "float16", "fp16": "float16",
    "int32": "int32", "int": "int32",
}
DTYPES = ("float32", "float64", "bfloat16", "float16", "int32")
#: dtypes MPI's standard datatypes cover (numpy has no bfloat16; MPI has no 16-bit float).
MPI_DTYPES = ("float32", "float64", "int32")


@dataclass
class Prepared:
    """Buffers for one case: `run` is the timed call, `output` reads the result back to the host."""

    run: Callable[[], Any]
    output: Callable[[], np.ndarray]
    poison: Callable[[], None]


class TorchBackend:
    """torch.distributed collectives on torch tensors (gloo: CPU tensors, NCCL: GPU tensors)."""

    def __init__(self, name: str, dtype: str, device: str, group: Any = None) -> None:
        import torch
        import torch.distributed as dist

        self.name, self.dtype_name, self.device = name, dtype, device
        self._torch, self._dist, self._group = torch, dist, group
        self.buffers = "device" if device.startswith("cuda") else "host"
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        self._dtype = getattr(torch, dtype)
        self.type_size = torch.tensor([], dtype=self._dtype).element_size()
        self.eps = float(torch.finfo(self._dtype).eps) if self._dtype.is_floating_point else 0.0

    def unsupported(self, op: Collective, placement: str) -> str | None:
        missing = {
            ("all_reduce", "out-of-place"): "torch.distributed.all_reduce works in place only",
            ("all_to_all", "in-place"): "torch.distributed.all_to_all_single has no in-place form",
            ("broadcast", "out-of-place"): "torch.distributed.broadcast works in place only",
            ("sendrecv", "in-place"): "torch.distributed send/recv need separate buffers",
        }
        return missing.get((op.name, placement))

    def _tensor(self, values: np.ndarray) -> Any:
        return self._torch.from_numpy(values).to(device=self.device, dtype=self._dtype)

    def _empty(self, elems: int) -> Any:
        return self._torch.empty(elems, device=self.device, dtype=self._dtype)

    def prepare(self, op: Collective, placement: str, count: int) -> Prepared:
        dist, n, rank = self._dist, self.size, self.rank
        group = self._group
        start, length = op.input_span(rank, n, count)
        inp = self._tensor(pattern(rank, start, length))
        per = count // n if op.split else count
        in_place = placement == "in-place"
        if op.name == "all_reduce":
            out = inp
            run = lambda: dist.all_reduce(out, group=group)  # noqa: E731
        elif op.name == "all_gather":
            out = self._empty(count)
            if in_place:
                out[rank * per:(rank + 1) * per].copy_(inp)
                inp = out[rank * per:(rank + 1) * per]
            gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in torch 2.10+
            run = lambda: gather(out, inp, group=group)  # noqa: E731
        elif op.name == "reduce_scatter":
            out = inp[rank * per:(rank + 1) * per] if in_place else self._empty(per)
            scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
            run = lambda: scatter(out, inp, group=group)  # noqa: E731
        elif op.name == "all_to_all":
            out = self._empty(count)
            run = lambda: dist.all_to_all_single(out, inp, group=group)  # noqa: E731
        elif op.name == "broadcast":
            out = inp
            root = dist.get_global_rank(group, BROADCAST_ROOT) if group is not None else BROADCAST_ROOT
            run = lambda: dist.broadcast(out, src=root, group=group)  # noqa: E731
        elif op.name == "sendrecv":
            out = self._empty(count)
            nxt, prv = (rank + 1) % n, (rank - 1) % n

            def run() -> None:
                ops = [dist.P2POp(dist.isend, inp, nxt, group=group), dist.P2POp(dist.irecv, out, prv, group=group)]
                for work in dist.batch_isend_irecv(ops):
                    work.wait()
        else:  # pragma: no cover - the op table and this switch are kept in step by tests
            raise ValueError(op.name)
        floating = self._dtype.is_floating_point

        def poison() -> None:
            """NaN where the operation must write; in-place buffers keep the input they start from."""
            if not floating:
                return
            if not in_place:
                out.fill_(float("nan"))
            elif op.name == "all_gather":
                own = inp.clone()
                out.fill_(float("nan"))
                inp.copy_(own)

        return Prepared(run=run, output=lambda: out.detach().to("cpu", self._torch.float64).numpy(), poison=poison)

    def barrier(self) -> None:
        self._dist.barrier(group=self._group)


class MPIBackend:
    """MPI collectives through mpi4py on NumPy (host) or CuPy (device) buffers."""

    name = "mpi"

    def __init__(self, comm: Any, dtype: str, buffers: str = "host") -> None:
        from mpi4py import MPI

        self._MPI, self._comm = MPI, comm
        self.dtype_name, self.buffers = dtype, buffers
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._np_dtype = np.dtype(dtype)
        self.type_size = self._np_dtype.itemsize
        self.eps = float(np.finfo(self._np_dtype).eps) if self._np_dtype.kind == "f" else 0.0
        if buffers == "device":
            import cupy

            self._xp = cupy
        else:
            self._xp = np

    def unsupported(self, op: Collective, placement: str) -> str | None:
        if op.name == "broadcast" and placement == "out-of-place":
            return "MPI_Bcast works in place only"
        return None

    def prepare(self, op: Collective, placement: str, count: int) -> Prepared:
        MPI, comm, xp, n, rank = self._MPI, self._comm, self._xp, self.size, self.rank
        start, length = op.input_span(rank, n, count)
        inp = xp.asarray(pattern(rank, start, length).astype(self._np_dtype))
        per = count // n if op.split else count
        in_place = placement == "in-place"
        nxt, prv = (rank + 1) % n, (rank - 1) % n
        sync = self._sync
        if op.name == "all_reduce":
            out = inp if in_place else xp.empty(count, dtype=self._np_dtype)
            send = MPI.IN_PLACE if in_place else inp
            run = lambda: (comm.Allreduce(send, out, op=MPI.SUM), sync())  # noqa: E731
            region = out
        elif op.name == "all_gather":
            out = xp.empty(count, dtype=self._np_dtype)
            if in_place:
                out[rank * per:(rank + 1) * per] = inp
            send = MPI.IN_PLACE if in_place else inp
            run = lambda: (comm.Allgather(send, out), sync())  # noqa: E731
            region = out
        elif op.name == "reduce_scatter":
            out = inp if in_place else xp.empty(per, dtype=self._np_dtype)
            send = MPI.IN_PLACE if in_place else inp
            # MPI's in-place result lands in the first `per` elements of the buffer
            run = lambda: (comm.Reduce_scatter_block(send, out, op=MPI.SUM), sync())  # noqa: E731
            region = out[:per]
        elif op.name == "all_to_all":
            out = inp if in_place else xp.empty(count, dtype=self._np_dtype)
            send = MPI.IN_PLACE if in_place else inp
            run = lambda: (comm.Alltoall(send, out), sync())  # noqa: E731
            region = out
        elif op.name == "broadcast":
            out = inp
            run = lambda: (comm.Bcast(out, root=BROADCAST_ROOT), sync())  # noqa: E731
            region = out
        elif op.name == "sendrecv":
            if in_place:
                out = inp
                run = lambda: (comm.Sendrecv_replace(out, dest=nxt, source=prv), sync())  # noqa: E731
            else:
                out = xp.empty(count, dtype=self._np_dtype)
                run = lambda: (comm.Sendrecv(inp, dest=nxt, recvbuf=out, source=prv), sync())  # noqa: E731
            region = out
        else:  # pragma: no cover
            raise ValueError(op.name)
        floating = self._np_dtype.kind == "f"

        def poison() -> None:
            """NaN where the operation must write; in-place buffers keep the input they start from."""
            if not floating:
                return
            if not in_place:
                out.fill(np.nan)
            elif op.name == "all_gather":
                out.fill(np.nan)
                out[rank * per:(rank + 1) * per] = inp

        def output() -> np.ndarray:
            host = region.get() if hasattr(region, "get") else region
            return np.asarray(host, dtype=np.float64)

        return Prepared(run=run, output=output, poison=poison)

    def _sync(self) -> None:
        if self.buffers == "device":
            self._xp.cuda.get_current_stream().synchronize()

    def barrier(self) -> None:
        self._comm.Barrier()


def mpi_cuda_aware() -> tuple[bool, str]:
    """(aware, why): asks the MPI library itself (MPIX_Query_cuda_support, MPICH 4+ / Open MPI 4+)."""
    try:
        libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libmpi" in line.split()[-1]})
    except OSError:
        libs = []
    for path in libs:
        try:
            query = ctypes.CDLL(path).MPIX_Query_cuda_support
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        if query():
            return True, f"{path} reports CUDA support (MPIX_Query_cuda_support)"
        return False, "the MPI library is not CUDA-aware (MPIX_Query_cuda_support returned 0)"
    return False, "cannot tell whether the MPI library is CUDA-aware (no MPIX_Query_cuda_support); device buffers skipped"
