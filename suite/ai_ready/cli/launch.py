"""Starting and joining ranks: through the engines centres use (mpiexec, srun, torchrun), never our own.

* `relaunch`: `--ranks N` on one node starts the same command under `mpiexec -n N`.
* `setup_torch`: torch.distributed for gloo or NCCL under whatever launched us; under an MPI
  launcher rank 0 picks the rendezvous address and a free port and broadcasts them over MPI.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import sys
from pathlib import Path

import click

from ai_ready import proctree
from ai_ready.cli.console import note
from ai_ready.errors import InputError
from ai_ready.measure.comm import Comm, MPIComm, SingleComm, TorchComm, launched_world_size
from ai_ready.measure.watchdog import GRACE_S

#: torch.distributed's own timeout sits above ai-ready's step watchdog so ours speaks first.
TORCH_TIMEOUT_MARGIN_S = GRACE_S + 30


def relaunch(ctx: click.Context, ranks: int, out: Path) -> None:
    """`--ranks N`: start this same command under mpiexec with N ranks, on this node, and exit with its code."""
    engine, size = launched_world_size()
    if engine != "single":
        raise InputError(f"--ranks {ranks}: already running as one of {size} ranks under a launcher; "
                         "drop --ranks or the launcher")
    argv = mpiexec_argv(ctx, ranks, out)
    note(f"starting {ranks} ranks: {' '.join(argv[:3])} ...")
    raise SystemExit(proctree.run(argv))  # a stop signal here is forwarded to every rank first


def mpiexec_argv(ctx: click.Context, ranks: int, out: Path, skip: tuple[str, ...] = ("ranks", "output")) -> list[str]:
    """This command line again, under `mpiexec -n ranks`, writing to `out`, without the options in `skip`."""
    argv = [find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "ai_ready"]
    root = ctx.find_root().params
    argv += ["--quiet"] if root.get("quiet") else []
    argv += ["--debug"] if root.get("debug") else []
    argv += ctx.command_path.split()[1:]
    params = ctx.command.params
    argv += [str(ctx.params[p.name]) for p in params if isinstance(p, click.Argument)]
    for param in params:
        value = ctx.params.get(param.name) if param.name else None
        if not isinstance(param, click.Option) or param.name in skip or value is None:
            continue
        if param.is_flag and param.secondary_opts:  # --check/--no-check
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            if value:
                argv.append(param.opts[0])
        else:
            argv += [param.opts[0], str(value)]
    return argv + ["-o", str(out)]


def find_mpiexec() -> str:
    local = Path(sys.executable).with_name("mpiexec")
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        raise InputError("--ranks needs mpiexec; install an MPI (on a laptop: pip install 'ai-ready[local]') "
                         "or start the ranks with your launcher (mpiexec, srun, torchrun)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def setup_torch(name: str, timeout_s: float) -> Comm:
    """Start torch.distributed for `name` (gloo/nccl) under whatever launched us; return the coordinator."""
    import torch.distributed as dist

    pg_timeout = datetime.timedelta(seconds=timeout_s + TORCH_TIMEOUT_MARGIN_S)
    if dist.is_initialized():
        return TorchComm()
    engine, _size = launched_world_size()
    if engine == "torch":
        dist.init_process_group(name, timeout=pg_timeout)
        return TorchComm()
    coordinator: Comm = mpi_comm() if engine == "mpi" else SingleComm()
    hosts = coordinator.gather(socket.gethostname()) if coordinator.size > 1 else [socket.gethostname()]
    address = None
    if coordinator.rank == 0:
        one_host = len(set(hosts or [])) == 1
        address = (os.environ.get("MASTER_ADDR") or ("127.0.0.1" if one_host else socket.gethostbyname(socket.gethostname())),
                   int(os.environ.get("MASTER_PORT") or free_port()))
    host, port = coordinator.broadcast(address)
    dist.init_process_group(name, init_method=f"tcp://{host}:{port}", rank=coordinator.rank,
                            world_size=coordinator.size, timeout=pg_timeout)
    return coordinator


def mpi_comm() -> MPIComm:
    try:
        return MPIComm()
    except ImportError:
        raise InputError("these ranks were started by an MPI launcher but mpi4py is not installed; "
                         "install it (pip install 'ai-ready[mpi]') or start the ranks with torchrun") from None
