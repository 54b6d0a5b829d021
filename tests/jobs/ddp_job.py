"""Test job: DistributedDataParallel on several ranks.

Run it with either launcher:

    torchrun --nproc-per-node 2 ddp_job.py
    mpiexec -n 2 python ddp_job.py

torchrun provides RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT; under mpiexec they
are derived from PMI_RANK/PMI_SIZE (MPICH/Hydra) or OMPI_COMM_WORLD_RANK/SIZE (Open MPI),
with MASTER_ADDR=127.0.0.1 and MASTER_PORT from the environment (default 29511).  Backend
gloo on CPU, nccl on CUDA.  Run bare, it trains on a single process without DDP.

Each rank writes the same seeded synthetic data to its own temporary directory and reads
it through a DataLoader with a DistributedSampler.  Rank 0 prints, for every optimizer
step, ``JOBSTEP <index> <seconds>`` (index from 0; seconds from the end of the previous
optimizer.step() to the end of this one, step 0 from the start of the training loop).
"""

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


class NpyDataset(Dataset):
    def __init__(self, x_path, y_path):
        self.x = np.load(x_path, mmap_mode="r")
        self.y = np.load(y_path, mmap_mode="r")

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.x[i])), int(self.y[i])


def write_data(folder, n, dim, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    teacher = rng.normal(size=(dim, classes)).astype(np.float32)
    y = (x @ teacher).argmax(axis=1).astype(np.int64)
    x_path, y_path = os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")
    np.save(x_path, x)
    np.save(y_path, y)
    return x_path, y_path


def setup_distributed():
    """Return (rank, world_size, local_rank), initialising torch.distributed if world > 1."""
    env = os.environ
    if "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", 0))
        local_rank = int(env.get("LOCAL_RANK", 0))
    elif "PMI_SIZE" in env:
        world = int(env["PMI_SIZE"])
        rank = int(env.get("PMI_RANK", 0))
        local_rank = int(env.get("MPI_LOCALRANKID", rank))
    elif "OMPI_COMM_WORLD_SIZE" in env:
        world = int(env["OMPI_COMM_WORLD_SIZE"])
        rank = int(env.get("OMPI_COMM_WORLD_RANK", 0))
        local_rank = int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", rank))
    else:
        world, rank, local_rank = 1, 0, 0
    if world > 1:
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", "29511")
        env["RANK"] = str(rank)
        env["WORLD_SIZE"] = str(world)
        env.setdefault("LOCAL_RANK", str(local_rank))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return rank, world, local_rank


def main():
    p = argparse.ArgumentParser(description="DDP MLP training")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128, help="per rank")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rank, world, local_rank = setup_distributed()
    torch.manual_seed(args.seed)
    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"
    else:
        device = "cpu"

    tmp = tempfile.mkdtemp(prefix=f"ddp_job_r{rank}_")
    try:
        x_path, y_path = write_data(tmp, args.samples, 256, 10, args.seed)
        dataset = NpyDataset(x_path, y_path)
        sampler = None
        if world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                         seed=args.seed, drop_last=True)
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None,
                            sampler=sampler, drop_last=True,
                            generator=torch.Generator().manual_seed(args.seed))
        model = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        ).to(device)
        if world > 1:
            model = DDP(model, device_ids=[local_rank] if device.startswith("cuda") else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

        step, epoch = 0, 0
        last = time.perf_counter()
        while step < args.steps:
            if sampler is not None:
                sampler.set_epoch(epoch)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                now = time.perf_counter()
                if rank == 0:
                    print(f"JOBSTEP {step} {now - last:.6f}", flush=True)
                last = now
                step += 1
                if step % 10 == 0 and rank == 0:
                    print(f"step {step} loss {loss.item():.4f}", flush=True)
                if step >= args.steps:
                    break
            epoch += 1
        if rank == 0:
            print(f"done: {step} steps on {world} rank(s)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
