"""Test job: a training loop that never uses a torch.optim optimizer.

Forward, loss, backward, then a hand-written SGD update
(``with torch.no_grad(): p -= lr * p.grad``) and the gradients reset by hand.  No
torch.optim class is created or called anywhere, so a profiler that finds steps by
hooking optimizer.step() sees none.

After every update it prints ``JOBSTEP <index> <seconds>`` to stdout: <index> counts
updates from 0, <seconds> is the time.perf_counter() interval from the end of the
previous update to the end of this one (update 0: from the start of the training loop).
"""

import argparse
import os
import shutil
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
    p = argparse.ArgumentParser(description="MLP training with a manual SGD update")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = tempfile.mkdtemp(prefix="no_optimizer_")
    try:
        x_path, y_path = write_data(tmp, args.samples, 256, 10, args.seed)
        loader = DataLoader(NpyDataset(x_path, y_path), batch_size=args.batch_size, shuffle=True,
                            drop_last=True, generator=torch.Generator().manual_seed(args.seed))
        model = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        ).to(device)

        step = 0
        last = time.perf_counter()
        while step < args.steps:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                with torch.no_grad():
                    for p_ in model.parameters():
                        p_ -= args.lr * p_.grad
                        p_.grad = None
                now = time.perf_counter()
                print(f"JOBSTEP {step} {now - last:.6f}", flush=True)
                last = now
                step += 1
                if step % 10 == 0:
                    print(f"step {step} loss {loss.item():.4f}", flush=True)
                if step >= args.steps:
                    break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
