"""Test job: a non-standard loop that marks its steps with ai-ready's explicit API.

It never uses a torch.optim optimizer (hand-written SGD update, as in no_optimizer.py),
so nothing can be inferred from optimizer.step(); instead every training step is wrapped
in ``with ai_ready.step():`` and, once after the 10th step (JOBSTEP index 9),
``ai_ready.mark("eval")`` is called before a short evaluation pass outside any step.  Unlike the other jobs it imports ai_ready.

After every step it prints ``JOBSTEP <index> <seconds>`` to stdout: <index> counts steps
from 0, <seconds> is the time.perf_counter() interval from the end of the previous
``ai_ready.step()`` block to the end of this one (step 0: from the start of the training
loop).  The evaluation therefore falls into the interval printed for index 10.
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

import ai_ready


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


def evaluate(model, loader, device, batches=4):
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i, (x, y) in enumerate(loader):
            if i == batches:
                break
            x, y = x.to(device), y.to(device)
            total += F.cross_entropy(model(x), y).item()
            n += 1
    model.train()
    return total / max(n, 1)


def main():
    p = argparse.ArgumentParser(description="manual-update MLP training with explicit step marks")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = tempfile.mkdtemp(prefix="explicit_steps_")
    try:
        x_path, y_path = write_data(tmp, args.samples, 256, 10, args.seed)
        dataset = NpyDataset(x_path, y_path)
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(args.seed))
        eval_loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
        model = nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        ).to(device)

        step = 0
        last = time.perf_counter()
        while step < args.steps:
            for x, y in loader:
                with ai_ready.step():
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
                if step == 10:
                    ai_ready.mark("eval")
                    print(f"eval loss {evaluate(model, eval_loader, device):.4f}", flush=True)
                if step >= args.steps:
                    break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
