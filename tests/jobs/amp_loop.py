"""Test job: mixed precision (bf16 autocast) with AdamW.

Forward and loss run under ``torch.autocast(device_type, dtype=torch.bfloat16)``; on CUDA
the backward/step go through torch.amp.GradScaler (on CPU there is no scaler).  Same MLP
shape and synthetic data as plain_loop.py (from jobkit.py).

For every optimizer step it prints ``JOBSTEP <index> <seconds>`` to stdout: <index>
counts optimizer steps from 0, <seconds> is the time.perf_counter() interval from the
end of the previous optimizer step to the end of this one (step 0: from the start of
the training loop).
"""

import torch
import torch.nn.functional as F

from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


def main():
    args = job_parser("bf16 autocast MLP training", lr=1e-3).parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("amp_loop_") as tmp:
        loader = train_loader(classification_set(tmp, args.samples, args.seed), args.batch_size, args.seed)
        model = mlp().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
        scaler = torch.amp.GradScaler("cuda") if device == "cuda" else None

        step = 0
        clock = StepClock()
        while step < args.steps:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                with torch.autocast(device_type=device, dtype=torch.bfloat16):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
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
