"""Test job: a non-standard loop that marks its steps with ai-ready's explicit API.

It never uses a torch.optim optimizer (hand-written SGD update, as in no_optimizer.py),
so nothing can be inferred from optimizer.step(); instead every training step is wrapped
in ``with ai_ready.step():`` and, once after the 10th step (JOBSTEP index 9),
``ai_ready.mark("eval")`` is called before a short evaluation pass outside any step.  Unlike the other jobs it imports ai_ready.
Data and model as in plain_loop.py (from jobkit.py).

After every step it prints ``JOBSTEP <index> <seconds>`` to stdout: <index> counts steps
from 0, <seconds> is the time.perf_counter() interval from the end of the previous
``ai_ready.step()`` block to the end of this one (step 0: from the start of the training
loop).  The evaluation therefore falls into the interval printed for index 10.
"""

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import ai_ready
from jobkit import StepClock, classification_set, job_parser, mlp, pick_device, scratch_dir, train_loader


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
    args = job_parser("manual-update MLP training with explicit step marks").parse_args()

    torch.manual_seed(args.seed)
    device = pick_device()
    with scratch_dir("explicit_steps_") as tmp:
        dataset = classification_set(tmp, args.samples, args.seed)
        loader = train_loader(dataset, args.batch_size, args.seed)
        eval_loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
        model = mlp().to(device)

        step = 0
        clock = StepClock()
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
                clock.tick(step)
                step += 1
                if step == 10:
                    ai_ready.mark("eval")
                    print(f"eval loss {evaluate(model, eval_loader, device):.4f}", flush=True)
                if step >= args.steps:
                    break


if __name__ == "__main__":
    main()
