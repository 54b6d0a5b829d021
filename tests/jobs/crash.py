"""Test job: trains normally, then fails.

After ``--fail-at`` optimizer steps (default 5) it writes "about to fail" to stderr and
raises ``RuntimeError("simulated failure at step 5")``, so the process exits with status 1
and a traceback on stderr.  Its temporary data directory is still removed (try/finally).

Like the other jobs it prints ``JOBSTEP <index> <seconds>`` for every completed optimizer
step (index from 0; seconds from the end of the previous optimizer.step() to the end of
this one, step 0 from the start of the training loop).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


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


def main():
    p = argparse.ArgumentParser(description="MLP training that crashes part-way")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--fail-at", type=int, default=5, help="fail after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = tempfile.mkdtemp(prefix="crash_")
    try:
        x_path, y_path = write_data(tmp, args.samples, 256, 10, args.seed)
        loader = DataLoader(NpyDataset(x_path, y_path), batch_size=args.batch_size, shuffle=True,
                            drop_last=True, generator=torch.Generator().manual_seed(args.seed))
        model = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        ).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

        step = 0
        last = time.perf_counter()
        while step < args.steps:
            for x, y in loader:
                if step == args.fail_at:
                    print("about to fail", file=sys.stderr, flush=True)
                    raise RuntimeError(f"simulated failure at step {step}")
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                now = time.perf_counter()
                print(f"JOBSTEP {step} {now - last:.6f}", flush=True)
                last = now
                step += 1
                if step >= args.steps:
                    break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
