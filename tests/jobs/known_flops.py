"""Test job: a model whose FLOPs per training step are known exactly.

Model: nn.Sequential(Linear(512, 1024), ReLU, Linear(1024, 1024), ReLU, Linear(1024, 512)),
all Linear layers WITHOUT bias; MSE loss against a random target; batch 64 (fixed); plain
SGD; inputs and targets are read from .npy files through a DataLoader.

Analytic FLOPs per training step (a multiply-add counts as 2 FLOPs; B = 64):

* forward: each bias-free Linear(in, out) is one matmul of 2*B*in*out FLOPs:
      2*B*(512*1024 + 1024*1024 + 1024*512) = 2*64*2,097,152 = 268,435,456
* backward: each Linear needs the weight gradient (grad_out^T @ x, 2*B*in*out) and the
  input gradient (grad_out @ W, 2*B*in*out) -- twice the forward -- except that the input
  gradient of the FIRST layer is not computed: autograd (and so torch's FlopCounterMode)
  only computes/counts the gradient w.r.t. the first layer's input if that input requires
  grad, and a batch from the DataLoader does not.  So
      2*268,435,456 - 2*B*512*1024 = 536,870,912 - 67,108,864 = 469,762,048
* total forward + backward: 268,435,456 + 469,762,048 = 738,197,504 = ANALYTIC_FLOPS_PER_STEP

Only the matmuls (aten.mm) are counted.  ReLU, its backward, the MSE loss and the SGD
update are element-wise and not counted, in the analytic figure or by FlopCounterMode.

Checked against torch.utils.flop_counter.FlopCounterMode (torch 2.13) on one forward +
backward with a batch that does not require grad: get_total_flops() == 738,197,504, all
of it aten.mm (with an input that requires grad it would be 805,306,368, i.e. + 2*B*512*1024).
``--check-flops`` repeats that check before training and prints
``FLOPCHECK counted=<n> analytic=<n>``.

For every optimizer step it prints ``JOBSTEP <index> <seconds>`` to stdout (index from 0;
seconds from the end of the previous optimizer.step() to the end of this one, step 0 from
the start of the training loop).
"""

import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from jobkit import NpyDataset, StepClock, job_parser, pick_device, save_arrays, scratch_dir, train_loader

BATCH = 64
D_IN, D_HIDDEN, D_OUT = 512, 1024, 512
FORWARD_FLOPS = 2 * BATCH * (D_IN * D_HIDDEN + D_HIDDEN * D_HIDDEN + D_HIDDEN * D_OUT)
BACKWARD_FLOPS = 2 * FORWARD_FLOPS - 2 * BATCH * D_IN * D_HIDDEN  # no grad w.r.t. the input
ANALYTIC_FLOPS_PER_STEP = FORWARD_FLOPS + BACKWARD_FLOPS  # 738_197_504
assert ANALYTIC_FLOPS_PER_STEP == 738_197_504


def write_data(folder, n, seed):
    """Random inputs and random regression targets: (x.npy, target.npy)."""
    rng = np.random.default_rng(seed)
    return save_arrays(folder, x=rng.normal(size=(n, D_IN)).astype(np.float32),
                       target=rng.normal(size=(n, D_OUT)).astype(np.float32))


def build_model():
    return nn.Sequential(
        nn.Linear(D_IN, D_HIDDEN, bias=False), nn.ReLU(),
        nn.Linear(D_HIDDEN, D_HIDDEN, bias=False), nn.ReLU(),
        nn.Linear(D_HIDDEN, D_OUT, bias=False),
    )


def count_flops(model, x, target):
    """FLOPs of one forward + backward as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        F.mse_loss(model(x), target).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main():
    p = job_parser("training job with analytically known FLOPs", batch_size=None, lr=0.01, samples=2048)
    p.add_argument("--check-flops", action="store_true",
                   help="compare FlopCounterMode with ANALYTIC_FLOPS_PER_STEP before training")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("known_flops_") as tmp:
        loader = train_loader(NpyDataset(*write_data(tmp, args.samples, args.seed)), BATCH, args.seed)
        model = build_model().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

        if args.check_flops:
            x, target = next(iter(loader))
            counted = count_flops(model, x.to(device), target.to(device))
            print(f"FLOPCHECK counted={counted} analytic={ANALYTIC_FLOPS_PER_STEP}", flush=True)
            if counted != ANALYTIC_FLOPS_PER_STEP:
                print("FLOP count mismatch", file=sys.stderr, flush=True)
                sys.exit(1)

        step = 0
        clock = StepClock()
        while step < args.steps:
            for x, target in loader:
                x, target = x.to(device), target.to(device)
                loss = F.mse_loss(model(x), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                clock.tick(step)
                step += 1
                if step % 10 == 0:
                    print(f"step {step} loss {loss.item():.4f}", flush=True)
                if step >= args.steps:
                    break


if __name__ == "__main__":
    main()
