"""Analytic FLOPs and parameter counts of the models in :mod:`ai_ready.train.models`.

What is counted: matrix multiplies and convolutions only, 2 FLOPs per multiply-add, the
same convention as ``torch.utils.flop_counter.FlopCounterMode`` and as MFU in the
literature. Elementwise work (LayerNorm, softmax, GELU, BatchNorm, biases, residuals) is
left out. Backward is 2 x forward: each matmul needs a gradient for its input and one for
its weight; the one exception is the CNN stem, whose input (the images) needs no gradient.

Attention is counted dense: scores ``Q·Kᵀ`` and values ``P·V`` cost ``2·b·s²·h`` each per layer
even though the mask is causal. That is what SDPA's math path computes and what
FlopCounterMode counts for it (on CPU FlopCounterMode counts nothing for the fused CPU flash
kernel, so :func:`flop_counter_flops` forces the math backend), and it is the convention of
the Megatron / Korthikanti model-FLOPs formula. A causal flash kernel on a GPU skips about
half of that work, so for long sequences MFU computed this way flatters such kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ai_ready.train.models import GPTConfig, ResNetConfig, conv_out, stage_strides

FLOPS_PER_MAC = 2
BACKWARD_PER_FORWARD = 2  # gradient w.r.t. input + gradient w.r.t. weight
LAYERNORM_PARAMS = 2  # weight and bias, per channel
BATCHNORM_PARAMS = 2  # weight and bias, per channel (running stats are buffers)
# Korthikanti et al. 2022 model FLOPs per step: 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)).
MEGATRON_COEFFICIENT = 72


@dataclass(frozen=True)
class StepFlops:
    """Model FLOPs of one training step (forward + backward) and the model's size.

    ``megatron`` is the Korthikanti et al. formula for comparison; it only applies to dense
    GELU models (``None`` otherwise). For those it equals ``total`` exactly, because we count
    the same matmuls with the same dense-attention convention; it differs from what a GPU
    really executes by the elementwise work neither counts and by the masked half of
    causal attention that flash kernels skip.
    """

    forward: int
    backward: int
    total: int
    params: int
    active_params: int
    megatron: int | None = None


def _step(forward: int, backward: int, params: int, active: int, megatron: int | None = None) -> StepFlops:
    return StepFlops(forward, backward, forward + backward, params, active, megatron)


def mlp_params(cfg: GPTConfig) -> int:
    """Parameters of one MLP (one expert): GELU has biases, SwiGLU has none."""
    h, f = cfg.hidden, cfg.ffn_hidden
    if cfg.mlp == "swiglu":
        return 3 * h * f
    return 2 * h * f + f + h


def gpt_params(cfg: GPTConfig) -> tuple[int, int]:
    """(total, active) parameters; active counts only ``top_k`` experts per MoE layer."""
    h = cfg.hidden
    attention = 3 * h * h + 3 * h + h * h + h
    norms = 2 * LAYERNORM_PARAMS * h
    if cfg.is_moe:
        router = h * cfg.experts
        mlp_total, mlp_active = router + cfg.experts * mlp_params(cfg), router + cfg.top_k * mlp_params(cfg)
    else:
        mlp_total = mlp_active = mlp_params(cfg)
    embeddings = cfg.vocab * h + cfg.seq_len * h + LAYERNORM_PARAMS * h
    head = 0 if cfg.tied_embeddings else cfg.vocab * h
    shared = embeddings + head + cfg.layers * (attention + norms)
    return shared + cfg.layers * mlp_total, shared + cfg.layers * mlp_active


def gpt_forward_flops(cfg: GPTConfig, batch: int) -> int:
    """Forward matmul FLOPs for ``batch`` sequences of ``cfg.seq_len`` tokens."""
    tokens, h, s = batch * cfg.seq_len, cfg.hidden, cfg.seq_len
    projections = FLOPS_PER_MAC * tokens * (3 * h * h + h * h)
    attention = 2 * FLOPS_PER_MAC * batch * s * s * h  # scores and values, dense
    mlp_matrices = 3 if cfg.mlp == "swiglu" else 2
    mlp = FLOPS_PER_MAC * tokens * mlp_matrices * h * cfg.ffn_hidden
    if cfg.is_moe:
        mlp = mlp * cfg.top_k + FLOPS_PER_MAC * tokens * h * cfg.experts  # active experts + router
    head = FLOPS_PER_MAC * tokens * h * cfg.vocab
    return cfg.layers * (projections + attention + mlp) + head


def megatron_flops(cfg: GPTConfig, batch: int) -> int:
    """Korthikanti et al. model FLOPs per step, 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)), exact integer."""
    b, s, l, h, v = batch, cfg.seq_len, cfg.layers, cfg.hidden, cfg.vocab
    # Expanded so the value is an integer: 72·B·s·l·h² + 12·B·s²·l·h + 6·B·s·V·h.
    return MEGATRON_COEFFICIENT * b * s * l * h * h + 12 * b * s * s * l * h + 6 * b * s * v * h


def gpt_step_flops(cfg: GPTConfig, batch: int | None = None) -> StepFlops:
    """FLOPs of one training step of :class:`~ai_ready.train.models.GPT` (default batch: cfg.batch)."""
    batch = cfg.batch if batch is None else batch
    forward = gpt_forward_flops(cfg, batch)
    params, active = gpt_params(cfg)
    dense_gelu = not cfg.is_moe and cfg.mlp == "gelu" and cfg.mlp_ratio == 4
    return _step(forward, BACKWARD_PER_FORWARD * forward, params, active,
                 megatron_flops(cfg, batch) if dense_gelu else None)


@dataclass(frozen=True)
class _Conv:
    cin: int
    cout: int
    kernel: int
    out_side: int


def _resnet_convs(cfg: ResNetConfig) -> list[_Conv]:
    """Every convolution of the network in order, with its output side (stem first)."""
    side = cfg.image_size
    convs = [_Conv(cfg.channels, cfg.widths[0], 3, side)]
    cin = cfg.widths[0]
    for width, first_stride in zip(cfg.widths, stage_strides(cfg)):
        for i in range(cfg.blocks_per_stage):
            stride = first_stride if i == 0 else 1
            out = conv_out(side, 3, stride, 1)
            convs += [_Conv(cin, width, 3, out), _Conv(width, width, 3, out)]
            if stride != 1 or cin != width:
                convs.append(_Conv(cin, width, 1, conv_out(side, 1, stride, 0)))
            side, cin = out, width
    return convs


def cnn_params(cfg: ResNetConfig) -> int:
    """Trainable parameters: bias-free convs, BatchNorm affine after each conv, linear classifier."""
    convs = _resnet_convs(cfg)
    conv = sum(c.cin * c.cout * c.kernel * c.kernel + BATCHNORM_PARAMS * c.cout for c in convs)
    return conv + cfg.widths[-1] * cfg.classes + cfg.classes


def cnn_step_flops(cfg: ResNetConfig, batch: int | None = None, input_grad: bool = False) -> StepFlops:
    """FLOPs of one training step of :class:`~ai_ready.train.models.ResNet`.

    ``input_grad``: whether the images require a gradient (normally not), in which case the
    stem's backward also computes the gradient of its input.
    """
    batch = cfg.batch if batch is None else batch
    convs = _resnet_convs(cfg)
    per_conv = [FLOPS_PER_MAC * batch * c.cin * c.cout * c.kernel ** 2 * c.out_side ** 2 for c in convs]
    classifier = FLOPS_PER_MAC * batch * cfg.widths[-1] * cfg.classes
    forward = sum(per_conv) + classifier
    backward = BACKWARD_PER_FORWARD * forward
    if not input_grad:
        backward -= per_conv[0]  # the stem only needs its weight gradient
    params = cnn_params(cfg)
    return _step(forward, backward, params, params)


def flop_counter_flops(model: nn.Module, inputs: torch.Tensor,
                       loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """FLOPs of one forward + backward as measured by ``FlopCounterMode``.

    SDPA runs on its math backend here so attention shows up as the two batched matmuls
    it is; the fused CPU kernel is invisible to FlopCounterMode.
    """
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss_fn(model(inputs)).backward()
    return int(counter.get_total_flops())
