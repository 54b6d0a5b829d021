"""Test job: DistributedDataParallel on several ranks.

Run it with either launcher:

    torchrun --nproc-per-node 2 ddp_job.py
    mpiexec -n 2 python ddp_job.py

torchrun provides RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT; under mpiexec they
are derived from PMI_RANK/PMI_SIZE (MPICH/Hydra) or OMPI_COMM_WORLD_RANK/SIZE (Open MPI),
with MASTER_ADDR=127.0.0.1 and MASTER_PORT from the environment (default 29511).  Backend
gloo on CPU, nccl on CUDA (jobkit.setup_distributed).  Run bare, it trains on a single
process without DDP.

Each rank writes the same seeded synthetic data to its own temporary directory and reads
it through a DataLoader with a DistributedSampler.  Rank 0 prints, for every optimizer
step, ``JOBSTEP <index> <seconds>`` (index from 0; seconds from the end of the previous
optimizer.step() to the end of this one, step 0 from the start of the training loop).
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data.distributed import DistributedSampler

from jobkit import StepClock, classification_set, job_parser, mlp, scratch_dir, setup_distributed, train_loader


def main():
    args = job_parser("DDP MLP training", batch_size=128, batch_help="per rank").parse_args()

    rank, world, local_rank = setup_distributed()
    torch.manual_seed(args.seed)
    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"
    else:
        device = "cpu"

    try:
        with scratch_dir(f"ddp_job_r{rank}_") as tmp:
            dataset = classification_set(tmp, args.samples, args.seed)
            sampler = None
            if world > 1:
                sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                             seed=args.seed, drop_last=True)
            loader = train_loader(dataset, args.batch_size, args.seed, sampler=sampler)
            model = mlp().to(device)
            if world > 1:
                model = DDP(model, device_ids=[local_rank] if device.startswith("cuda") else None)
            optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

            step, epoch = 0, 0
            clock = StepClock(show=rank == 0)
            while step < args.steps:
                if sampler is not None:
                    sampler.set_epoch(epoch)
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    loss = F.cross_entropy(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    clock.tick(step)
                    step += 1
                    if step % 10 == 0 and rank == 0:
                        print(f"step {step} loss {loss.item():.4f}", flush=True)
                    if step >= args.steps:
                        break
                epoch += 1
            if rank == 0:
                print(f"done: {step} steps on {world} rank(s)", flush=True)
    finally:
        if world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
