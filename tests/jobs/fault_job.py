"""Test job for fault tests: a small training loop that can leave processes behind or leave abruptly.

Trains a small MLP on in-memory data through a DataLoader (``--workers N`` worker processes) for
``--steps`` optimizer steps, sleeping ``--sleep`` seconds inside each. Options that make stopping it hard:

* ``--session-child``: starts a child that calls setsid() (its own session and process group) and sleeps;
* ``--daemon``: forks twice so a grandchild is re-parented to init (no longer a descendant) and sleeps;
* ``--exit-at K``: leaves through ``os._exit(0)`` right after step K (no exit handlers, no flush).

Every helper process's pid is printed as ``HELPERPID <pid>``, and ``JOBPID <pid>`` once, so a test can
check that all of them are gone after ai-ready stopped the job. ``READY`` is printed after the first step.
"""

import argparse
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def daemon() -> None:
    """Double fork: the grandchild sleeps, re-parented to init, its pid printed by the middle process."""
    middle = os.fork()
    if middle:
        os.waitpid(middle, 0)
        return
    grandchild = os.fork()
    if grandchild:
        print(f"HELPERPID {grandchild}", flush=True)
        os._exit(0)
    os.setsid()
    time.sleep(3600)
    os._exit(0)


def main() -> None:
    p = argparse.ArgumentParser(description="fault test job")
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--sleep", type=float, default=0.02)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--session-child", action="store_true")
    p.add_argument("--daemon", action="store_true")
    p.add_argument("--exit-at", type=int, default=None)
    args = p.parse_args()
    print(f"JOBPID {os.getpid()}", flush=True)
    if args.session_child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
        print(f"HELPERPID {child.pid}", flush=True)
    if args.daemon:
        daemon()
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(4096, 64), torch.randint(0, 10, (4096,)))
    loader = DataLoader(data, batch_size=64, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    step = 0
    while step < args.steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            time.sleep(args.sleep)
            optimizer.step()
            if step == 0:
                if args.workers:
                    for worker in _workers():
                        print(f"HELPERPID {worker}", flush=True)
                print("READY", flush=True)
            if args.exit_at is not None and step == args.exit_at:
                os._exit(0)
            step += 1
            if step >= args.steps:
                break


def _workers() -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process().children() if "python" in (c.name() or "").lower()]


if __name__ == "__main__":
    main()
