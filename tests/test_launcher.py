from __future__ import annotations

import pytest

from ai_ready.env.launcher import detect_launcher
from ai_ready.measure.comm import launched_world_size


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, ("none", 0, 1, 0)),
        ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1"},
         ("openmpi", 3, 8, 1)),
        ({"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1"}, ("mpich", 1, 2, 1)),
        ({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "42"},
         ("slurm", 5, 16, 1)),
        # torchrun under srun: torchrun's own numbering wins
        ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "x",
          "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, ("torchrun", 2, 4, 2)),
    ],
)
def test_launcher_detection(env: dict[str, str], expected: tuple[str, int, int, int]) -> None:
    info = detect_launcher(env)
    assert (info["name"], info["rank"], info["world_size"], info["local_rank"]) == expected


def test_slurm_job_metadata() -> None:
    info = detect_launcher({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "99", "SLURM_JOB_NUM_NODES": "2"})
    assert info["job_id"] == "99" and info["nodes"] == 2 and info["scheduler"] == "slurm"


def test_plain_rank_variable_is_not_torchrun() -> None:
    """A stray RANK in a user's shell must not turn a single process into a distributed run."""
    assert detect_launcher({"RANK": "1", "WORLD_SIZE": "2"})["name"] == "none"


@pytest.mark.parametrize(
    "env, engine",
    [({}, ("single", 1)), ({"PMI_SIZE": "2"}, ("mpi", 2)), ({"OMPI_COMM_WORLD_SIZE": "1"}, ("single", 1)),
     ({"WORLD_SIZE": "4", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "a"}, ("torch", 4))],
)
def test_engine_choice(env: dict[str, str], engine: tuple[str, int]) -> None:
    assert launched_world_size(env) == engine
