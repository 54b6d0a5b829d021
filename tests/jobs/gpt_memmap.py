"""Test job: a small GPT trained from hand-cut batches, the most common style of small open-source LLM
training scripts: a uint16 token file read through np.memmap, ``x, y = get_batch("train")`` at random
offsets (no DataLoader), gradient accumulation, GradScaler (enabled for fp16 only), autocast where a
GPU is present, optional torch.compile, and a learning-rate schedule set by hand.

The token embedding (``wte``) has fewer rows than the position embedding (``wpe``: block size larger
than the vocabulary), as in a character-level run.

It prints ``JOBSTEP <index> <seconds>`` after every optimizer step (time.perf_counter since the
previous one) and once ``JOBINFO tokens_per_step=<n> flops_per_step=<f>``: its own count of the work
of one optimizer step (6 x matmul weights x tokens + 12 x layers x block x embedding x tokens).
"""

import argparse
import math
import os
import tempfile
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.n_head = n_head

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=False), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd, bias=False))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx, targets=None):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-iters", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--accum", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()

    torch.manual_seed(1337)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = nullcontext() if device == "cpu" else torch.amp.autocast(device_type=device, dtype=ptdtype)

    data_dir = tempfile.mkdtemp(prefix="gpt_memmap_")
    path = os.path.join(data_dir, "train.bin")
    rng = np.random.default_rng(0)
    rng.integers(0, args.vocab, size=200_000, dtype=np.uint16).tofile(path)

    def get_batch(split):
        data = np.memmap(path, dtype=np.uint16, mode="r")  # re-opened per batch, as such scripts do
        ix = torch.randint(len(data) - args.block_size, (args.batch_size,))
        x = torch.stack([torch.from_numpy(data[i:i + args.block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + args.block_size].astype(np.int64)) for i in ix])
        return x.to(device), y.to(device)

    model = GPT(args.vocab, args.block_size, args.n_layer, args.n_head, args.n_embd).to(device)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    tokens = args.batch_size * args.block_size * args.accum
    flops = (6 * matmul + 12 * args.n_layer * args.block_size * args.n_embd) * tokens
    print(f"JOBINFO tokens_per_step={tokens} flops_per_step={flops:.6e}", flush=True)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    scaler = torch.amp.GradScaler(device, enabled=(dtype == "float16"))
    if args.compile:
        model = torch.compile(model)

    def get_lr(it):
        warmup = 5
        if it < warmup:
            return args.lr * (it + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(it / args.max_iters, 1.0)))

    x, y = get_batch("train")
    last = time.perf_counter()
    try:
        for it in range(args.max_iters):
            for group in optimizer.param_groups:
                group["lr"] = get_lr(it)
            for micro in range(args.accum):
                with ctx:
                    logits, loss = model(x, y)
                    loss = loss / args.accum
                x, y = get_batch("train")  # prefetch the next batch while the GPU works
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            now = time.perf_counter()
            print(f"JOBSTEP {it} {now - last:.6f}", flush=True)
            if it % 10 == 0:
                print(f"iter {it}: loss {loss.item() * args.accum:.4f}", flush=True)
            last = now
    finally:
        os.remove(path)
        os.rmdir(data_dir)


if __name__ == "__main__":
    main()
