"""Scaled-down training models written with plain torch (no model zoo, nothing downloaded).

Why our own models: the analytic FLOP counts in :mod:`ai_ready.train.flops` must describe
exactly the matmuls these modules run, so the MFU we report is computed from a model we
control end to end, and the same code scales from a CPU smoke test to a 1B-parameter run.

- :class:`GPT`: pre-norm decoder (LayerNorm), causal self-attention through
  ``scaled_dot_product_attention(is_causal=True)``, learned position embeddings, GELU or
  SwiGLU MLP, optional tied embeddings, optional mixture-of-experts MLPs.
- :class:`ResNet`: a CIFAR-style ResNet of BasicBlocks.

Mixture of experts: by default all experts are local to the process. With an ``ep_group``
(a ``torch.distributed`` process group) the experts are split evenly across its ranks and
tokens travel to their expert's rank and back with ``all_to_all_single`` (expert parallelism).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F
from torch import nn

from ai_ready.errors import InputError

MLP_KINDS = ("gelu", "swiglu")
GELU_MLP_RATIO = 4
# SwiGLU keeps the parameter count of a 4h GELU MLP with three matrices: 2/3 · 4h = 8h/3
# (Shazeer 2020, as used by LLaMA), rounded up to a multiple of 64 so GEMMs stay aligned.
SWIGLU_RATIO = 8 / 3
SWIGLU_MULTIPLE = 64
INIT_STD = 0.02  # GPT-2 initialisation of linear and embedding weights
EXPERT_SEED_STRIDE = 1_000_003  # keys (seed, layer, expert) into distinct per-expert streams


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _require_positive(kind: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InputError(f"{kind}: {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT decoder and its per-step batch (sequences per step on one rank).

    ``mlp_ratio`` sets the GELU MLP width (``mlp_ratio · hidden``); SwiGLU ignores it and uses
    ``round(8/3 · hidden)`` rounded up to a multiple of 64 (see :attr:`ffn_hidden`).
    ``experts == 0`` means dense MLPs; otherwise every MLP is a mixture of ``experts`` expert
    MLPs of which each token uses ``top_k``.
    """

    vocab: int
    seq_len: int
    layers: int
    hidden: int
    heads: int
    mlp: str = "gelu"
    mlp_ratio: int = GELU_MLP_RATIO
    tied_embeddings: bool = True
    experts: int = 0
    top_k: int = 0
    batch: int = 8

    @property
    def ffn_hidden(self) -> int:
        """Inner width of one MLP (one expert when MoE)."""
        if self.mlp == "swiglu":
            return _round_up(round(SWIGLU_RATIO * self.hidden), SWIGLU_MULTIPLE)
        return self.mlp_ratio * self.hidden

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    def validate(self) -> "GPTConfig":
        """Raise :class:`InputError` with one line if this shape cannot be built; return self."""
        _require_positive("gpt", vocab=self.vocab, seq_len=self.seq_len, layers=self.layers,
                          hidden=self.hidden, heads=self.heads, mlp_ratio=self.mlp_ratio,
                          batch=self.batch)
        if self.hidden % self.heads:
            raise InputError(f"gpt: heads ({self.heads}) must divide hidden ({self.hidden})")
        if self.mlp not in MLP_KINDS:
            raise InputError(f"gpt: unknown mlp {self.mlp!r}; accepted: {', '.join(MLP_KINDS)}")
        if self.experts < 0 or self.top_k < 0:
            raise InputError(f"gpt: experts ({self.experts}) and top_k ({self.top_k}) must be >= 0")
        if self.experts and not 1 <= self.top_k <= self.experts:
            raise InputError(f"gpt: top_k ({self.top_k}) must be between 1 and experts ({self.experts})")
        if not self.experts and self.top_k:
            raise InputError(f"gpt: top_k ({self.top_k}) needs experts > 0 (dense model has none)")
        return self


def _init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=INIT_STD, generator=generator)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class CausalSelfAttention(nn.Module):
    """Fused qkv projection, SDPA with ``is_causal=True``, output projection."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, s, h))


class MLP(nn.Module):
    """GELU MLP (2 matmuls, with biases) or SwiGLU MLP (3 matmuls, no biases, as in LLaMA)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        ffn, bias = cfg.ffn_hidden, cfg.mlp == "gelu"
        self.up = nn.Linear(cfg.hidden, ffn, bias=bias)
        self.gate = nn.Linear(cfg.hidden, ffn, bias=False) if cfg.mlp == "swiglu" else None
        self.down = nn.Linear(ffn, cfg.hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x)))


class MoE(nn.Module):
    """Mixture of expert MLPs: linear router, softmax over the top-k router logits.

    Tokens are dispatched by gathering each expert's tokens (``index_select``) and the
    weighted expert outputs are summed back with ``index_add``: an expert only computes
    the tokens routed to it, so the FLOPs are ``top_k`` MLPs per token, as counted in
    :func:`ai_ready.train.flops.gpt_step_flops`. There is no auxiliary load-balancing loss.

    ``ep_group``: expert parallelism. Rank ``r`` of the group holds experts
    ``[r·E/n, (r+1)·E/n)``; the router is replicated. Each token copy is sent to the rank of
    its expert with ``all_to_all_single`` (autograd-aware), computed there and sent back.
    """

    def __init__(self, cfg: GPTConfig, ep_group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.top_k = cfg.top_k
        self.num_experts = cfg.experts
        self.ep_group = ep_group
        self.ep_size = dist.get_world_size(ep_group) if ep_group is not None else 1
        if cfg.experts % self.ep_size:
            raise InputError(f"moe: experts ({cfg.experts}) must be a multiple of the "
                             f"expert-parallel size ({self.ep_size})")
        self.local_experts = cfg.experts // self.ep_size
        self.first_expert = (dist.get_rank(ep_group) if ep_group is not None else 0) * self.local_experts
        self.router = nn.Linear(cfg.hidden, cfg.experts, bias=False)
        self.experts = nn.ModuleList(MLP(cfg) for _ in range(self.local_experts))
        self.last_expert_index: torch.Tensor | None = None  # [tokens, top_k], for inspection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        top_logits, top_index = self.router(tokens).topk(self.top_k, dim=-1)
        gates = top_logits.softmax(dim=-1)
        self.last_expert_index = top_index.detach()
        flat_expert = top_index.reshape(-1)
        flat_token = torch.arange(tokens.shape[0], device=x.device).repeat_interleave(self.top_k)
        order = torch.argsort(flat_expert, stable=True)  # token copies grouped by expert
        token_index, sorted_expert = flat_token[order], flat_expert[order]
        routed = tokens.index_select(0, token_index)
        if self.ep_group is None:
            y = self._run_experts(routed, sorted_expert)
        else:
            y = self._run_experts_parallel(routed, sorted_expert)
        y = y * gates.reshape(-1)[order].unsqueeze(-1)
        return torch.zeros_like(tokens).index_add(0, token_index, y).view(shape)

    def _run_experts(self, routed: torch.Tensor, expert_id: torch.Tensor) -> torch.Tensor:
        """Apply local experts to token copies already grouped by (global) expert id."""
        counts = torch.bincount(expert_id - self.first_expert, minlength=self.local_experts).tolist()
        parts = [expert(chunk) for expert, chunk in zip(self.experts, routed.split(counts)) if chunk.numel()]
        return torch.cat(parts) if parts else routed[:0]

    def _run_experts_parallel(self, routed: torch.Tensor, expert_id: torch.Tensor) -> torch.Tensor:
        """Send token copies to their expert's rank, compute there, bring the results back."""
        send_counts = torch.bincount(expert_id // self.local_experts, minlength=self.ep_size)
        recv_counts = torch.empty_like(send_counts)
        dist.all_to_all_single(recv_counts, send_counts, group=self.ep_group)
        send, recv = send_counts.tolist(), recv_counts.tolist()
        received = funcol.all_to_all_single_autograd(routed, recv, send, self.ep_group)
        received_id = expert_id.new_empty(sum(recv))
        dist.all_to_all_single(received_id, expert_id, recv, send, group=self.ep_group)
        # Arrivals are grouped by source rank; regroup them by expert and undo it afterwards.
        order = torch.argsort(received_id, stable=True)
        y = self._run_experts(received.index_select(0, order), received_id[order])
        y = torch.empty_like(y).index_copy(0, order, y)
        return funcol.all_to_all_single_autograd(y, send, recv, self.ep_group)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig, ep_group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.mlp = MoE(cfg, ep_group) if cfg.is_moe else MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only language model: tokens [B, S] -> logits [B, S, V].

    ``ep_group``: split each MoE layer's experts across this process group (see :class:`MoE`).
    """

    def __init__(self, cfg: GPTConfig, ep_group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        self.wte = nn.Embedding(cfg.vocab, cfg.hidden)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg, ep_group) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.lm_head = None if cfg.tied_embeddings else nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        self._init_parameters(torch.initial_seed())

    def _init_parameters(self, seed: int) -> None:
        """GPT-2 initialisation that does not depend on how experts are split across ranks.

        Shared weights draw from one stream seeded by ``seed`` in module order, and each expert
        from its own stream keyed by (layer, global expert index); so an expert-parallel model
        holds exactly the slices of the all-local model built from the same seed, on every rank.
        """
        shared = torch.Generator().manual_seed(seed)
        streams: dict[int, torch.Generator] = {}
        for layer, block in enumerate(self.blocks):
            if isinstance(block.mlp, MoE):
                for i, expert in enumerate(block.mlp.experts):
                    key = (seed * EXPERT_SEED_STRIDE + layer) * EXPERT_SEED_STRIDE + block.mlp.first_expert + i
                    stream = torch.Generator().manual_seed(key % 2**63)
                    streams.update((id(m), stream) for m in expert.modules())
        for module in self.modules():
            _init_weights(module, streams.get(id(module), shared))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        seq = tokens.shape[1]
        if seq > self.cfg.seq_len:
            raise InputError(f"gpt: sequence of {seq} tokens is longer than seq_len {self.cfg.seq_len}")
        x = self.wte(tokens) + self.wpe(torch.arange(seq, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        weight = self.wte.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, weight)


@dataclass(frozen=True)
class ResNetConfig:
    """Shape of a CIFAR-style ResNet and its per-step batch (images per step on one rank).

    Stage ``i`` has ``blocks_per_stage`` BasicBlocks of width ``widths[i]``; every stage after
    the first halves the resolution with a stride-2 first block.
    """

    image_size: int = 32
    channels: int = 3
    classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 1
    batch: int = 16

    def validate(self) -> "ResNetConfig":
        """Raise :class:`InputError` with one line if this shape cannot be built; return self."""
        _require_positive("cnn", image_size=self.image_size, channels=self.channels,
                          classes=self.classes, blocks_per_stage=self.blocks_per_stage,
                          batch=self.batch)
        if not self.widths:
            raise InputError("cnn: widths must list at least one stage width")
        for width in self.widths:
            _require_positive("cnn", width=width)
        return self


def stage_strides(cfg: ResNetConfig) -> list[int]:
    """Stride of each stage's first block: 1 for the first stage, 2 after."""
    return [1] + [2] * (len(cfg.widths) - 1)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1 conv + BN when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """Images [B, C, H, W] -> class logits [B, classes]."""

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        self.stem = nn.Sequential(nn.Conv2d(cfg.channels, cfg.widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cfg.widths[0]), nn.ReLU())
        blocks: list[nn.Module] = []
        cin = cfg.widths[0]
        for width, stride in zip(cfg.widths, stage_strides(cfg)):
            for i in range(cfg.blocks_per_stage):
                blocks.append(BasicBlock(cin, width, stride if i == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cfg.widths[-1], cfg.classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(images))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a convolution (floor division, as torch computes it)."""
    return math.floor((size + 2 * padding - kernel) / stride) + 1
