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

import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


def hang_forever():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    print(f"CHILDPID {child.pid}", flush=True)
    print("hanging", file=sys.stderr, flush=True)
    while True:
        time.sleep(1)


def main():
    p = job_parser("MLP training that hangs part-way")
    p.add_argument("--hang-at", type=int, default=5, help="hang after this many optimizer steps")
    args = p.parse_args()
    hang_at = min(args.hang_at, args.steps)

    torch.manual_seed(args.seed)
    device = pick_device()
    # The process will be killed, not exit: the data is cleaned up (end of the block) before hanging.
    with scratch_dir("hang_") as tmp:
        loader = train_loader(classification_set(tmp, args.samples, args.seed), args.batch_size, args.seed)
        model = mlp().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

        step = 0
        clock = StepClock()
        while step < hang_at:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                clock.tick(step)
                step += 1
                if step >= hang_at:
                    break
    hang_forever()


if __name__ == "__main__":
    main()
