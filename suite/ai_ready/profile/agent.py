"""The in-job half of `ai-ready profile`: hooks that time an unmodified PyTorch job from inside.

Loaded at interpreter start-up by the bootstrap ``sitecustomize`` (see
:mod:`ai_ready.profile.bootstrap`), so the user's files are never edited. This
module must stay light: it imports nothing heavy until the job imports torch
itself (a post-import hook), and a failure here disables profiling instead of
breaking the job.

What is recorded, per step and per rank (see docs/profile.md):

- step boundaries: the end of ``optimizer.step()`` (global optimizer hooks; the
  first optimizer that steps sets the rhythm), or ``with ai_ready.step():``
  blocks, or, for a job that updates weights by hand, forward/backward cycles
  (a fallback that says so);
- exclusive phase times: data wait (DataLoader ``__next__``), forward (the
  outermost modules' calls, loss included when it is a module), backward,
  optimizer, checkpoint I/O, collectives outside those, host-device sync, and
  the rest ("other"); a phase that starts inside another one is not double
  counted;
- collectives (``torch.distributed`` calls, DDP's gradient buckets through a
  comm hook): count, bytes and host time; for DDP the exposed tail, from the
  last gradient bucket being ready to backward's return;
- ``torch.save``/``torch.load``: calls, bytes and seconds;
- FLOPs of one step with ``FlopCounterMode`` (the last warm-up step), the
  model's parameters, dtypes and transformer shape, peak memory, and the
  features the job uses (autocast, GradScaler, compile, DDP/FSDP, activation
  checkpointing, gradient accumulation, DataLoader workers and pinned memory).

The rank's profile is written atomically to ``$AI_READY_PROFILE_DIR/rank-<r>.json``
at the end of the warm-up, every couple of seconds and at exit; every finished
step is also appended as one line to ``rank-<r>.steps.jsonl`` (one small write,
no rewrite), so a job killed with SIGKILL or leaving through ``os._exit`` keeps
every step it finished (:func:`read_rank` joins the two).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ai_ready.profile import shape, work
from ai_ready.profile.portability import nvidia_only_imports

ENV_DIR = "AI_READY_PROFILE_DIR"
ENV_WARMUP = "AI_READY_PROFILE_WARMUP"
ENV_STEPS = "AI_READY_PROFILE_STEPS"
ENV_STOP = "AI_READY_PROFILE_STOP"
ENV_TRACE = "AI_READY_PROFILE_TRACE"
RANK_FILE = "rank-{rank}.json"
STEP_LOG = "rank-{rank}.steps.jsonl"
SCHEMA = "ai-ready/profile-rank"
VERSION = 1
PHASES = ("data", "forward", "backward", "optimizer", "checkpoint", "comm", "sync")
#: Without an optimizer step after this many backward calls, steps are taken as forward/backward cycles.
FALLBACK_BACKWARDS = 16
#: Partial profiles are rewritten at most this often (seconds), so a kill loses little.
SAVE_INTERVAL_S = 2.0
TRACE_STEPS = 3
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
               "broadcast", "reduce", "all_to_all", "all_to_all_single", "gather", "scatter", "barrier", "send",
               "recv", "isend", "irecv", "all_gather_object", "broadcast_object_list")
#: Embedding inputs remembered during the first step, to find which embedding the model's token ids feed.
MAX_EMBEDDING_CALLS = 4096

_recorder: "Recorder | None" = None


def active() -> "Recorder | None":
    """The recorder of this process, when the job runs under `ai-ready profile`."""
    return _recorder


def recorder_from_env() -> "Recorder | None":
    """The recorder `ai-ready profile` asked for through the environment (made once per process), or None."""
    global _recorder
    out_dir = os.environ.get(ENV_DIR)
    if not out_dir or _recorder is not None:
        return _recorder
    env = os.environ
    _recorder = Recorder(out_dir, int(env.get(ENV_WARMUP, "3")), int(env.get(ENV_STEPS, "20")),
                         stop=env.get(ENV_STOP, "1") != "0", trace=env.get(ENV_TRACE, "0") == "1")
    atexit.register(_recorder.at_exit)
    return _recorder


def _rank_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher announced them."""
    env = os.environ
    for rank_key, size_key, local_key in (("RANK", "WORLD_SIZE", "LOCAL_RANK"),
                                          ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
                                          ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                           "OMPI_COMM_WORLD_LOCAL_RANK"),
                                          ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")):
        if rank_key in env and size_key in env:
            try:
                return int(env[rank_key]), int(env[size_key]), int(env.get(local_key, env[rank_key]))
            except ValueError:
                continue
    return 0, 1, 0


class Recorder:
    """Per-process step and phase accounting. The clock is injectable for tests."""

    def __init__(self, out_dir: str, warmup: int, steps: int, stop: bool, trace: bool = False,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.out_dir = out_dir
        self.warmup = max(warmup, 1)  # the last warm-up step counts the FLOPs, so there is always one
        self.requested_warmup = warmup
        self.steps = steps
        self.stop = stop
        self.trace = trace
        self.clock = clock
        self.pid = os.getpid()
        self.rank, self.world, self.local_rank = _rank_from_env()
        self.started = clock()
        self.lock = threading.RLock()
        self.save_lock = threading.Lock()  # the saver thread and the job's thread never write at once
        # step accounting
        self.step_source = "optimizer"
        self.explicit = False
        self.step_start: float | None = None
        self.current = self._empty_step()
        self.done_steps: list[dict[str, Any]] = []
        self.active_phase: str | None = None
        self.phase_depth = 0
        self.phase_start = 0.0
        self.main_optimizer: int | None = None
        self.backward_total = 0
        self.forward_total = 0
        self.optimizer_steps = 0
        self.skipped_steps = 0
        self.saw_backward_in_step = False
        # what the job is
        self.roots: dict[int, Any] = {}
        self.main_root: int | None = None
        self.module_depth = 0
        self.model: dict[str, Any] | None = None
        self.seq_len: int | None = None
        self.sequence_first = False
        self.token_slot: tuple[Any, ...] | None = None
        self.embedding_calls: list[tuple[int, tuple[int, int]]] = []
        self.features: dict[str, Any] = {"autocast": [], "grad_scaler": False, "compile": False, "ddp": False,
                                         "fsdp": False, "activation_checkpointing": False, "dataloader": None,
                                         "checkpointing": False}
        self.collectives: dict[str, dict[str, float]] = {}
        self.checkpoint_io: dict[str, dict[str, float]] = {"save": {"count": 0, "bytes": 0, "seconds": 0.0},
                                                           "load": {"count": 0, "bytes": 0, "seconds": 0.0}}
        self.marks: list[dict[str, Any]] = []
        self.flops: dict[str, Any] = {"counted": None, "step": None, "method": "FlopCounterMode", "note": None}
        self.flop_counter: Any = None
        self.flop_attempted = False
        self.flop_contexts: list[Any] = []
        self.profiler: Any = None
        self.trace_file: str | None = None
        self.status = "running"
        self.device = "cpu"
        self.dirty = False
        self.saver: threading.Thread | None = None
        self.step_log: int | None = None  # file descriptor of the step log, opened at the first step
        self.finished = False
        self.ddp_last_bucket: float | None = None
        self.exposed: list[float] = []
        #: Called once, outside any hook, after a complete profile of a job that runs on (--run-to-completion):
        #: the hooks set it to take themselves off, so the rest of the job runs at its bare speed.
        self.detach: Callable[[], None] | None = None
        self.detach_pending = False

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _empty_step() -> dict[str, Any]:
        return {"phases": {p: 0.0 for p in PHASES}, "forward_calls": 0, "backward_calls": 0, "samples": 0,
                "tokens": 0, "model_samples": 0, "model_tokens": 0, "inputs": {}, "exposed_comm": 0.0}

    def activity(self) -> None:
        """The job did something step-like: the first step starts here if none has."""
        if self.step_start is None:
            self.step_start = self.clock()
            self._step_began()

    def end_step(self, source: str) -> None:
        """Close the current step (called at the boundary of the active step source)."""
        if source != self.step_source or self.finished or self.status == "complete":
            return  # after a complete profile (--run-to-completion) the job runs on unrecorded
        with self.lock:
            now = self.clock()
            if self.step_start is None:
                self.step_start = self.started
            if self.active_phase is not None and self.active_phase != "optimizer":
                self._close_phase(now)
            step = self.current
            step["index"] = len(self.done_steps)
            step["total_s"] = now - self.step_start
            step["phases"]["other"] = max(step["total_s"] - sum(step["phases"].values()), 0.0)
            model_inputs = step.pop("inputs").get(self.main_root, (0, 0))
            step["model_samples"], step["model_tokens"] = model_inputs
            self.done_steps.append(step)
            self._log_step(step)
            self.current = self._empty_step()
            self.step_start = now
            if self.ddp_last_bucket is not None:
                self.ddp_last_bucket = None
            self._step_ended(step["index"])
            self._step_began()

    def _step_began(self) -> None:
        index = len(self.done_steps)
        if index == self.warmup - 1 and not self.flop_attempted:
            self.flop_attempted = True
            self._start_flop_count(index)
        if self.trace and index == self.warmup + self.steps:
            self._start_trace()

    def _step_ended(self, index: int) -> None:
        if self.flop_counter is not None:
            self._stop_flop_count()
        if index == self.warmup - 1:
            # what the job is (model, FLOPs, features) is known now: on disk before the timed steps, so a job
            # that dies at any later moment leaves a profile; the write is kept out of the first timed step
            self.save()
            self.step_start = self.clock()
        last = self.warmup + self.steps + (TRACE_STEPS if self.trace else 0) - 1
        if self.profiler is not None:
            if index == last:
                self._stop_trace()
            else:  # ProfilerStep#N spans: HolisticTraceAnalysis and TensorBoard read steps from them
                profiler = self.profiler
                _quiet(profiler.step)
        if index >= last:
            self.status = "complete"
            self.save()
            if self.stop:
                self.finished = True
                raise SystemExit(0)
            self.detach_pending = self.detach is not None
        else:
            self.dirty = True
            if self.saver is None:
                self._start_saver()

    def _log_step(self, step: dict[str, Any]) -> None:
        """Append the finished step to the step log: one write of one line, which a kill cannot undo."""
        if os.getpid() != self.pid or self.step_log == -1:
            return
        try:
            if self.step_log is None:
                os.makedirs(self.out_dir, exist_ok=True)
                path = os.path.join(self.out_dir, STEP_LOG.format(rank=self.rank))
                self.step_log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                                        0o644)
            os.write(self.step_log, (json.dumps(step, default=str) + "\n").encode())
        except Exception as exc:  # a full disk must not stop the job; the periodic rank file still comes
            fd, self.step_log = self.step_log, -1  # do not try again
            if fd is not None:
                _quiet(lambda: os.close(fd))
            sys.stderr.write(f"ai-ready: could not log the step: {exc}\n")

    def safe_point(self) -> None:
        """Called by hooks at a moment no hook list is being iterated: take the hooks off when it is time."""
        if self.detach_pending:
            self.detach_pending = False
            detach, self.detach = self.detach, None
            if detach is not None:
                _quiet(detach)

    def _start_saver(self) -> None:
        """A daemon thread rewrites the rank file while steps come in, so a hung job that is killed (no exit
        handlers run) still leaves what it measured; the steps themselves pay nothing for it."""
        def loop() -> None:
            while not self.finished and self.status != "complete":
                time.sleep(SAVE_INTERVAL_S)
                if self.dirty and os.getpid() == self.pid and self.status != "complete":
                    self.dirty = False
                    self.save()

        self.saver = threading.Thread(target=loop, name="ai-ready-profile-saver", daemon=True)
        self.saver.start()

    # ------------------------------------------------------------------ phases

    def enter(self, phase: str) -> bool:
        """Start a phase unless one is running (nested phases belong to the outer one). True if it started."""
        if self.active_phase is not None:
            return False
        self.activity()
        self.active_phase = phase
        self.phase_start = self.clock()
        return True

    def exit(self, phase: str, started: bool) -> float:
        if not started or self.active_phase != phase:
            return 0.0
        return self._close_phase(self.clock())

    def _close_phase(self, now: float) -> float:
        seconds = now - self.phase_start
        self.current["phases"][self.active_phase] += seconds
        self.active_phase = None
        return seconds

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = self.enter(name)
        try:
            yield
        finally:
            self.exit(name, started)

    # ------------------------------------------------------------------ events from hooks

    def optimizer_pre(self, optimizer: Any, closure: bool = False) -> None:
        """Before ``optimizer.step()``. With a closure (Lightning, LBFGS) forward and backward run inside the
        step: the optimizer phase and the end of FLOP counting wait for :meth:`closure_done`."""
        if not closure:
            self.closure_done()

    def closure_done(self) -> None:
        """What follows is the optimizer's own work: the counted step's forward and backward are over."""
        if self.flop_counter is not None:
            self._stop_flop_count()
        if self.active_phase is None:
            self.enter("optimizer")

    def optimizer_post(self, optimizer: Any) -> None:
        if self._iteration_ended(optimizer):
            self.optimizer_steps += 1
            self.end_step("optimizer")

    def step_skipped(self, optimizer: Any) -> None:
        """GradScaler skipped ``optimizer.step()`` (inf/NaN gradients, common in fp16's first steps): the
        iteration still ends here, or two iterations would be timed as one step."""
        if self._iteration_ended(optimizer):
            self.skipped_steps += 1
            self.end_step("optimizer")

    def _iteration_ended(self, optimizer: Any) -> bool:
        """Close the optimizer phase; True when ``optimizer`` sets the step rhythm (the first one to step)."""
        if self.active_phase == "optimizer":
            self._close_phase(self.clock())
        if self.main_optimizer is None:
            self.main_optimizer = id(optimizer)
        if id(optimizer) != self.main_optimizer or self.explicit:
            return False
        if self.step_source == "cycle":  # a late optimizer: trust it from now on
            self.step_source = "optimizer"
        return True

    def backward_done(self) -> None:
        self.backward_total += 1
        self.current["backward_calls"] += 1
        self.saw_backward_in_step = True
        if self.ddp_last_bucket is not None:
            self.current["exposed_comm"] += max(self.clock() - self.ddp_last_bucket, 0.0)
            self.ddp_last_bucket = None
        if (self.step_source == "optimizer" and not self.explicit and self.optimizer_steps == 0
                and self.skipped_steps == 0 and self.backward_total >= FALLBACK_BACKWARDS):
            self.step_source = "cycle"
            self.saw_backward_in_step = False
            self.end_step("cycle")  # everything so far becomes the first (warm-up) step

    def root_forward_start(self, module: Any, args: tuple[Any, ...]) -> None:
        if self.step_source == "cycle" and self.saw_backward_in_step:
            self.saw_backward_in_step = False
            self.end_step("cycle")
        self.forward_total += 1
        self.current["forward_calls"] += 1

    def root_forward_end(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], training: bool) -> None:
        """An outermost forward returned: describe a new root module, and count the work that entered it."""
        if id(module) not in self.roots:
            self.roots[id(module)] = module
            self._describe(module, args, kwargs)
        if not training:
            return  # evaluation inside a step is not work of the step
        samples, tokens, seq = work.input_work(args, kwargs, slot=self.token_slot,
                                               sequence_first=self.sequence_first)
        entry = self.current["inputs"].setdefault(id(module), (0, 0))
        self.current["inputs"][id(module)] = (entry[0] + samples, entry[1] + tokens)
        if self.seq_len is None and seq and id(module) == self.main_root:
            self.seq_len = seq

    def embedding_fed(self, module: Any, args: tuple[Any, ...]) -> None:
        """An nn.Embedding ran (first step only): remember its input to match it with the model's input."""
        if len(self.embedding_calls) < MAX_EMBEDDING_CALLS:
            key = work.embedding_input(args)
            if key is not None:
                self.embedding_calls.append((id(module), key))

    def batch(self, batch: Any) -> None:
        samples, tokens = work.batch_size(batch)
        self.current["samples"] += samples
        self.current["tokens"] += tokens

    def collective(self, name: str, nbytes: int, seconds: float) -> None:
        entry = self.collectives.setdefault(name, {"count": 0, "bytes": 0, "seconds": 0.0})
        entry["count"] += 1
        entry["bytes"] += nbytes
        entry["seconds"] += seconds

    def checkpoint(self, kind: str, nbytes: int, seconds: float) -> None:
        entry = self.checkpoint_io[kind]
        entry["count"] += 1
        entry["bytes"] += nbytes
        entry["seconds"] += seconds
        if kind == "save":
            self.features["checkpointing"] = True

    def mark(self, name: str) -> None:
        self.marks.append({"name": str(name), "step": len(self.done_steps), "t_s": self.clock() - self.started})

    @contextmanager
    def explicit_step(self) -> Iterator[None]:
        """`with ai_ready.step():` — the block is one step; optimizer hooks no longer set boundaries."""
        self.safe_point()
        if not self.explicit:
            self.explicit = True
            self.step_source = "explicit"
        with self.lock:
            if self.done_steps or self.step_start is not None:
                self.current = self._empty_step()  # time between blocks is not part of a step
            self.step_start = self.clock()
            if not self.done_steps:
                self._step_began()
        yield
        self.end_step("explicit")

    # ------------------------------------------------------------------ model description

    def _describe(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Parameters, dtypes, parallel wrappers and transformer shape of the biggest root module."""
        try:
            params = {id(p): p for p in module.parameters()}.values()
        except Exception:
            return
        count = sum(p.numel() for p in params)
        if self.model is not None and count <= self.model["parameters"]:
            return
        self.main_root = id(module)
        inner = shape.unwrap(module)
        kind = type(module).__name__
        if kind == "DistributedDataParallel":
            self.features["ddp"] = True
        if kind.startswith("FSDP") or kind == "FullyShardedDataParallel" or type(inner).__name__.startswith("FSDP"):
            self.features["fsdp"] = True
        if kind == "OptimizedModule":
            self.features["compile"] = True
        consumed, fed = self._embeddings_fed(args, kwargs)
        embedding = shape.token_embedding(inner, consumed)
        self.token_slot = work.token_slot(args, kwargs, fed) if embedding is not None else None
        self.sequence_first = shape.sequence_first(inner)
        dtypes = Counter(str(p.dtype).removeprefix("torch.") for p in params)
        transformer = shape.transformer_shape(inner, embedding)
        self.model = {"class": type(inner).__name__, "wrapper": kind if inner is not module else None,
                      "parameters": count, "trainable": sum(p.numel() for p in params if p.requires_grad),
                      "dtypes": dict(dtypes), "transformer": transformer,
                      "token_embedding": None if embedding is None else {
                          "rows": int(embedding[0].num_embeddings), "width": int(embedding[0].embedding_dim),
                          "recognised": embedding[1]},
                      "sequence_first": self.sequence_first, "token_input": _path_text(self.token_slot),
                      "matmul_parameters": shape.matmul_parameters(inner, embedding)}
        device = next((p.device for p in params), None)
        if device is not None:
            self.device = str(device)

    def _embeddings_fed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[set[int], set[tuple[int, int]]]:
        """Ids of the embeddings whose input was one of the root's integer inputs (same storage and size), and
        those inputs."""
        inputs = {key for t in work.tensors((args, kwargs)) if work.is_integer(t)
                  for key in [work.embedding_input((t,))] if key is not None}
        matched = {(module_id, key) for module_id, key in self.embedding_calls if key in inputs}
        return {module_id for module_id, _ in matched}, {key for _, key in matched}

    # ------------------------------------------------------------------ FLOPs and trace

    def _start_flop_count(self, index: int) -> None:
        """Count one step's FLOPs with FlopCounterMode. Under torch.compile the step runs eagerly (the
        compiler's "force_eager" stance) so the counter sees every operation of the uncompiled model."""
        try:
            import torch
            from torch.nn.attention import SDPBackend, sdpa_kernel
            from torch.utils.flop_counter import FlopCounterMode

            contexts = []
            # FlopCounterMode has no formula for the CPU flash-attention kernel: on the counting step SDPA
            # takes its math path, whose two batched matmuls it counts (GPU attention kernels it counts)
            on_gpu = self.device.startswith("cuda") or (torch.cuda.is_available() and torch.cuda.is_initialized())
            if not on_gpu:
                contexts.append(sdpa_kernel(SDPBackend.MATH))
            if self.features["compile"]:
                stance = getattr(torch.compiler, "set_stance", None)
                if stance is not None:
                    contexts.append(stance("force_eager"))
                    self.warmup += 1  # the first compiled step after an eager one re-checks its guards: not timed
                    self.flops["method"] = "FlopCounterMode on the uncompiled model (torch.compile set to eager " \
                                           "for the counted step)"
                else:
                    self.flops["method"] = "FlopCounterMode through torch.compile graphs (this torch has no " \
                                           "torch.compiler.set_stance)"
            for context in contexts:
                context.__enter__()
                self.flop_contexts.append(context)
            self.flop_counter = FlopCounterMode(display=False)
            self.flop_counter.__enter__()
            self.flops["step"] = index
        except Exception as exc:  # never break the job for a figure
            self.flop_counter = None
            self._leave_flop_contexts()
            self.flops["note"] = f"not counted: {exc}"

    def _stop_flop_count(self) -> None:
        counter, self.flop_counter = self.flop_counter, None
        try:
            counter.__exit__(None, None, None)
            self.flops["counted"] = float(counter.get_total_flops())
        except Exception as exc:
            self.flops["note"] = f"not counted: {exc}"
        self._leave_flop_contexts()

    def _leave_flop_contexts(self) -> None:
        while self.flop_contexts:
            context = self.flop_contexts.pop()
            _quiet(lambda: context.__exit__(None, None, None))

    def _start_trace(self) -> None:
        try:
            import torch

            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with warnings.catch_warnings():  # "won't be using warmup": the trace follows the timed steps
                warnings.simplefilter("ignore")
                # a schedule makes the profiler mark ProfilerStep#N spans, where trace tools find the steps
                window = torch.profiler.schedule(wait=0, warmup=0, active=TRACE_STEPS, repeat=1)
                self.profiler = torch.profiler.profile(activities=activities, record_shapes=True, schedule=window)
                self.profiler.__enter__()
        except Exception as exc:
            self.profiler = None
            self.marks.append({"name": f"trace not taken: {exc}", "step": len(self.done_steps), "t_s": 0.0})

    def _stop_trace(self) -> None:
        """Stop the profiler and write its trace once, atomically (a reader never sees half a file)."""
        profiler, self.profiler = self.profiler, None
        path = os.path.join(self.out_dir, f"trace-rank{self.rank}.json")
        tmp = f"{path}.{self.pid}.{threading.get_ident()}.tmp"
        try:
            profiler.__exit__(None, None, None)
            os.makedirs(self.out_dir, exist_ok=True)
            profiler.export_chrome_trace(tmp)
            os.replace(tmp, path)
            self.trace_file = path
        except Exception as exc:
            self.marks.append({"name": f"trace not written: {exc}", "step": len(self.done_steps), "t_s": 0.0})
        finally:
            _quiet(lambda: os.path.exists(tmp) and os.remove(tmp))

    # ------------------------------------------------------------------ output

    def snapshot(self) -> dict[str, Any]:
        """The rank's profile as JSON-ready data."""
        with self.lock:
            steps = [dict(s, phases=dict(s["phases"])) for s in self.done_steps]
        timed = [s for s in steps if self.warmup <= s["index"] < self.warmup + self.steps]
        accumulation = [s["backward_calls"] for s in timed or steps]
        return {
            "schema": SCHEMA, "version": VERSION, "status": self._status(steps),
            "rank": self.rank, "world_size": self.world, "local_rank": self.local_rank,
            "host": socket.gethostname(), "pid": self.pid, "device": self.device,
            "device_name": _device_name(self.device),
            "settings": {"warmup_steps": self.requested_warmup, "warmup_steps_taken": self.warmup,
                         "steps": self.steps, "stop": self.stop, "trace": self.trace},
            "step_source": self.step_source, "steps": steps,
            "timed_steps": [s["index"] for s in timed],
            "optimizer_steps": self.optimizer_steps, "skipped_steps": self.skipped_steps,
            "forward_calls": self.forward_total, "backward_calls": self.backward_total,
            "flops": dict(self.flops), "model": self.model,
            "seq_len": self.seq_len,
            "memory": _peak_memory(self.device),
            "features": dict(self.features,
                             grad_accumulation=int(statistics.median(accumulation)) if accumulation else None,
                             autocast=sorted(set(self.features["autocast"])),
                             nvidia_only=nvidia_only_imports()),
            "collectives": self.collectives, "checkpoint_io": self.checkpoint_io,
            "marks": self.marks, "trace_file": self.trace_file,
            "wall_s": self.clock() - self.started,
        }

    def _status(self, steps: list[dict[str, Any]]) -> str:
        if self.status == "complete":
            return "complete"
        if not steps and self.optimizer_steps == 0:
            return "no_steps"
        return "incomplete"

    def save(self) -> None:
        """Write the rank file atomically: a temporary file of this writer in the same folder, then rename; one
        writer at a time (the saver thread and the job's own thread both save)."""
        if os.getpid() != self.pid:  # a forked DataLoader worker inherited us: never write
            return
        path = os.path.join(self.out_dir, RANK_FILE.format(rank=self.rank))
        tmp = f"{path}.{self.pid}.{threading.get_ident()}.tmp"
        with self.save_lock:
            try:
                os.makedirs(self.out_dir, exist_ok=True)
                with open(tmp, "w", encoding="utf-8") as handle:
                    json.dump(self.snapshot(), handle, default=str)
                os.replace(tmp, path)
            except Exception as exc:  # the job must go on
                _quiet(lambda: os.path.exists(tmp) and os.remove(tmp))
                sys.stderr.write(f"ai-ready: could not write the profile: {exc}\n")

    def at_exit(self) -> None:
        """Write what was measured, unless this process never did anything step-like."""
        if os.getpid() != self.pid:
            return
        if self.status == "complete":
            if not self.stop:  # --run-to-completion: checkpoints of the whole run count
                self.save()
            return
        if not self.done_steps and self.forward_total == 0 and self.backward_total == 0:
            return  # a launcher or helper process (torchrun, a DataLoader worker): nothing to say
        if self.flop_counter is not None:
            self._stop_flop_count()
        self.save()


def read_rank(path: "os.PathLike[str] | str") -> dict[str, Any] | None:
    """A rank's profile as last written, with the steps its step log holds beyond it (a job killed between
    two rank files, or leaving through os._exit, keeps every step it finished); None when unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            rank = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(rank, dict):
        return None
    steps = list(rank.get("steps") or [])
    logged = 0
    log = str(path)[: -len(".json")] + ".steps.jsonl"
    try:
        with open(log, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            step = json.loads(line)
        except ValueError:
            break  # a line cut short by the kill: the steps before it are whole
        if isinstance(step, dict) and step.get("index") == len(steps):
            steps.append(step)
            logged += 1
    if logged:
        settings = rank.get("settings") or {}
        first = int(settings.get("warmup_steps_taken", settings.get("warmup_steps", 0)) or 0)
        last = first + int(settings.get("steps", 0) or 0)
        rank.update(steps=steps, timed_steps=[s["index"] for s in steps if first <= s["index"] < last],
                    steps_from_log=logged)
    return rank


# ---------------------------------------------------------------------- helpers (no torch at import)


def _quiet(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        pass


def _path_text(path: tuple[Any, ...] | None) -> str | None:
    """Where the token ids enter the model, readable: ``args[0]``, ``kwargs['input_ids']``."""
    if not path:
        return None
    return str(path[0]) + "".join(f"[{key!r}]" for key in path[1:])


def _peak_memory(device: str) -> dict[str, Any]:
    if device.startswith("cuda"):
        try:
            import torch

            return {"peak_gb": torch.cuda.max_memory_allocated(torch.device(device)) / 1e9,
                    "kind": "CUDA peak allocated"}
        except Exception:
            pass
    try:
        import resource

        return {"peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
                "kind": "peak resident memory of the process"}
    except Exception:
        return {"peak_gb": None, "kind": "unknown"}


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch

            return torch.cuda.get_device_name(torch.device(device))
        except Exception:
            return device
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def _file_size(target: Any) -> int:
    try:
        if isinstance(target, (str, os.PathLike)):
            return os.path.getsize(target)
    except OSError:
        return 0
    return 0
