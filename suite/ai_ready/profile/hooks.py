"""Where the in-job recorder attaches to torch: hooks torch offers, and thin wrappers where it offers none.

Every wrapper calls the original and only adds clock reads around it; a
failure inside our bookkeeping never reaches the job (see ``_safe``).
Forward is timed with global module hooks until the first step ends, which
finds the outermost modules (the model, a loss module); then the global hooks
are removed and only those modules keep hooks, so a deep model pays nothing
per submodule.

Once the profile is complete and the job runs on (``--run-to-completion``),
everything is taken off again (:class:`Attachments`): hooks removed, patched
functions restored, and any wrapper the job still holds a reference to passes
straight through, so the rest of the run goes at its bare speed. Only
``torch.save``/``torch.load`` keep counting, so a checkpoint written later in
the run is still seen (its cost dwarfs a clock read).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import warnings
from typing import Any, Callable

from ai_ready.profile import agent
from ai_ready.profile.agent import COLLECTIVES, Recorder, _file_size
from ai_ready.profile.work import tensor_bytes

#: torch warns about global module hooks when a module is compiled; ours are global only during the first
#: step and are not the job's, so the job's output should not carry that warning.
COMPILE_HOOK_WARNING = r"Using `torch.compile\(module\)` when there are global hooks"


def _safe(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except SystemExit:
        raise
    except Exception as exc:  # our bookkeeping must never break the job
        sys.stderr.write(f"ai-ready: profiling hook failed: {exc!r}\n")
        return None


class Attachments:
    """Everything the recorder attached to torch, so that all of it can be taken off at once."""

    def __init__(self) -> None:
        self.detached = False
        self.handles: list[Any] = []
        self.patches: list[tuple[Any, str, Any]] = []
        self.kept: set[tuple[int, str]] = set()
        self.filters: list[Any] = []

    def ignore_warning(self, message: str) -> None:
        """A warnings filter of ours, taken off with the rest (the job's own warnings stay its own)."""
        warnings.filterwarnings("ignore", message=message)
        self.filters.append(warnings.filters[0])

    def patch(self, owner: Any, name: str, wrapper: Any, keep: bool = False) -> None:
        """Replace ``owner.name`` with ``wrapper``; ``keep``: leave it in place after the profile."""
        self.patches.append((owner, name, getattr(owner, name)))
        if keep:
            self.kept.add((id(owner), name))
        setattr(owner, name, wrapper)

    def handle(self, handle: Any) -> Any:
        self.handles.append(handle)
        return handle

    def detach(self) -> None:
        """Remove every hook and restore every patched function except the kept ones."""
        self.detached = True
        for handle in self.handles:
            _safe(handle.remove)
        self.handles.clear()
        for owner, name, original in reversed(self.patches):
            if (id(owner), name) not in self.kept:
                _safe(lambda: setattr(owner, name, original))
        for entry in self.filters:
            if entry in warnings.filters:
                warnings.filters.remove(entry)
        self.filters.clear()
        warnings._filters_mutated()  # type: ignore[attr-defined]  # the caches must see the removal


def install(torch: Any, rec: Recorder) -> Attachments:
    """Attach the recorder to an imported torch; the recorder takes it off after a complete profile."""
    at = Attachments()
    at.ignore_warning(COMPILE_HOOK_WARNING)
    for attach in (_optimizer_hooks, _module_hooks, _backward, _dataloader, _checkpoint_io, _features, _sync,
                   _collectives):
        _safe(lambda: attach(torch, rec, at))
    rec.detach = at.detach
    return at


def _optimizer_hooks(torch: Any, rec: Recorder, at: Attachments) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    def pre(opt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # args are step()'s own: (optimizer, closure?, ...)
        closure = kwargs.get("closure") if "closure" in kwargs else (args[1] if len(args) > 1 else None)
        if not callable(closure):
            _safe(lambda: rec.optimizer_pre(opt))
            return None
        _safe(lambda: rec.optimizer_pre(opt, closure=True))

        @functools.wraps(closure)
        def timed_closure(*c_args: Any, **c_kwargs: Any) -> Any:
            try:
                return closure(*c_args, **c_kwargs)
            finally:
                _safe(rec.closure_done)

        if "closure" in kwargs:
            return args, dict(kwargs, closure=timed_closure)
        return (args[0], timed_closure, *args[2:]), kwargs

    at.handle(register_optimizer_step_pre_hook(pre))
    # the post hook may raise SystemExit to stop the job cleanly once the profile is complete
    at.handle(register_optimizer_step_post_hook(lambda opt, args, kwargs: _safe(lambda: rec.optimizer_post(opt))))


def _module_hooks(torch: Any, rec: Recorder, at: Attachments) -> None:
    from torch.nn.modules import module as module_mod

    embedding = torch.nn.Embedding
    state: dict[str, Any] = {"started": [], "global": [], "local": False}

    def pre(module: Any, args: tuple[Any, ...]) -> None:
        if rec.module_depth == 0 and rec.active_phase is None:
            _safe(lambda: rec.root_forward_start(module, args))
            state["started"].append(rec.enter("forward"))
        elif rec.module_depth == 0:
            state["started"].append(False)
        elif not state["local"] and isinstance(module, embedding) and not _compiling(torch):
            _safe(lambda: rec.embedding_fed(module, args))
        rec.module_depth += 1

    def post(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        rec.module_depth = max(rec.module_depth - 1, 0)
        if rec.module_depth == 0:
            started = state["started"].pop() if state["started"] else False
            if started:
                rec.exit("forward", started)
                _safe(lambda: rec.root_forward_end(module, args, kwargs, torch.is_grad_enabled()))
            # only between outermost calls: inside one, the outer module's own post hook is still to come
            if not state["local"] and rec.done_steps:
                _localise()

    def _localise() -> None:
        """After the first step: hooks only on the modules seen outermost; global hooks removed."""
        state["local"] = True
        for handle in state["global"]:
            handle.remove()
        for module in list(rec.roots.values()):
            at.handle(module.register_forward_pre_hook(pre))
            at.handle(module.register_forward_hook(post, with_kwargs=True, always_call=True))

    state["global"] = [at.handle(module_mod.register_module_forward_pre_hook(pre)),
                       at.handle(module_mod.register_module_forward_hook(post, with_kwargs=True, always_call=True))]


def _compiling(torch: Any) -> bool:
    """True while dynamo traces (tensors are fake then: nothing to remember of them)."""
    compiler = getattr(torch, "compiler", None)
    check = getattr(compiler, "is_compiling", None)
    return bool(check()) if check is not None else False


def _backward(torch: Any, rec: Recorder, at: Attachments) -> None:
    """Backward timing; also the recorder's safe point: no hook list is being iterated when it starts."""
    original = torch.autograd.backward

    @functools.wraps(original)
    def backward(*args: Any, **kwargs: Any) -> Any:
        rec.safe_point()
        if at.detached:
            return original(*args, **kwargs)
        started = rec.enter("backward")
        try:
            return original(*args, **kwargs)
        finally:
            rec.exit("backward", started)
            if started:
                _safe(rec.backward_done)

    at.patch(torch.autograd, "backward", backward)
    tensor_backward = torch.Tensor.backward

    @functools.wraps(tensor_backward)
    def tensor_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        rec.safe_point()
        if at.detached:
            return tensor_backward(self, *args, **kwargs)
        started = rec.enter("backward")
        try:
            return tensor_backward(self, *args, **kwargs)
        finally:
            rec.exit("backward", started)
            if started:
                _safe(rec.backward_done)

    at.patch(torch.Tensor, "backward", tensor_method)


def _dataloader(torch: Any, rec: Recorder, at: Attachments) -> None:
    from torch.utils.data import dataloader as dl

    original_next = dl._BaseDataLoaderIter.__next__

    @functools.wraps(original_next)
    def next_batch(self: Any) -> Any:
        rec.safe_point()
        if at.detached:
            return original_next(self)
        started = rec.enter("data")
        try:
            batch = original_next(self)
        finally:
            rec.exit("data", started)
        _safe(lambda: rec.batch(batch))
        return batch

    at.patch(dl._BaseDataLoaderIter, "__next__", next_batch)
    original_iter = dl.DataLoader.__iter__

    @functools.wraps(original_iter)
    def iterate(self: Any) -> Any:
        if rec.features["dataloader"] is None and not at.detached:
            rec.features["dataloader"] = {"workers": self.num_workers, "pin_memory": bool(self.pin_memory),
                                          "batch_size": self.batch_size,
                                          "persistent_workers": bool(getattr(self, "persistent_workers", False))}
        return original_iter(self)

    at.patch(dl.DataLoader, "__iter__", iterate)


def _checkpoint_io(torch: Any, rec: Recorder, at: Attachments) -> None:
    """Kept after the profile: a checkpoint written late in the run still counts."""
    save, load = torch.save, torch.load

    @functools.wraps(save)
    def timed_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        if rec.active_phase == "checkpoint":  # inside a checkpoint already counted (dcp.save's own writes)
            return save(obj, f, *args, **kwargs)
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
        if rec.active_phase == "checkpoint":
            return load(f, *args, **kwargs)
        started = rec.enter("checkpoint")
        t0 = rec.clock()
        size = _file_size(f)
        try:
            return load(f, *args, **kwargs)
        finally:
            seconds = rec.clock() - t0
            rec.exit("checkpoint", started)
            _safe(lambda: rec.checkpoint("load", size, seconds))

    at.patch(torch, "save", timed_save, keep=True)
    at.patch(torch, "load", timed_load, keep=True)
    # torch.distributed.checkpoint (FSDP2, torchtitan) costs half a second to import: hooked when the job
    # imports it, never imported for it
    _after_import("torch.distributed.checkpoint", lambda dcp: _distributed_checkpoint(dcp, rec, at))


def _distributed_checkpoint(dcp: Any, rec: Recorder, at: Attachments) -> None:
    """``dcp.save``/``dcp.async_save``/``dcp.load``: calls and seconds; bytes on rank 0 as the size of the whole
    checkpoint folder (every rank writes its shard at once, so that over rank 0's seconds is the aggregate)."""
    for name, kind in (("save", "save"), ("async_save", "save"), ("load", "load")):
        original = getattr(dcp, name, None)
        if original is None:
            continue

        def wrapper(*args: Any, _original: Any = original, _kind: str = kind, **kwargs: Any) -> Any:
            if rec.active_phase == "checkpoint":
                return _original(*args, **kwargs)
            started = rec.enter("checkpoint")
            t0 = rec.clock()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds = rec.clock() - t0
                rec.exit("checkpoint", started)
                folder = kwargs.get("checkpoint_id")
                nbytes = _folder_size(folder) if rec.rank == 0 and isinstance(folder, (str, os.PathLike)) else 0
                _safe(lambda: rec.checkpoint(_kind, nbytes, seconds))

        at.patch(dcp, name, functools.wraps(original)(wrapper), keep=True)


def _folder_size(folder: Any) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            total += _file_size(os.path.join(root, name))
    return total


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


def _features(torch: Any, rec: Recorder, at: Attachments) -> None:
    enter = torch.autocast.__enter__

    def autocast_enter(self: Any) -> Any:
        if getattr(self, "_enabled", True) and not at.detached:
            rec.features["autocast"].append(f"{self.device}:{str(self.fast_dtype).removeprefix('torch.')}")
        return enter(self)

    at.patch(torch.autocast, "__enter__", autocast_enter)
    _grad_scaler(torch, rec, at)
    compile_fn = torch.compile

    @functools.wraps(compile_fn)
    def compiled(*args: Any, **kwargs: Any) -> Any:
        rec.features["compile"] = True
        return compile_fn(*args, **kwargs)

    at.patch(torch, "compile", compiled)
    module_compile = torch.nn.Module.compile

    @functools.wraps(module_compile)
    def module_compiled(self: Any, *args: Any, **kwargs: Any) -> Any:
        rec.features["compile"] = True
        return module_compile(self, *args, **kwargs)

    at.patch(torch.nn.Module, "compile", module_compiled)
    import torch.utils.checkpoint as ckpt

    for name in ("checkpoint", "checkpoint_sequential"):
        original = getattr(ckpt, name)

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            rec.features["activation_checkpointing"] = True
            return _original(*args, **kwargs)

        at.patch(ckpt, name, functools.wraps(original)(wrapper))


def _grad_scaler(torch: Any, rec: Recorder, at: Attachments) -> None:
    """GradScaler in use, and the steps it skips (inf/NaN gradients): each still ends an iteration."""
    scaler_cls = torch.amp.GradScaler
    scaler_init = scaler_cls.__init__

    @functools.wraps(scaler_init)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        scaler_init(self, *args, **kwargs)
        if getattr(self, "_enabled", True):
            rec.features["grad_scaler"] = True

    at.patch(scaler_cls, "__init__", init)
    scaler_step = scaler_cls.step

    @functools.wraps(scaler_step)
    def step(self: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        if at.detached:
            return scaler_step(self, optimizer, *args, **kwargs)
        before = rec.optimizer_steps
        result = scaler_step(self, optimizer, *args, **kwargs)
        if rec.optimizer_steps == before and getattr(self, "_enabled", True):
            _safe(lambda: rec.step_skipped(optimizer))
        return result

    at.patch(scaler_cls, "step", step)


def _sync(torch: Any, rec: Recorder, at: Attachments) -> None:
    synchronize = torch.cuda.synchronize

    @functools.wraps(synchronize)
    def timed_synchronize(*args: Any, **kwargs: Any) -> Any:
        if at.detached:
            return synchronize(*args, **kwargs)
        with rec.phase("sync"):
            return synchronize(*args, **kwargs)

    at.patch(torch.cuda, "synchronize", timed_synchronize)
    item = torch.Tensor.item

    def timed_item(self: Any) -> Any:
        if at.detached or not self.is_cuda:
            return item(self)
        with rec.phase("sync"):
            return item(self)

    at.patch(torch.Tensor, "item", timed_item)


def _collectives(torch: Any, rec: Recorder, at: Attachments) -> None:
    """torch.distributed calls (FSDP2 issues its own through them) and DDP's buckets through a comm hook."""
    import torch.distributed as dist

    if not dist.is_available():
        return
    for name in COLLECTIVES:
        original = getattr(dist, name, None)
        if original is None:
            continue

        def wrapper(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            if at.detached:
                return _original(*args, **kwargs)
            started = rec.enter("comm")
            t0 = rec.clock()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds = rec.clock() - t0
                rec.exit("comm", started)
                _safe(lambda: rec.collective(_name, tensor_bytes(args, kwargs), seconds))

        at.patch(dist, name, functools.wraps(original)(wrapper))
    _ddp_comm_hook(torch, rec, at)


def _ddp_comm_hook(torch: Any, rec: Recorder, at: Attachments) -> None:
    """Time DDP's gradient all-reduce per bucket: registered at the first forward unless the job registers
    its own hook, which is then wrapped instead (DDP accepts only one). DDP cannot drop a hook, so after the
    profile the wrapper calls the hook directly."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    def timing(hook: Any) -> Any:
        def timed(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects annotations other than its own
            if at.detached:
                return hook(state, bucket)
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

    at.patch(DDP, "register_comm_hook", user_register)
    builtin = DDP._register_builtin_comm_hook

    def user_builtin(self: Any, comm_hook_type: Any) -> Any:
        self._ai_ready_hooked = True  # a built-in (C++) hook cannot be wrapped: DDP's buckets go untimed
        return builtin(self, comm_hook_type)

    at.patch(DDP, "_register_builtin_comm_hook", user_builtin)
    forward = DDP.forward

    def first_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_ai_ready_hooked", False) and not at.detached:
            self._ai_ready_hooked = True
            from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

            _safe(lambda: register(self, self.process_group, timing(allreduce_hook)))
        return forward(self, *args, **kwargs)

    at.patch(DDP, "forward", first_forward)


class _PostImportHook(importlib.abc.MetaPathFinder):
    """Calls ``then(module)`` right after the job imports ``name`` (nothing is imported before it does)."""

    def __init__(self, name: str, then: Callable[[Any], Any]) -> None:
        self.name = name
        self.then = then
        self.done = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.name or self.done:
            return None
        self.done = True
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module
        then = self.then

        def exec_and_hook(module: Any) -> None:
            exec_module(module)
            _safe(lambda: then(module))

        loader.exec_module = exec_and_hook  # type: ignore[method-assign]
        return spec


def _after_import(name: str, then: Callable[[Any], Any]) -> None:
    """``then(module)`` now if ``name`` is imported, else as soon as the job imports it."""
    if name in sys.modules:
        _safe(lambda: then(sys.modules[name]))
    else:
        sys.meta_path.insert(0, _PostImportHook(name, then))


def arm(rec: Recorder) -> None:
    """Hook torch now if it is already imported, else as soon as the job imports it."""
    _after_import("torch", lambda torch: install(torch, rec))


def start_from_env() -> Recorder | None:
    """Called by the bootstrap at interpreter start-up: record when `ai-ready profile` asked for it."""
    fresh = agent.active() is None
    rec = agent.recorder_from_env()
    if rec is not None and fresh:
        arm(rec)
    return rec
