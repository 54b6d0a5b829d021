"""Train a small GPT-style decoder language model on a synthetic token stream.

An ordinary PyTorch training script: argparse, a memory-mapped token dataset read through
a DataLoader, AdamW, periodic checkpoints.  It runs on one CPU or GPU, or on several ranks
under ``torchrun`` or ``mpiexec`` (DistributedDataParallel).

The data is a sparse random Markov chain over the vocabulary (every token has a handful of
possible successors), generated once into ``--data-dir`` and then read back from disk, so
the model has something to learn and the loss falls well below ln(vocab).
"""

import argparse
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8, help="per rank")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps to run")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--checkpoint-every", type=int, default=20, help="0 disables checkpoints")
    p.add_argument("--checkpoint-dir", default=os.path.join(HERE, "checkpoints"))
    p.add_argument("--data-dir", default=os.path.join(HERE, "data"))
    p.add_argument("--tokens", type=int, default=1 << 16, help="size of the synthetic corpus")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--print-step-times", action="store_true",
                   help="print 'STEPTIME <step> <seconds>' after every step (wall time, end to end)")
    return p.parse_args()


# --------------------------------------------------------------------------- distributed


def setup_distributed():
    """Return (rank, world_size, local_rank); init the process group when there are >1 ranks.

    torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT itself; under mpiexec
    we translate the MPI launcher's variables (MPICH/Hydra: PMI_*, Open MPI: OMPI_COMM_WORLD_*).
    """
    env = os.environ
    if "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", 0))
        local_rank = int(env.get("LOCAL_RANK", 0))
    elif "PMI_SIZE" in env:
        world = int(env["PMI_SIZE"])
        rank = int(env.get("PMI_RANK", 0))
        local_rank = int(env.get("MPI_LOCALRANKID", rank))
    elif "OMPI_COMM_WORLD_SIZE" in env:
        world = int(env["OMPI_COMM_WORLD_SIZE"])
        rank = int(env.get("OMPI_COMM_WORLD_RANK", 0))
        local_rank = int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", rank))
    else:
        world, rank, local_rank = 1, 0, 0

    if world > 1:
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", "29511")
        env["RANK"] = str(rank)
        env["WORLD_SIZE"] = str(world)
        env.setdefault("LOCAL_RANK", str(local_rank))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return rank, world, local_rank


# --------------------------------------------------------------------------- data


def token_file(data_dir, vocab, n_tokens, seed):
    dtype = np.uint16 if vocab <= 65535 else np.uint32
    name = f"markov_v{vocab}_n{n_tokens}_s{seed}.{np.dtype(dtype).name}.bin"
    return os.path.join(data_dir, name), dtype


def make_markov_tokens(path, dtype, vocab, n_tokens, seed, fanout=4):
    """Write a token stream drawn from a sparse random Markov chain (each token has `fanout`
    possible successors with random probabilities) to a raw binary file."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, vocab, size=(vocab, fanout))
    probs = rng.dirichlet(np.ones(fanout), size=vocab)
    cum = np.cumsum(probs, axis=1)
    u = rng.random(n_tokens)
    tokens = np.empty(n_tokens, dtype=dtype)
    t = int(rng.integers(vocab))
    for i in range(n_tokens):
        tokens[i] = t
        j = min(int(np.searchsorted(cum[t], u[i])), fanout - 1)
        t = int(successors[t, j])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    tokens.tofile(tmp)
    os.replace(tmp, path)  # atomic: several ranks may race to write the same (identical) file


class TokenDataset(Dataset):
    """Non-overlapping windows of seq_len + 1 tokens from a memory-mapped token file."""

    def __init__(self, path, dtype, seq_len):
        self.path, self.dtype, self.seq_len = path, dtype, seq_len
        n_tokens = os.path.getsize(path) // np.dtype(dtype).itemsize
        self.n = (n_tokens - 1) // seq_len
        self.tokens = None  # opened lazily, so each DataLoader worker maps the file itself

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.tokens is None:
            self.tokens = np.memmap(self.path, dtype=self.dtype, mode="r")
        start = i * self.seq_len
        chunk = torch.from_numpy(self.tokens[start : start + self.seq_len + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]


# --------------------------------------------------------------------------- model


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        assert hidden % heads == 0
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.proj = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, heads)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = MLP(hidden)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class GPT(nn.Module):
    def __init__(self, vocab, seq_len, hidden, layers, heads):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, hidden)
        self.pos_emb = nn.Embedding(seq_len, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # GPT-2 style scaled init of residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx):
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


# --------------------------------------------------------------------------- main


def main():
    args = parse_args()
    rank, world, local_rank = setup_distributed()
    is_main = rank == 0

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}" if world > 1 else "cuda"
    else:
        device = "cpu"

    path, dtype = token_file(args.data_dir, args.vocab, args.tokens, args.seed)
    if not os.path.exists(path):
        if is_main:
            print(f"writing synthetic corpus to {path}", flush=True)
        make_markov_tokens(path, dtype, args.vocab, args.tokens, args.seed)
    dataset = TokenDataset(path, dtype, args.seq_len)

    sampler = None
    if world > 1:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=args.seed, drop_last=True)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
        persistent_workers=args.workers > 0,
    )
    if len(loader) == 0:
        raise SystemExit("dataset too small for this batch size / seq-len / world size")

    model = GPT(args.vocab, args.seq_len, args.hidden, args.layers, args.heads).to(device)
    if world > 1:
        model = DDP(model, device_ids=[local_rank] if device.startswith("cuda") else None)
    raw_model = model.module if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95),
                                  weight_decay=0.1)

    if is_main:
        n_params = sum(p.numel() for p in raw_model.parameters())
        print(f"device {device} ranks {world} params {n_params / 1e6:.2f}M "
              f"samples {len(dataset)} batches/epoch {len(loader)}", flush=True)
        if args.checkpoint_every > 0:
            os.makedirs(args.checkpoint_dir, exist_ok=True)
    ckpt_path = os.path.join(args.checkpoint_dir, "ckpt.pt")

    amp_dtype = torch.bfloat16
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    step, epoch = 0, 0
    t0 = time.time()
    t_last = time.perf_counter()
    model.train()
    while step < args.steps:
        if sampler is not None:
            sampler.set_epoch(epoch)
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device_type=device_type, dtype=amp_dtype, enabled=args.amp):
                logits = model(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1

            if step % 10 == 0 and is_main:
                print(f"step {step} loss {loss.item():.3f}", flush=True)
            if args.checkpoint_every > 0 and step % args.checkpoint_every == 0 and is_main:
                torch.save({"model": raw_model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "step": step}, ckpt_path)
            if args.print_step_times and is_main:
                now = time.perf_counter()
                print(f"STEPTIME {step - 1} {now - t_last:.6f}", flush=True)
                t_last = now
            if step >= args.steps:
                break
        epoch += 1

    if is_main:
        elapsed = time.time() - t0
        print(f"done: {step} steps in {elapsed:.1f}s ({1000 * elapsed / max(step, 1):.1f} ms/step)",
              flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
