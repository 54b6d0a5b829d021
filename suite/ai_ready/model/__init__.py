"""The analytic performance model: workloads, and the per-configuration arithmetic of transformers.

:mod:`ai_ready.model.workload` describes what is trained and how it is split over GPUs;
:mod:`ai_ready.model.transformer` counts its parameters, FLOPs and memory per GPU. Pure Python,
no torch, so a search over 100,000-GPU layouts stays fast.
"""

from ai_ready.model.transformer import (MemoryBreakdown, activation_bytes_per_layer, active_parameters,
                                        fits_memory, hardware_flops_per_step, layers_in_flight,
                                        memory_per_gpu, model_flops_per_step, parameters,
                                        recompute_flops_per_step)
from ai_ready.model.workload import Parallelism, Training, TransformerModel, Workload, load_workload

__all__ = [
    "MemoryBreakdown", "Parallelism", "Training", "TransformerModel", "Workload",
    "activation_bytes_per_layer", "active_parameters", "fits_memory", "hardware_flops_per_step",
    "layers_in_flight", "load_workload", "memory_per_gpu", "model_flops_per_step", "parameters",
    "recompute_flops_per_step",
]
