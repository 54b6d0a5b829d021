"""What the performance model is asked about: a transformer, how it is trained, how it is split.

Three frozen values, each able to check itself: :class:`TransformerModel` (the shape),
:class:`Training` (batch, token budget, precision) and :class:`Parallelism` (how the job is laid
out over GPUs). They are plain Python, no torch: a search over 100,000-GPU layouts builds and
checks millions of them. Every failed check is an :class:`~ai_ready.errors.InputError` whose one
line names the field (``model.kv_heads``, ``parallelism.tp``, ...) and what is accepted.

A workload file (YAML) holds a name, a model and a training section; :func:`load_workload` turns
its parsed mapping into a :class:`Workload` and refuses unknown keys, so a typo cannot silently
fall back to a default::

    name: gpt3-175b
    model: {kind: transformer, layers: 96, hidden: 12288, heads: 96, kv_heads: 96,
            ffn_hidden: 49152, ffn: gelu, vocab: 51200, seq_len: 2048}
    training: {global_batch: 1536, tokens: 3.0e11, precision: bf16}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ai_ready.errors import InputError

FFN_KINDS = ("gelu", "swiglu")
PRECISIONS = ("bf16", "fp16", "fp8", "fp32")
RECOMPUTE_MODES = ("none", "selective", "full")
ZERO_STAGES = (0, 1, 2, 3)
MODEL_KINDS = ("transformer",)

# GPT-2/3 and Megatron-LM: the GELU MLP is 4·hidden wide (Narayanan et al. 2021, §5 / Table 1).
GELU_FFN_RATIO = 4
# SwiGLU keeps a 4h GELU MLP's parameters with three matrices: 2/3 · 4h = 8h/3 (Shazeer 2020,
# "GLU Variants Improve Transformer"), rounded up to a multiple of 64 so GEMMs stay aligned
# (h = 4096 -> 10944; LLaMA rounds to 256 instead, 11008: give ffn_hidden for such a model).
# Same rule as ai_ready.train.models.GPTConfig.ffn_hidden.
SWIGLU_FFN_NUMERATOR, SWIGLU_FFN_DENOMINATOR = 8, 3
SWIGLU_FFN_MULTIPLE = 64


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(field: str, value: Any, minimum: int = 1) -> None:
    if not _is_int(value) or value < minimum:
        raise InputError(f"{field}: must be an integer >= {minimum}, got {value!r}")


def _require_choice(field: str, value: Any, accepted: tuple[Any, ...]) -> None:
    if isinstance(value, bool) or value not in accepted:
        raise InputError(f"{field}: got {value!r}; accepted: {', '.join(map(str, accepted))}")


def _require_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InputError(f"{field}: must be true or false, got {value!r}")


def _require_divides(field: str, divisor_name: str, divisor: int, dividend_name: str, dividend: int) -> None:
    if dividend % divisor:
        raise InputError(f"{field}: {divisor_name} ({divisor}) must divide {dividend_name} ({dividend})")


@dataclass(frozen=True)
class TransformerModel:
    """A GPT-style decoder: pre-norm LayerNorm layers, learned positions, dense or MoE MLPs.

    - ``kv_heads``: key/value heads (grouped-query attention); ``None`` means ``heads`` (MHA).
    - ``ffn_hidden``: width of one MLP (one expert); ``None`` means 4·hidden for gelu and
      8/3·hidden rounded up to a multiple of 64 for swiglu (see :attr:`resolved_ffn_hidden`).
    - ``ffn``: ``gelu`` (two matrices, with biases, as in Megatron's GPT) or ``swiglu`` (three
      matrices, no biases, as in LLaMA).
    - ``experts``/``top_k``: 0/0 is dense; otherwise every MLP is ``experts`` expert MLPs of which
      each token uses ``top_k``, chosen by a bias-free ``hidden × experts`` router.
    - ``tied_embeddings``: the output layer reuses the input word embedding. The default (True)
      is what Narayanan et al.'s P = 12·l·h²·(1 + 13/(12h) + (V+s)/(12·l·h)) counts: V·h once,
      plus s·h learned position embeddings. Megatron's GPT ties them by default too.
    """

    layers: int
    hidden: int
    heads: int
    vocab: int
    seq_len: int
    kv_heads: int | None = None
    ffn_hidden: int | None = None
    ffn: str = "gelu"
    experts: int = 0
    top_k: int = 0
    tied_embeddings: bool = True

    @property
    def resolved_kv_heads(self) -> int:
        """Key/value heads actually used (``heads`` when ``kv_heads`` is None)."""
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def resolved_ffn_hidden(self) -> int:
        """Inner width of one MLP (one expert when MoE)."""
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        if self.ffn == "swiglu":
            step = SWIGLU_FFN_DENOMINATOR * SWIGLU_FFN_MULTIPLE
            return -(-SWIGLU_FFN_NUMERATOR * self.hidden // step) * SWIGLU_FFN_MULTIPLE
        return GELU_FFN_RATIO * self.hidden

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        """Width of the key (and of the value) projection: kv_heads · head_dim."""
        return self.resolved_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    def validate(self) -> "TransformerModel":
        """Raise :class:`InputError` (one line) if this shape is not a valid model; return self."""
        for name in ("layers", "hidden", "heads", "vocab", "seq_len"):
            _require_int(f"model.{name}", getattr(self, name))
        _require_divides("model.heads", "heads", self.heads, "hidden", self.hidden)
        if self.kv_heads is not None:
            _require_int("model.kv_heads", self.kv_heads)
            _require_divides("model.kv_heads", "kv_heads", self.kv_heads, "heads", self.heads)
        if self.ffn_hidden is not None:
            _require_int("model.ffn_hidden", self.ffn_hidden)
        _require_choice("model.ffn", self.ffn, FFN_KINDS)
        _require_int("model.experts", self.experts, minimum=0)
        _require_int("model.top_k", self.top_k, minimum=0)
        if self.experts and not 1 <= self.top_k <= self.experts:
            raise InputError(f"model.top_k: must be between 1 and experts ({self.experts}), got {self.top_k}")
        if not self.experts and self.top_k:
            raise InputError(f"model.top_k: must be 0 for a dense model (experts = 0), got {self.top_k}")
        _require_bool("model.tied_embeddings", self.tied_embeddings)
        return self


@dataclass(frozen=True)
class Training:
    """How the model is trained: sequences per step, total token budget, number format.

    ``tokens`` is optional (a step-time prediction does not need it; a time-to-train does).
    """

    global_batch: int
    tokens: float | None = None
    precision: str = "bf16"

    def validate(self) -> "Training":
        """Raise :class:`InputError` (one line) if this is not a valid training setup; return self."""
        _require_int("training.global_batch", self.global_batch)
        if self.tokens is not None:
            ok = isinstance(self.tokens, (int, float)) and not isinstance(self.tokens, bool)
            if not ok or not math.isfinite(self.tokens) or self.tokens <= 0:
                raise InputError(f"training.tokens: must be a positive number of tokens, got {self.tokens!r}")
        _require_choice("training.precision", self.precision, PRECISIONS)
        return self

    def steps(self, seq_len: int) -> float | None:
        """Optimizer steps to consume the token budget (None without one)."""
        return None if self.tokens is None else self.tokens / (self.global_batch * seq_len)


@dataclass(frozen=True)
class Parallelism:
    """How one training job is laid out: tensor, pipeline, data, context and expert parallelism.

    - ``gpus = tp · pp · dp · cp``. Expert parallelism does not add GPUs: as in Megatron-Core's
      "parallel folding", the expert layers reuse the ranks of one pipeline stage with the experts
      spread over ``ep`` of the ``dp · cp`` data/context ranks (so ``ep`` must divide ``dp · cp``)
      and the expert weights tensor-parallel over the same ``tp`` as the dense layers.
    - ``microbatch``: sequences per micro-batch; the number of micro-batches per step is
      ``global_batch / (dp · microbatch)``.
    - ``interleave``: virtual pipeline chunks per stage (Narayanan et al.'s interleaved 1F1B).
    - ``recompute``: activation recomputation, ``none``, ``selective`` (attention core only,
      Korthikanti et al.) or ``full`` (every layer's input is kept, the layer is rerun).
    - ``zero``: ZeRO stage of the optimizer state, gradient and weight sharding over ``dp · cp``.
    - ``sequence_parallel``: Korthikanti et al.'s sequence parallelism inside the tensor-parallel
      group; allowed with ``tp == 1``, where it changes nothing.

    Key/value heads must be divisible by ``tp`` (no replication of KV heads across tensor ranks
    is modelled), like the query heads.
    """

    tp: int
    pp: int
    dp: int
    cp: int = 1
    ep: int = 1
    microbatch: int = 1
    interleave: int = 1
    recompute: str = "none"
    zero: int = 0
    sequence_parallel: bool = False
    #: Layers of the first and of the last pipeline stage when they differ from the others (Megatron's
    #: --decoder-first/last-pipeline-num-layers); None: even stages, or, where pp does not divide the layers,
    #: the shortfall taken from the last and first stages, which also carry the loss and the embedding.
    first_stage_layers: int | None = None
    last_stage_layers: int | None = None

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    def stage_layers(self, layers: int) -> tuple[int, ...]:
        """Transformer layers of every pipeline stage, first to last (see ``first_stage_layers``)."""
        pp = self.pp
        if pp == 1:
            return (layers,)
        first, last = self.first_stage_layers, self.last_stage_layers
        if first is None and last is None and layers % pp:
            per = -(-layers // pp)
            short = per * pp - layers
            first, last = per - short // 2, per - (short - short // 2)
        if first is None and last is None:
            return (layers // pp,) * pp
        middle_total = layers - (first or 0) - (last or 0)
        middle_stages = pp - (first is not None) - (last is not None)
        per = middle_total // middle_stages if middle_stages else 0
        if middle_stages and middle_total % middle_stages:
            raise InputError(f"parallelism.pp: the {middle_total} layers left for the other {middle_stages} "
                             f"pipeline stages do not divide evenly; give other first/last stage layers")
        first = per if first is None else first
        last = per if last is None else last
        return (first,) + (per,) * (pp - 2) + (last,)

    def microbatches(self, training: Training) -> int:
        """Micro-batches each pipeline processes per step."""
        return training.global_batch // (self.dp * self.microbatch)

    def validate(self, model: TransformerModel, training: Training) -> "Parallelism":
        """Raise :class:`InputError` (one line) if this layout cannot run ``model``; return self.

        ``model`` and ``training`` are validated first.
        """
        model.validate()
        training.validate()
        for name in ("tp", "pp", "dp", "cp", "ep", "microbatch", "interleave"):
            _require_int(f"parallelism.{name}", getattr(self, name))
        _require_choice("parallelism.recompute", self.recompute, RECOMPUTE_MODES)
        _require_int("parallelism.zero", self.zero, minimum=0)
        _require_choice("parallelism.zero", self.zero, ZERO_STAGES)
        _require_bool("parallelism.sequence_parallel", self.sequence_parallel)
        return self.check_fit(model, training)

    def check_fit(self, model: TransformerModel, training: Training) -> "Parallelism":
        """The rules that tie a well-formed layout to a model (what divides what); the search, whose layouts
        are well-formed by construction and whose model is validated once, calls only this."""
        if self.interleave > 1 and self.pp == 1:
            raise InputError(f"parallelism.interleave: must be 1 without pipeline parallelism (pp = 1), "
                             f"got {self.interleave}")
        if self.even_stages(model.layers):  # the common case, checked quickly (the search asks thousands of times)
            _require_divides("parallelism.interleave", "interleave", self.interleave, "layers per stage",
                             model.layers // self.pp)
        else:
            self._check_uneven(model.layers)
        self._check_sizes(model, training)
        return self

    def even_stages(self, layers: int) -> bool:
        return self.first_stage_layers is None and self.last_stage_layers is None and layers % self.pp == 0

    def layers_of_stage(self, layers: int, stage: int) -> int:
        return layers // self.pp if self.even_stages(layers) else self.stage_layers(layers)[stage]

    def _check_uneven(self, layers: int) -> None:
        for name in ("first_stage_layers", "last_stage_layers"):
            if getattr(self, name) is not None:
                _require_int(f"parallelism.{name}", getattr(self, name))
                if self.pp < 2:
                    raise InputError(f"parallelism.{name}: needs pipeline parallelism (pp >= 2)")
        stages = self.stage_layers(layers)
        if min(stages) < 1 or sum(stages) != layers:
            raise InputError(f"parallelism.pp: {self.pp} stages cannot hold {layers} layers as "
                             f"{'/'.join(map(str, sorted(set(stages))))} per stage")
        # uneven stages are Megatron-Core's pipeline layouts (--pipeline-model-parallel-layout, or the embedding and
        # the loss counted as layers): a stage's virtual chunks need not hold equal layers, only one each at least
        if self.interleave > min(stages):
            raise InputError(f"parallelism.interleave: {self.interleave} virtual stages per rank, more than the "
                             f"{min(stages)} layers of the smallest stage ({', '.join(map(str, sorted(set(stages))))})")

    def _check_sizes(self, model: TransformerModel, training: Training) -> None:
        _require_divides("parallelism.tp", "tp", self.tp, "heads", model.heads)
        _require_divides("parallelism.tp", "tp", self.tp, "kv_heads", model.resolved_kv_heads)
        _require_divides("parallelism.dp", "dp · microbatch", self.dp * self.microbatch,
                         "global_batch", training.global_batch)
        _require_divides("parallelism.cp", "cp", self.cp, "seq_len", model.seq_len)
        if self.sequence_parallel:
            _require_divides("parallelism.sequence_parallel", "cp · tp", self.cp * self.tp,
                             "seq_len", model.seq_len)
        if not model.is_moe and self.ep != 1:
            raise InputError(f"parallelism.ep: must be 1 for a dense model (experts = 0), got {self.ep}")
        _require_divides("parallelism.ep", "ep", self.ep, "experts", model.experts)
        _require_divides("parallelism.ep", "ep", self.ep, "dp · cp", self.dp * self.cp)


@dataclass(frozen=True)
class Workload:
    """A named model with its training setup (what a workload file describes)."""

    name: str
    model: TransformerModel
    training: Training


WORKLOAD_KEYS = ("name", "model", "training")
MODEL_KEYS = ("kind", "layers", "hidden", "heads", "kv_heads", "ffn_hidden", "ffn", "vocab", "seq_len",
              "experts", "top_k", "tied_embeddings")
MODEL_REQUIRED = ("kind", "layers", "hidden", "heads", "vocab", "seq_len")
TRAINING_KEYS = ("global_batch", "tokens", "precision")
TRAINING_REQUIRED = ("global_batch",)


def _section(data: Any, path: str, accepted: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    """The mapping at ``path`` with its keys checked: unknown keys and missing ones are errors."""
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: must be a mapping with keys {', '.join(accepted)}, got {type(data).__name__}")
    for key in data:
        if key not in accepted:
            raise InputError(f"{path}: unknown key '{path}.{key}'; accepted: {', '.join(accepted)}")
    for key in required:
        if key not in data:
            raise InputError(f"{path}: missing key '{path}.{key}'")
    return dict(data)


def _tokens(value: Any) -> Any:
    """PyYAML reads ``3.0e11`` (no exponent sign) as a string: accept numeric strings."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise InputError(f"training.tokens: must be a positive number of tokens, got {value!r}") from None
    return value


def load_workload(data: Mapping[str, Any]) -> Workload:
    """A validated :class:`Workload` from a parsed workload file (see the module docstring)."""
    top = _section(data, "workload", WORKLOAD_KEYS, WORKLOAD_KEYS)
    name = top["name"]
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"workload.name: must be a non-empty string, got {name!r}")
    model_data = _section(top["model"], "model", MODEL_KEYS, MODEL_REQUIRED)
    _require_choice("model.kind", model_data.pop("kind"), MODEL_KINDS)
    training_data = _section(top["training"], "training", TRAINING_KEYS, TRAINING_REQUIRED)
    if "tokens" in training_data:
        training_data["tokens"] = _tokens(training_data["tokens"])
    model = TransformerModel(**model_data).validate()
    training = Training(**training_data).validate()
    return Workload(name, model, training)
