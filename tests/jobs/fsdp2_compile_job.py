"""Test job: FSDP2 + per-block torch.compile, in the style of torchtitan.

Run it with torchrun or as a single process:

    torchrun --standalone --nproc-per-node 2 fsdp2_compile_job.py
    python fsdp2_compile_job.py            # a 1-rank process group

torch.distributed is initialised from torchrun's variables (gloo on CPU, nccl on CUDA); run
bare, the job makes a 1-rank gloo group on a free local port, so FSDP2 and the distributed
checkpoint work the same way.

Model: a small Llama -- token embedding, RMSNorm, rotary position embedding, grouped-query
attention (n_kv_heads < n_heads) through F.scaled_dot_product_attention, a SwiGLU MLP with
gate / up / down projections, an untied output projection.  As torchtitan does, each
transformer block is compiled on its own (``block.compile()``, on by default; ``--no-compile``
turns it off), then ``fully_shard`` is applied to every block and to the whole model (FSDP2),
with bf16 parameters on CUDA.  AdamW.  There is no DataLoader: each step cuts ``x, y =
get_batch()`` at random offsets out of a random token stream (different per rank).  Every
``--ckpt-every`` steps the model and optimizer state dicts are written with
``torch.distributed.checkpoint.save`` into a temporary folder removed at the end.

Printed to stdout by rank 0:

* once, before training: ``JOBINFO tokens_per_step=<int> flops_per_step=<float>`` -- per rank:
  tokens_per_step = batch x seq; flops_per_step = 6 x (every Linear weight, the output
  projection included) x tokens + 12 x layers x seq x dim x tokens;
* for every optimizer step: ``JOBSTEP <index> <seconds>`` (index from 0; seconds since the
  previous optimizer step ended, step 0 since the training loop began).
"""

import argparse
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


@dataclass
class ModelArgs:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    vocab_size: int = 256
    ffn_dim: int = 192
    max_seq_len: int = 512
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, max_seq_len, theta):
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_seq_len).float(), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """x: (batch, heads, seq, head_dim); rotate pairs (i, i + head_dim / 2)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.n_heads, self.n_kv_heads = args.n_heads, args.n_kv_heads
        self.head_dim = args.dim // args.n_heads
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x, cos, sin):
        bs, seq, _ = x.shape
        q = self.wq(x).view(bs, seq, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(bs, seq, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(bs, seq, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        repeats = self.n_heads // self.n_kv_heads  # grouped-query attention: share each k/v head
        k, v = k.repeat_interleave(repeats, dim=1), v.repeat_interleave(repeats, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(bs, seq, -1))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)  # gate
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)  # up
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.attention = Attention(args)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)
        self.feed_forward = FeedForward(args.dim, args.ffn_dim)

    def forward(self, x, cos, sin):
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        cos, sin = rope_tables(args.dim // args.n_heads, args.max_seq_len, args.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens):
        seq = tokens.shape[1]
        cos, sin = self.rope_cos[:seq], self.rope_sin[:seq]
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.output(self.norm(h))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed():
    """(rank, world_size, device) with a process group up: torchrun's, or a 1-rank gloo group."""
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        device, backend = torch.device("cuda", torch.cuda.current_device()), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), device


def main():
    p = argparse.ArgumentParser(description="FSDP2 + torch.compile Llama-style pre-training")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=4, help="per rank")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--ckpt-every", type=int, default=10)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rank, world, device = init_distributed()
    margs = ModelArgs()
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    with torch.device(device):
        model = Transformer(margs)

    tokens = args.batch_size * args.seq
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    flops = 6 * matmul * tokens + 12 * margs.n_layers * args.seq * margs.dim * tokens
    if rank == 0:
        print(f"JOBINFO tokens_per_step={tokens} flops_per_step={float(flops)}", flush=True)

    if args.compile:
        for block in model.layers:
            block.compile(fullgraph=True)
    mesh = init_device_mesh(device.type, (world,), mesh_dim_names=("dp_shard",))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
                              reduce_dtype=torch.float32)
    for i, block in enumerate(model.layers):
        # the last block is all-gathered again right away for backward: keep it unsharded
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=i < len(model.layers) - 1)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)

    stream = torch.randint(0, margs.vocab_size, (1 << 18,), generator=torch.Generator().manual_seed(args.seed + rank))

    def get_batch():
        starts = torch.randint(0, len(stream) - args.seq - 1, (args.batch_size,))
        x = torch.stack([stream[s:s + args.seq] for s in starts])
        y = torch.stack([stream[s + 1:s + args.seq + 1] for s in starts])
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    ckpt_root = [tempfile.mkdtemp(prefix="fsdp2_ckpt_") if rank == 0 else None]
    dist.broadcast_object_list(ckpt_root, src=0)
    ckpt_root = ckpt_root[0]
    try:
        model.train()
        last = time.perf_counter()
        for step in range(args.steps):
            x, y = get_batch()
            logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            now = time.perf_counter()
            if rank == 0:
                print(f"JOBSTEP {step} {now - last:.6f}", flush=True)
            last = now
            if (step + 1) % 10 == 0 and rank == 0:
                print(f"step {step + 1} loss {loss.item():.4f}", flush=True)
            if args.ckpt_every and (step + 1) % args.ckpt_every == 0:
                state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
                dcp.save(state, checkpoint_id=os.path.join(ckpt_root, f"step-{step + 1}"))
        if rank == 0:
            print(f"done: {args.steps} steps on {world} rank(s), compile={args.compile}", flush=True)
    finally:
        dist.barrier()
        if rank == 0:
            shutil.rmtree(ckpt_root, ignore_errors=True)
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
