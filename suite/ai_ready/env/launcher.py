"""Rank, world size and local rank from the launcher's environment.

Recognised: Slurm (srun), Open MPI (mpirun), MPICH/Hydra and Intel MPI
(mpiexec), PMIx launchers, and torchrun. A plain process is rank 0 of 1.
"""

from __future__ import annotations

import os
from typing import Mapping

# Launcher name -> (rank, size, local rank) variable names, checked in this order:
# torchrun sets its variables on top of whatever started it, so it goes first;
# srun may start MPI ranks, so the MPI library's own variables go before Slurm's.
LAUNCHER_VARS: tuple[tuple[str, tuple[str, str, str]], ...] = (
    ("torchrun", ("RANK", "WORLD_SIZE", "LOCAL_RANK")),
    ("openmpi", ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")),
    ("mpich", ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID")),
    ("pmix", ("PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK")),
    ("slurm", ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")),
)


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "")
    return int(value) if value.strip().isdigit() else None


def detect_launcher(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Which launcher started us, and our place in the world it made."""
    env = os.environ if environ is None else environ
    info: dict[str, object] = {"name": "none", "rank": 0, "world_size": 1, "local_rank": 0}
    for name, (rank_var, size_var, local_var) in LAUNCHER_VARS:
        if name == "torchrun" and not (env.get("TORCHELASTIC_RUN_ID") or env.get("LOCAL_WORLD_SIZE")):
            continue
        rank, size = _int(env, rank_var), _int(env, size_var)
        if rank is None or size is None:
            continue
        local = _int(env, local_var)
        info.update(name=name, rank=rank, world_size=size, local_rank=local if local is not None else 0)
        break
    if env.get("SLURM_JOB_ID"):
        info["job_id"] = env["SLURM_JOB_ID"]
        info["scheduler"] = "slurm"
    nodes = _int(env, "SLURM_JOB_NUM_NODES") or _int(env, "SLURM_NNODES")
    info["nodes"] = nodes
    return info
