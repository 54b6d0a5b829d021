"""Rank coordination for the harness: broadcast, gather and barrier over the launcher's engine.

ai-ready never brings its own transport: multi-rank runs use MPI (mpi4py) or
torch.distributed, whichever started the ranks. A single process gets
:class:`SingleComm`, so every benchmark runs the same code with one rank.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

#: Environment variables that name the world size under each launcher.
MPI_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
TORCHRUN_SIZE_VAR = "WORLD_SIZE"


class Request(Protocol):
    """A non-blocking point-to-point message: poll with test(), collect with value."""

    def test(self) -> bool: ...

    def wait(self) -> None: ...

    @property
    def value(self) -> int | None: ...


class Comm(Protocol):
    rank: int
    size: int
    name: str

    def broadcast(self, obj: T, root: int = 0) -> T: ...

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None: ...

    def barrier(self) -> None: ...

    def isend_int(self, value: int, dest: int, tag: int) -> Request: ...

    def irecv_int(self, source: int, tag: int) -> Request: ...


class SingleComm:
    """One rank: every collective is the identity."""

    rank = 0
    size = 1
    name = "single"

    def broadcast(self, obj: T, root: int = 0) -> T:
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        return [obj]

    def barrier(self) -> None:
        return None

    def isend_int(self, value: int, dest: int, tag: int) -> Request:
        raise RuntimeError("a single rank has nobody to send to")

    def irecv_int(self, source: int, tag: int) -> Request:
        raise RuntimeError("a single rank has nobody to receive from")


class _MPIRequest:
    def __init__(self, request: Any) -> None:
        self._request, self._done, self._value = request, False, None

    def test(self) -> bool:
        if not self._done:
            self._done, self._value = self._request.test()
        return self._done

    def wait(self) -> None:
        if not self._done:
            self._value = self._request.wait()
            self._done = True

    @property
    def value(self) -> int | None:
        return self._value


class MPIComm:
    """mpi4py's COMM_WORLD (initialising MPI if an earlier import deferred it)."""

    name = "mpi"

    def __init__(self, comm: Any | None = None) -> None:
        from mpi4py import MPI

        if not MPI.Is_initialized():
            # the step watchdog polls requests from a second thread
            MPI.Init_thread(MPI.THREAD_MULTIPLE)
            atexit.register(_finalize_mpi)
        self._comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def broadcast(self, obj: T, root: int = 0) -> T:
        return self._comm.bcast(obj, root=root)

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        return self._comm.gather(obj, root=root)

    def barrier(self) -> None:
        self._comm.Barrier()

    def isend_int(self, value: int, dest: int, tag: int) -> Request:
        return _MPIRequest(self._comm.isend(int(value), dest=dest, tag=tag))

    def irecv_int(self, source: int, tag: int) -> Request:
        return _MPIRequest(self._comm.irecv(source=source, tag=tag))

    def abort(self, code: int) -> None:
        self._comm.Abort(code)

    @property
    def raw(self) -> Any:
        """The mpi4py communicator, for benchmarks that call MPI directly."""
        return self._comm


def _finalize_mpi() -> None:
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()


class _TorchRequest:
    def __init__(self, work: Any, buffer: Any) -> None:
        self._work, self._buffer = work, buffer

    def test(self) -> bool:
        return bool(self._work.is_completed())

    def wait(self) -> None:
        self._work.wait()

    @property
    def value(self) -> int | None:
        return int(self._buffer.item()) if self.test() else None


class TorchComm:
    """torch.distributed, on a gloo group so coordination never touches the GPU (torchrun's world).

    With NCCL as the default backend a gloo group is created for the
    coordination messages; with gloo the default group serves.
    """

    name = "torch.distributed"

    def __init__(self, group: Any = None) -> None:
        import torch.distributed as dist

        self._dist = dist
        if group is None and dist.get_backend() != "gloo":
            group = dist.new_group(backend="gloo")
        self._group = group
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()

    def broadcast(self, obj: T, root: int = 0) -> T:
        box = [obj]
        self._dist.broadcast_object_list(box, src=root, group=self._group)
        return box[0]

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        out: list[Any] | None = [None] * self.size if self.rank == root else None
        self._dist.gather_object(obj, out, dst=root, group=self._group)
        return out

    def barrier(self) -> None:
        self._dist.barrier(group=self._group)

    def isend_int(self, value: int, dest: int, tag: int) -> Request:
        import torch

        buffer = torch.tensor([int(value)], dtype=torch.int64)
        return _TorchRequest(self._dist.isend(buffer, dst=dest, group=self._group, tag=tag), buffer)

    def irecv_int(self, source: int, tag: int) -> Request:
        import torch

        buffer = torch.zeros(1, dtype=torch.int64)
        return _TorchRequest(self._dist.irecv(buffer, src=source, group=self._group, tag=tag), buffer)


def launched_world_size(environ: dict[str, str] | None = None) -> tuple[str, int]:
    """(engine, size) the launcher announced: "mpi", "torch" or "single"."""
    env = os.environ if environ is None else environ
    for var in MPI_SIZE_VARS:
        if env.get(var, "").isdigit() and int(env[var]) > 1:
            return "mpi", int(env[var])
    if env.get("TORCHELASTIC_RUN_ID") or (env.get(TORCHRUN_SIZE_VAR, "").isdigit() and env.get("LOCAL_RANK")):
        size = int(env.get(TORCHRUN_SIZE_VAR, "1"))
        if size > 1:
            return "torch", size
    if env.get("SLURM_NTASKS", "").isdigit() and int(env["SLURM_NTASKS"]) > 1 and env.get("SLURM_PROCID"):
        return "mpi", int(env["SLURM_NTASKS"])
    return "single", 1


def world_comm(device: str = "cpu") -> Comm:
    """The communicator for this process: torch.distributed if already up, else what the launcher says."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return TorchComm()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    engine, _size = launched_world_size()
    if engine == "mpi":
        return MPIComm()
    if engine == "torch":
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        return TorchComm()
    return SingleComm()


def agree(comm: Comm, ok: bool) -> tuple[bool, list[int]]:
    """All ranks learn whether every rank is ok, and which ranks are not.

    Used before a collective phase so a rank that failed its preparation
    (a wrong result, an out-of-memory) makes every rank skip together
    instead of leaving the others waiting in a broadcast.
    """
    flags = comm.gather(bool(ok))
    bad = [i for i, flag in enumerate(flags or []) if not flag] if comm.rank == 0 else []
    bad = comm.broadcast(bad)
    return not bad, bad
