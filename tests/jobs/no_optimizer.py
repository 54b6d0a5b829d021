"""Test job: a training loop that never uses a torch.optim optimizer.

Forward, loss, backward, then a hand-written SGD update
(``with torch.no_grad(): p -= lr * p.grad``) and the gradients reset by hand.  No
torch.optim class is created or called anywhere, so a profiler that finds steps by
hooking optimizer.step() sees none.  Data and model as in plain_loop.py (from jobkit.py).

After every update it prints ``JOBSTEP <index> <seconds>`` to stdout: <index> counts
updates from 0, <seconds> is the time.perf_counter() interval from the end of the
previous update to the end of this one (update 0: from the start of the training loop).
"""

import torch
import torch.nn.functional as F

from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


def main():
    args = job_parser("MLP training with a manual SGD update").parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("no_optimizer_") as tmp:
        loader = train_loader(classification_set(tmp, args.samples, args.seed), args.batch_size, args.seed)
        model = mlp().to(device)

        step = 0
        clock = StepClock()
        while step < args.steps:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                with torch.no_grad():
                    for p_ in model.parameters():
                        p_ -= args.lr * p_.grad
                        p_.grad = None
                clock.tick(step)
                step += 1
                if step % 10 == 0:
                    print(f"step {step} loss {loss.item():.4f}", flush=True)
                if step >= args.steps:
                    break


if __name__ == "__main__":
    main()
