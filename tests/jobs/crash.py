"""Test job: trains normally, then fails.

After ``--fail-at`` optimizer steps (default 5) it writes "about to fail" to stderr and
raises ``RuntimeError("simulated failure at step 5")``, so the process exits with status 1
and a traceback on stderr.  Its temporary data directory is still removed (jobkit's
scratch_dir cleans up however the block ends).

Like the other jobs it prints ``JOBSTEP <index> <seconds>`` for every completed optimizer
step (index from 0; seconds from the end of the previous optimizer.step() to the end of
this one, step 0 from the start of the training loop).
"""

import sys

import torch
import torch.nn.functional as F

from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


def main():
    p = job_parser("MLP training that crashes part-way")
    p.add_argument("--fail-at", type=int, default=5, help="fail after this many optimizer steps")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("crash_") as tmp:
        loader = train_loader(classification_set(tmp, args.samples, args.seed), args.batch_size, args.seed)
        model = mlp().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

        step = 0
        clock = StepClock()
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
                clock.tick(step)
                step += 1
                if step >= args.steps:
                    break


if __name__ == "__main__":
    main()
