"""Shared pieces of the test jobs in this folder, the way a project keeps a small utils module
next to its training scripts: the synthetic data set (written to .npy files and read back
through a Dataset / DataLoader), the 256-512-512-10 MLP, the common command-line options,
the per-step ``JOBSTEP <index> <seconds>`` clock and the distributed set-up.

Plain torch and numpy only: the jobs must run with or without ai-ready around them.  Each
job keeps its own training loop; nothing here runs a step.
"""

import argparse
import contextlib
import os
import shutil
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

IN_DIM, HIDDEN, CLASSES = 256, 512, 10


def job_parser(description, *, batch_size=256, lr=0.05, samples=8192, steps_help=None, batch_help=None):
    """The options every job takes: --steps, --batch-size (left out when batch_size is None),
    --lr, --samples and --seed.  A job adds its own before parsing."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=30, help=steps_help)
    if batch_size is not None:
        p.add_argument("--batch-size", type=int, default=batch_size, help=batch_help)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--samples", type=int, default=samples)
    p.add_argument("--seed", type=int, default=0)
    return p


def pick_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def scratch_dir(prefix):
    """A temporary directory for the job's data, removed however the block ends."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class NpyDataset(Dataset):
    """(input, target) pairs from two memory-mapped .npy files.  A one-dimensional target
    file holds class indices (returned as ints); otherwise each target is a tensor."""

    def __init__(self, x_path, y_path):
        self.x = np.load(x_path, mmap_mode="r")
        self.y = np.load(y_path, mmap_mode="r")

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = torch.from_numpy(np.array(self.x[i]))
        if self.y.ndim == 1:
            return x, int(self.y[i])
        return x, torch.from_numpy(np.array(self.y[i]))


def save_arrays(folder, **arrays):
    """Save each array as <folder>/<name>.npy; return the paths in the order given."""
    paths = []
    for name, array in arrays.items():
        path = os.path.join(folder, f"{name}.npy")
        np.save(path, array)
        paths.append(path)
    return paths


def write_data(folder, n, dim, classes, seed):
    """Inputs ~ N(0, 1); labels from a random linear teacher, so the task is learnable."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    teacher = rng.normal(size=(dim, classes)).astype(np.float32)
    y = (x @ teacher).argmax(axis=1).astype(np.int64)
    return save_arrays(folder, x=x, y=y)


def classification_set(folder, samples, seed):
    """The synthetic classification set the MLP jobs train on, written to `folder`."""
    return NpyDataset(*write_data(folder, samples, IN_DIM, CLASSES, seed))


def train_loader(dataset, batch_size, seed, sampler=None):
    """Shuffled (by `sampler` when given, else by a seeded generator), whole batches only."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      drop_last=True, generator=torch.Generator().manual_seed(seed))


def mlp():
    return nn.Sequential(
        nn.Linear(IN_DIM, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, CLASSES),
    )


class StepClock:
    """The job's own step time.  Created right before the training loop; ``tick(index)`` at the
    end of every step prints ``JOBSTEP <index> <seconds>`` (time.perf_counter() since the
    previous tick, or since the clock was created) to stdout, when `show` is true."""

    def __init__(self, show=True):
        self.show = show
        self.last = time.perf_counter()

    def tick(self, index):
        now = time.perf_counter()
        if self.show:
            print(f"JOBSTEP {index} {now - self.last:.6f}", flush=True)
        self.last = now


# (world size, rank, local rank) variables of each launcher, in the order they are looked for
LAUNCHER_VARIABLES = (
    ("WORLD_SIZE", "RANK", "LOCAL_RANK"),  # torchrun
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),  # MPICH / Hydra
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),  # Open MPI
)


def launcher_ranks(env):
    """(rank, world_size, local_rank) from the launcher's variables; (0, 1, 0) when there is none.
    A missing local rank is 0 under torchrun and the global rank under mpiexec."""
    for world_var, rank_var, local_var in LAUNCHER_VARIABLES:
        if world_var in env:
            rank = int(env.get(rank_var, 0))
            fallback = 0 if world_var == "WORLD_SIZE" else rank
            return rank, int(env[world_var]), int(env.get(local_var, fallback))
    return 0, 1, 0


def setup_distributed():
    """Return (rank, world_size, local_rank), initialising torch.distributed if world > 1:
    MASTER_ADDR 127.0.0.1 and MASTER_PORT 29511 unless set, gloo on CPU, nccl on CUDA."""
    env = os.environ
    rank, world, local_rank = launcher_ranks(env)
    if world > 1:
        env.update(RANK=str(rank), WORLD_SIZE=str(world))
        for name, default in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29511"),
                              ("LOCAL_RANK", str(local_rank))):
            env.setdefault(name, default)
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
            backend = "nccl"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return rank, world, local_rank
