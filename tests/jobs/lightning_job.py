"""Test job: a PyTorch Lightning run, written the way its users write one.

A LightningModule holding a small GPT-style language model (token embedding + learned
position embedding with MORE positions than tokens, pre-norm blocks with causal attention
through F.scaled_dot_product_attention and a GELU MLP, an untied LM head), trained with
AdamW by ``Trainer(max_steps=..., accumulate_grad_batches=2)`` on a DataLoader of random
token sequences, with logging, checkpointing, the progress bar and the model summary off.

Lightning's automatic optimization runs each micro-batch's forward and backward inside a
closure that it hands to ``optimizer.step(closure)`` (on the micro-batches that step; the
others run the closure directly), so the step boundary a profiler sees is the end of that
call, after the last micro-batch's backward.

Printed to stdout:

* once, before training: ``JOBINFO tokens_per_step=<int> flops_per_step=<float>``:
  tokens_per_step = batch x accumulation x seq; flops_per_step = 6 x (every Linear weight,
  the LM head included) x tokens + 12 x layers x seq x hidden x tokens;
* for every optimizer step (a Callback's on_train_batch_end when ``trainer.global_step``
  advanced): ``JOBSTEP <index> <seconds>`` (index from 0; seconds since the previous optimizer
  step ended, step 0 since training began).
"""

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    import pytorch_lightning as pl

from jobkit import StepClock, job_parser

VOCAB, POSITIONS, LAYERS, HIDDEN, HEADS = 320, 512, 2, 64, 4


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, hidden, n_heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, n_heads)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab, positions, layers, hidden, n_heads):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, hidden)
        self.pos_emb = nn.Embedding(positions, hidden)
        self.blocks = nn.ModuleList(Block(hidden, n_heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class LitLM(pl.LightningModule):
    def __init__(self, lr=3e-4, weight_decay=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPT(VOCAB, POSITIONS, LAYERS, HIDDEN, HEADS)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class StepPrinter(pl.Callback):
    """JOBSTEP once per optimizer step: on_train_batch_end runs per micro-batch, global_step per update."""

    def on_train_start(self, trainer, pl_module):
        self.clock = StepClock(show=trainer.is_global_zero)
        self.seen = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step > self.seen:
            self.seen = trainer.global_step
            self.clock.tick(trainer.global_step - 1)


def token_batches(samples, seq, seed):
    """Random token sequences; the target is the input shifted by one."""
    data = torch.randint(0, VOCAB, (samples, seq + 1), generator=torch.Generator().manual_seed(seed))
    return TensorDataset(data[:, :-1].contiguous(), data[:, 1:].contiguous())


def main():
    p = job_parser("PyTorch Lightning causal LM", batch_size=8, lr=3e-4, samples=4096)
    p.add_argument("--accum", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    args = p.parse_args()

    pl.seed_everything(args.seed, verbose=False)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    loader = DataLoader(token_batches(args.samples, args.seq, args.seed), batch_size=args.batch_size,
                        shuffle=True, drop_last=True, num_workers=0)
    lit = LitLM(lr=args.lr)

    tokens = args.batch_size * args.accum * args.seq
    matmul = sum(m.weight.numel() for m in lit.modules() if isinstance(m, nn.Linear))
    flops = 6 * matmul * tokens + 12 * LAYERS * args.seq * HIDDEN * tokens
    print(f"JOBINFO tokens_per_step={tokens} flops_per_step={float(flops)}", flush=True)

    trainer = pl.Trainer(
        max_steps=args.steps,
        max_epochs=math.ceil(args.steps * args.accum / len(loader)) + 1,
        accelerator="auto",
        devices=1,
        accumulate_grad_batches=args.accum,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepPrinter()],
    )
    trainer.fit(lit, train_dataloaders=loader)
    if trainer.is_global_zero:
        print(f"done: {trainer.global_step} steps", flush=True)


if __name__ == "__main__":
    main()
