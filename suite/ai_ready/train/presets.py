"""Named model sizes for the training benchmark, and CLI overrides on top of them.

``tiny`` presets are smoke tests (20 steps in seconds on 2 CPU cores); ``1b`` is sized for
one H100 80 GB in bf16 with AdamW (about 1.0e9 parameters, see ``tests/test_train_models.py``): its batch
follows from the memory measured on an H200 (:data:`MEMORY_PLAN`), so it fits the GPU it names.
Each config carries its per-step batch (``batch``: sequences or images per rank).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Union

from ai_ready.errors import InputError
from ai_ready.train.models import GPTConfig, ResNetConfig

Config = Union[GPTConfig, ResNetConfig]

PRESETS: dict[str, dict[str, Config]] = {
    "gpt": {
        "tiny": GPTConfig(vocab=512, seq_len=64, layers=2, hidden=64, heads=4, batch=8),
        "small": GPTConfig(vocab=8192, seq_len=256, layers=6, hidden=384, heads=6, batch=16),
        "medium": GPTConfig(vocab=32000, seq_len=1024, layers=12, hidden=768, heads=12, batch=8),
        # 24 x 1792 (head dim 128), tied 32k vocab: 0.99e9 parameters; batch 4 from MEMORY_PLAN (batch 8
        # peaked at 104.8 GB on an H200, more than the 80 GB of the H100 it is meant for)
        "1b": GPTConfig(vocab=32000, seq_len=2048, layers=24, hidden=1792, heads=14, batch=4),
    },
    "moe": {
        "tiny": GPTConfig(vocab=512, seq_len=64, layers=2, hidden=64, heads=4,
                          experts=4, top_k=2, batch=8),
        "small": GPTConfig(vocab=8192, seq_len=256, layers=6, hidden=384, heads=6,
                           experts=8, top_k=2, batch=16),
        "medium": GPTConfig(vocab=32000, seq_len=1024, layers=12, hidden=768, heads=12,
                            mlp="swiglu", experts=8, top_k=2, batch=8),
    },
    "cnn": {
        "tiny": ResNetConfig(image_size=16, widths=(8, 16, 32), blocks_per_stage=1, batch=16),
        "small": ResNetConfig(image_size=32, widths=(16, 32, 64), blocks_per_stage=3, batch=128),  # ResNet-20
        "medium": ResNetConfig(image_size=32, widths=(64, 128, 256, 512), blocks_per_stage=2, batch=128),
    },
}


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """What a preset needs on the GPU it is documented for, from a measured peak: the model states (16 bytes per
    parameter: bf16 weights and gradients, fp32 master weights and two Adam moments, Rajbhandari et al. SC'20) plus
    the measured activations per sequence; the batch is the largest power of two under ``usable`` of the device."""

    device: str
    device_gb: float
    parameters: float
    per_sequence_gb: float
    source: str
    usable: float = 0.9  # the CUDA context, the allocator's fragmentation and NCCL buffers take the rest

    @property
    def states_gb(self) -> float:
        return 16.0 * self.parameters / 1e9

    def peak_gb(self, batch: int) -> float:
        return self.states_gb + batch * self.per_sequence_gb

    def batch(self) -> int:
        batch = 1
        while self.peak_gb(batch * 2) <= self.usable * self.device_gb:
            batch *= 2
        return batch


#: Memory plans of the presets sized for a named GPU.
MEMORY_PLAN: dict[tuple[str, str], MemoryPlan] = {
    ("gpt", "1b"): MemoryPlan(
        device="h100-sxm", device_gb=80.0, parameters=986_420_736,
        # (104.8 GB peak − 15.8 GB of states) / 8 sequences of 2,048 tokens
        per_sequence_gb=(104.8 - 16.0 * 986_420_736 / 1e9) / 8,
        source="`ai-ready train gpt --preset 1b --precision bf16` at batch 8 on one H200, 2026-12-04: peak CUDA "
               "memory 104.8 GB (tests/data/h200-2026-12-04/train-gpt-1b-bf16.json)"),
}


def _field_names(config: Config) -> list[str]:
    return [f.name for f in dataclasses.fields(config)]


def _coerce(name: str, value: Any, current: Any) -> Any:
    """Turn a CLI value into the field's type (widths may come as "16,32,64")."""
    if isinstance(current, tuple):
        items = value.split(",") if isinstance(value, str) else value
        try:
            return tuple(int(item) for item in items)
        except (TypeError, ValueError):
            raise InputError(f"--{name.replace('_', '-')}: expected comma-separated integers, got {value!r}") from None
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    if isinstance(current, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"--{name.replace('_', '-')}: expected an integer, got {value!r}") from None
    return value


def resolve(arch: str, preset: str, overrides: Mapping[str, Any] | None = None) -> Config:
    """The preset's config with ``overrides`` applied (None values skipped), validated.

    Override keys are config field names; dashes are accepted for underscores
    (``seq-len`` = ``seq_len``).
    """
    if arch not in PRESETS:
        raise InputError(f"unknown architecture {arch!r}; accepted: {', '.join(PRESETS)}")
    if preset not in PRESETS[arch]:
        raise InputError(f"unknown {arch} preset {preset!r}; accepted: {', '.join(PRESETS[arch])}")
    config = PRESETS[arch][preset]
    fields = _field_names(config)
    changes: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        name = key.replace("-", "_")
        if name not in fields:
            accepted = ", ".join("--" + f.replace("_", "-") for f in fields)
            raise InputError(f"--{key.replace('_', '-')} does not apply to {arch}; accepted: {accepted}")
        changes[name] = _coerce(name, value, getattr(config, name))
    return dataclasses.replace(config, **changes).validate()
