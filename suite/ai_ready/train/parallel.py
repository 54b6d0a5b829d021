"""Data parallelism for the training workloads: DDP, or FSDP2 (`fully_shard`) per block.

FSDP2 is used rather than the older FullyShardedDataParallel because it also
runs on CPUs over gloo, so the same code is tested here and runs on GPUs.

Expert parallelism (mixture-of-experts models built with an ``ep_group`` spanning
all ranks): each rank holds different experts, so their parameters are kept out of
DDP's all-reduce and FSDP's sharding. Each rank's loss is a mean over its own
tokens and the shared gradients are averaged over ranks, so training minimises the
mean of the ranks' losses; an expert's gradient arrives summed over every rank's
tokens through the all-to-all's backward, and is divided by the world size to be
the gradient of that same objective.
"""

from __future__ import annotations

from typing import Any

import torch

PARALLEL = ("ddp", "fsdp")


def shard_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The submodules FSDP shards one by one: transformer blocks, or the CNN's residual blocks."""
    blocks = getattr(model, "blocks", None)
    if blocks is not None:
        return list(blocks)
    from ai_ready.train.models import BasicBlock

    return [m for m in model.modules() if isinstance(m, BasicBlock)]


def expert_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters of experts split across ranks (expert parallelism): different on every rank."""
    from ai_ready.train.models import MoE

    return [p for m in model.modules() if isinstance(m, MoE) and m.ep_group is not None
            for p in m.experts.parameters()]


def wrap(model: torch.nn.Module, parallel: str, device: str, world: int) -> torch.nn.Module:
    """The model as each rank trains it; unchanged for one rank."""
    if world == 1:
        return model
    experts = expert_parameters(model)
    for param in experts:
        param.register_hook(lambda grad: grad / world)
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        if experts:
            own = {id(p) for p in experts}
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                model, [name for name, p in model.named_parameters() if id(p) in own])
        ids: Any = [torch.device(device).index] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    ignored = set(experts) or None
    for unit in shard_units(model):
        fully_shard(unit, ignored_params=ignored)
    fully_shard(model, ignored_params=ignored)
    return model


def enable_recompute(model: torch.nn.Module) -> int:
    """Full activation recomputation: every block's forward runs again in backward instead of keeping
    its activations (torch.utils.checkpoint, non-reentrant). Returns how many blocks were wrapped."""
    from torch.utils.checkpoint import checkpoint

    units = shard_units(model)
    for unit in units:
        original = unit.forward

        def forward(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            return checkpoint(_original, *args, use_reentrant=False, **kwargs)

        unit.forward = forward  # type: ignore[method-assign]
    return len(units)


def gradient_sync(model: torch.nn.Module, enabled: bool) -> Any:
    """A context in which backward does (or does not) reduce gradients across ranks: DDP's no_sync,
    FSDP2's set_requires_gradient_sync. Used by the exposed-communication probe."""
    import contextlib

    if enabled:
        return contextlib.nullcontext()
    no_sync = getattr(model, "no_sync", None)
    if no_sync is not None:
        return no_sync()
    setter = getattr(model, "set_requires_gradient_sync", None)
    if setter is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def paused() -> Any:
        setter(False)
        try:
            yield
        finally:
            setter(True)

    return paused()
