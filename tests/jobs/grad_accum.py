"""Test job: gradient accumulation (several micro-batches per optimizer step).

Same MLP and synthetic data as plain_loop.py (from jobkit.py).  Every optimizer step
consumes ``--accum`` micro-batches from the DataLoader: each is forwarded, its loss divided
by K and backpropagated; then optimizer.step() and zero_grad() run once.

For every optimizer step it prints ``JOBSTEP <index> <seconds>`` to stdout: <index>
counts optimizer steps from 0, <seconds> is the time.perf_counter() interval from the
end of the previous optimizer.step() to the end of this one (step 0: from the start of
the training loop).
"""

import torch
import torch.nn.functional as F

from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


def main():
    p = job_parser("MLP training with gradient accumulation", batch_size=96,
                   steps_help="optimizer steps", batch_help="micro-batch size")
    p.add_argument("--accum", type=int, default=4, help="micro-batches per optimizer step")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("grad_accum_") as tmp:
        loader = train_loader(classification_set(tmp, args.samples, args.seed), args.batch_size, args.seed)
        model = mlp().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

        step, micro = 0, 0
        clock = StepClock()
        optimizer.zero_grad()
        while step < args.steps:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y) / args.accum
                loss.backward()
                micro += 1
                if micro % args.accum != 0:
                    continue
                optimizer.step()
                optimizer.zero_grad()
                clock.tick(step)
                step += 1
                if step % 10 == 0:
                    print(f"step {step} loss {loss.item() * args.accum:.4f}", flush=True)
                if step >= args.steps:
                    break


if __name__ == "__main__":
    main()
