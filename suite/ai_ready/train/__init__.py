"""Training workloads: scaled-down GPT, MoE and ResNet models, their analytic FLOPs, and presets."""

from ai_ready.train.flops import StepFlops, cnn_step_flops, flop_counter_flops, gpt_step_flops
from ai_ready.train.models import GPT, GPTConfig, ResNet, ResNetConfig
from ai_ready.train.presets import PRESETS, resolve

__all__ = [
    "GPT", "GPTConfig", "PRESETS", "ResNet", "ResNetConfig", "StepFlops",
    "cnn_step_flops", "flop_counter_flops", "gpt_step_flops", "resolve",
]
