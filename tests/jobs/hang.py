"""Test job: trains normally, then hangs forever (with a child process alive).

After ``--hang-at`` optimizer steps (default 5; or after ``--steps`` if that is smaller)
it removes its temporary data directory, starts one child process
(``python -c "import time; time.sleep(3600)"``), prints ``CHILDPID <pid>`` to stdout,
and then sleeps in a loop forever.  A supervisor has to kill it, and a test can check
that the child was killed too.

Like the other jobs it prints ``JOBSTEP <index> <seconds>`` for every completed optimizer
step (index from 0; seconds from the end of the previous optimizer.step() to the end of
this one, step 0 from the start of the training loop).
"""

import argparse
import os
import shutil
import subprocess
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


def hang_forever():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    print(f"CHILDPID {child.pid}", flush=True)
    print("hanging", file=sys.stderr, flush=True)
    while True:
        time.sleep(1)


def main():
    p = argparse.ArgumentParser(description="MLP training that hangs part-way")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--hang-at", type=int, default=5, help="hang after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    hang_at = min(args.hang_at, args.steps)

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = tempfile.mkdtemp(prefix="hang_")
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
        while step < hang_at:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                now = time.perf_counter()
                print(f"JOBSTEP {step} {now - last:.6f}", flush=True)
                last = now
                step += 1
                if step >= hang_at:
                    break
    finally:
        # The process will be killed, not exit: clean up the data before hanging.
        shutil.rmtree(tmp, ignore_errors=True)
    hang_forever()


if __name__ == "__main__":
    main()
