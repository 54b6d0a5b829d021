"""Where the in-job recorder attaches to torch: hooks torch offers, and thin wrappers where it offers none.

Every wrapper calls the original and only adds clock reads around it; a
failure inside our bookkeeping never reaches the job (see ``_safe``).
Forward is timed with global module hooks until the first step ends, which
finds the outermost modules (the model, a loss module); then the global hooks
are removed and only those modules keep hooks, so a deep model pays nothing
per submodule.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from typing import Any, Callable

from ai_ready.profile.agent import COLLECTIVES, Recorder, _file_size, _tensor_bytes


def _safe(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except SystemExit:
        raise
    except Exception as exc:  # our bookkeeping must never break the job
        sys.stderr.write(f"ai-ready: profiling hook failed: {exc!r}\n")
        return None


def install(torch: Any, rec: Recorder) -> None:
    """Attach the recorder to an imported torch."""
    _optimizer_hooks(torch, rec)
    _module_hooks(torch, rec)
    _backward(torch, rec)
    _dataloader(torch, rec)
    _checkpoint_io(torch, rec)
    _features(torch, rec)
    _sync(torch, rec)
    _collectives(torch, rec)


def _optimizer_hooks(torch: Any, rec: Recorder) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    register_optimizer_step_pre_hook(lambda opt, args, kwargs: _safe(lambda: rec.optimizer_pre(opt)))
    # the post hook may raise SystemExit to stop the job cleanly once the profile is complete
    register_optimizer_step_post_hook(lambda opt, args, kwargs: _safe(lambda: rec.optimizer_post(opt)))


def _module_hooks(torch: Any, rec: Recorder) -> None:
    from torch.nn.modules import module as module_mod

    state: dict[str, Any] = {"started": [], "global": [], "local": False}

    def pre(module: Any, args: tuple[Any, ...]) -> None:
        if rec.module_depth == 0 and rec.active_phase is None:
            _safe(lambda: rec.root_forward_start(module, args))
            state["started"].append(rec.enter("forward"))
        elif rec.module_depth == 0:
            state["started"].append(False)
        rec.module_depth += 1

    def post(module: Any, args: tuple[Any, ...], output: Any) -> None:
        rec.module_depth = max(rec.module_depth - 1, 0)
        if rec.module_depth == 0:
            if state["started"]:
                rec.exit("forward", state["started"].pop())
            # only between outermost calls: inside one, the outer module's own post hook is still to come
            if not state["local"] and rec.done_steps:
                _localise()

    def _localise() -> None:
        """After the first step: hooks only on the modules seen outermost; global hooks removed."""
        state["local"] = True
        for handle in state["global"]:
            handle.remove()
        for module in list(rec.roots.values()):
            module.register_forward_pre_hook(pre)
            module.register_forward_hook(post, always_call=True)

    state["global"] = [module_mod.register_module_forward_pre_hook(pre),
                       module_mod.register_module_forward_hook(post, always_call=True)]


def _backward(torch: Any, rec: Recorder) -> None:
    original = torch.autograd.backward

    @functools.wraps(original)
    def backward(*args: Any, **kwargs: Any) -> Any:
        started = rec.enter("backward")
        try:
            return original(*args, **kwargs)
        finally:
            rec.exit("backward", started)
            if started:
                _safe(rec.backward_done)

    torch.autograd.backward = backward
    tensor_backward = torch.Tensor.backward

    @functools.wraps(tensor_backward)
    def tensor_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = rec.enter("backward")
        try:
            return tensor_backward(self, *args, **kwargs)
        finally:
            rec.exit("backward", started)
            if started:
                _safe(rec.backward_done)

    torch.Tensor.backward = tensor_method


def _dataloader(torch: Any, rec: Recorder) -> None:
    from torch.utils.data import dataloader as dl

    original_next = dl._BaseDataLoaderIter.__next__

    @functools.wraps(original_next)
    def next_batch(self: Any) -> Any:
        started = rec.enter("data")
        try:
            batch = original_next(self)
        finally:
            rec.exit("data", started)
        _safe(lambda: rec.batch(batch))
        return batch

    dl._BaseDataLoaderIter.__next__ = next_batch
    original_iter = dl.DataLoader.__iter__

    @functools.wraps(original_iter)
    def iterate(self: Any) -> Any:
        if rec.features["dataloader"] is None:
            rec.features["dataloader"] = {"workers": self.num_workers, "pin_memory": bool(self.pin_memory),
                                          "batch_size": self.batch_size,
                                          "persistent_workers": bool(getattr(self, "persistent_workers", False))}
        return original_iter(self)

    dl.DataLoader.__iter__ = iterate


def _checkpoint_io(torch: Any, rec: Recorder) -> None:
    save, load = torch.save, torch.load

    @functools.wraps(save)
    def timed_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        started = rec.enter("checkpoint")
        t0 = rec.clock()
        position = _position(f)
        try:
            return save(obj, f, *args, **kwargs)
        finally:
            seconds = rec.clock() - t0
            rec.exit("checkpoint", started)
            _safe(lambda: rec.checkpoint("save", _written(f, position), seconds))

    @functools.wraps(load)
    def timed_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        started = rec.enter("checkpoint")
        t0 = rec.clock()
        size = _file_size(f)
        try:
            return load(f, *args, **kwargs)
        finally:
            seconds = rec.clock() - t0
            rec.exit("checkpoint", started)
            _safe(lambda: rec.checkpoint("load", size, seconds))

    torch.save, torch.load = timed_save, timed_load


def _position(f: Any) -> int | None:
    try:
        return f.tell() if hasattr(f, "tell") else None
    except Exception:
        return None


def _written(f: Any, position: int | None) -> int:
    if isinstance(f, (str, os.PathLike)):
        return _file_size(f)
    end = _position(f)
    return end - position if end is not None and position is not None else 0


def _features(torch: Any, rec: Recorder) -> None:
    enter = torch.autocast.__enter__

    def autocast_enter(self: Any) -> Any:
        if getattr(self, "_enabled", True):
            rec.features["autocast"].append(f"{self.device}:{str(self.fast_dtype).removeprefix('torch.')}")
        return enter(self)

    torch.autocast.__enter__ = autocast_enter
    scaler_init = torch.amp.GradScaler.__init__

    def scaler(self: Any, *args: Any, **kwargs: Any) -> None:
        rec.features["grad_scaler"] = True
        scaler_init(self, *args, **kwargs)

    torch.amp.GradScaler.__init__ = scaler
    compile_fn = torch.compile

    @functools.wraps(compile_fn)
    def compiled(*args: Any, **kwargs: Any) -> Any:
        rec.features["compile"] = True
        return compile_fn(*args, **kwargs)

    torch.compile = compiled
    import torch.utils.checkpoint as ckpt

    for name in ("checkpoint", "checkpoint_sequential"):
        original = getattr(ckpt, name)

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            rec.features["activation_checkpointing"] = True
            return _original(*args, **kwargs)

        setattr(ckpt, name, functools.wraps(original)(wrapper))


def _sync(torch: Any, rec: Recorder) -> None:
    synchronize = torch.cuda.synchronize

    @functools.wraps(synchronize)
    def timed_synchronize(*args: Any, **kwargs: Any) -> Any:
        with rec.phase("sync"):
            return synchronize(*args, **kwargs)

    torch.cuda.synchronize = timed_synchronize
    item = torch.Tensor.item

    def timed_item(self: Any) -> Any:
        if not self.is_cuda:
            return item(self)
        with rec.phase("sync"):
            return item(self)

    torch.Tensor.item = timed_item


def _collectives(torch: Any, rec: Recorder) -> None:
    """torch.distributed calls (FSDP2 issues its own through them) and DDP's buckets through a comm hook."""
    import torch.distributed as dist

    if not dist.is_available():
        return
    for name in COLLECTIVES:
        original = getattr(dist, name, None)
        if original is None:
            continue

        def wrapper(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            started = rec.enter("comm")
            t0 = rec.clock()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds = rec.clock() - t0
                rec.exit("comm", started)
                _safe(lambda: rec.collective(_name, _tensor_bytes(args, kwargs), seconds))

        setattr(dist, name, functools.wraps(original)(wrapper))
    _ddp_comm_hook(torch, rec)


def _ddp_comm_hook(torch: Any, rec: Recorder) -> None:
    """Time DDP's gradient all-reduce per bucket: registered at the first forward unless the job registers
    its own hook, which is then wrapped instead (DDP accepts only one)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    def timing(hook: Any) -> Any:
        def timed(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects annotations other than its own
            t0 = rec.clock()
            rec.ddp_last_bucket = t0
            nbytes = bucket.buffer().numel() * bucket.buffer().element_size()
            future = hook(state, bucket)

            def done(fut: Any) -> Any:
                _safe(lambda: rec.collective("ddp_bucket_all_reduce", nbytes, rec.clock() - t0))
                return fut.value()

            return future.then(done)

        return timed

    register = DDP.register_comm_hook

    def user_register(self: Any, state: Any, hook: Any) -> Any:
        self._ai_ready_hooked = True
        return register(self, state, timing(hook))

    DDP.register_comm_hook = user_register
    builtin = DDP._register_builtin_comm_hook

    def user_builtin(self: Any, comm_hook_type: Any) -> Any:
        self._ai_ready_hooked = True  # a built-in (C++) hook cannot be wrapped: DDP's buckets go untimed
        return builtin(self, comm_hook_type)

    DDP._register_builtin_comm_hook = user_builtin
    forward = DDP.forward

    def first_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_ai_ready_hooked", False):
            self._ai_ready_hooked = True
            from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

            _safe(lambda: register(self, self.process_group, timing(allreduce_hook)))
        return forward(self, *args, **kwargs)

    DDP.forward = first_forward


class _TorchImportHook(importlib.abc.MetaPathFinder):
    """Installs the hooks right after the job imports torch (nothing is imported before it does)."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.done = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch" or self.done:
            return None
        self.done = True
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module
        rec = self.rec

        def exec_and_hook(module: Any) -> None:
            exec_module(module)
            _safe(lambda: install(module, rec))

        loader.exec_module = exec_and_hook  # type: ignore[method-assign]
        return spec


def arm(rec: Recorder) -> None:
    """Hook torch now if it is already imported, else as soon as the job imports it."""
    if "torch" in sys.modules:
        _safe(lambda: install(sys.modules["torch"], rec))
    else:
        sys.meta_path.insert(0, _TorchImportHook(rec))
