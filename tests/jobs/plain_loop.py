"""Test job: the plainest training loop (MLP, DataLoader, SGD).

Writes a synthetic classification set (.npy) to a temporary directory, reads it back
through a Dataset / DataLoader and trains a 256-512-512-10 MLP with SGD (data, model and
the step clock come from jobkit.py, next to this file).

It measures its own step time: for every optimizer step it prints, to stdout,

    JOBSTEP <index> <seconds>

where <index> counts optimizer steps from 0 and <seconds> is the time.perf_counter()
interval from the end of the previous optimizer.step() to the end of this one (for
step 0: from the start of the training loop, so it includes creating the DataLoader
iterator).  ``--sleep S`` adds S seconds of sleep inside every step (between backward
and optimizer.step()).
"""

import time

import torch
import torch.nn.functional as F

from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


def main():
    p = job_parser("plain MLP training loop", batch_size=384)
    p.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep inside each step")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("plain_loop_") as tmp:
        loader = train_loader(classification_set(tmp, args.samples, args.seed), args.batch_size, args.seed)
        model = mlp().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

        step = 0
        clock = StepClock()
        while step < args.steps:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                if args.sleep:
                    time.sleep(args.sleep)
                optimizer.step()
                clock.tick(step)
                step += 1
                if step % 10 == 0:
                    print(f"step {step} loss {loss.item():.4f}", flush=True)
                if step >= args.steps:
                    break


if __name__ == "__main__":
    main()
