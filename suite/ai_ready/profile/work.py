"""How much work one step does: samples and tokens, from what enters the model or from DataLoader batches.

Most small LLM scripts never use a DataLoader (``x, y = get_batch()`` from an ``np.memmap``, ``batchify``),
and frameworks call the model with keyword arguments (``model(**batch)``), so the recorder counts what
enters the model's outermost ``forward``: the token tensor (the integer tensor the token embedding was fed,
else ``input_ids``, else the first integer tensor) gives tokens (all its elements) and sequences (its batch
dimension); a model without a token embedding counts samples as the first floating-point input's batch
dimension. Only training forwards count (gradients enabled), so evaluation inside a step does not.

Imports nothing heavy: tensors are recognised by their attributes.
"""

from __future__ import annotations

from typing import Any, Iterator

#: Keyword arguments that carry token ids by convention (Hugging Face, most trainers).
TOKEN_KEYWORDS = ("input_ids", "idx", "tokens", "input", "src")
MAX_DEPTH = 3


def is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dim") and hasattr(value, "dtype")


def is_integer(tensor: Any) -> bool:
    return not tensor.is_floating_point() and not tensor.is_complex() and str(tensor.dtype) != "torch.bool"


def tensors(value: Any) -> Iterator[Any]:
    """Every tensor in a nested argument (tuples, lists, dicts, a few levels deep), in order."""
    return (t for _, t in _walk(value, ()))


def _walk(value: Any, path: tuple[Any, ...], depth: int = 0) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, tensor) for every tensor in a nested argument; a path is the keys and indices that reach it."""
    if is_tensor(value):
        yield path, value
        return
    if depth >= MAX_DEPTH:
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, path + (i,), depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,), depth + 1)


def first_tensor(value: Any) -> Any:
    return next(tensors(value), None)


def _candidates(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any]]:
    """The forward's tensors as (path, tensor): conventional token keywords first, then the positional
    arguments, then the other keywords."""
    named = [(("kwargs", k), kwargs[k]) for k in TOKEN_KEYWORDS if is_tensor(kwargs.get(k))]
    rest = {k: v for k, v in kwargs.items() if k not in TOKEN_KEYWORDS}
    return named + list(_walk(args, ("args",))) + list(_walk(rest, ("kwargs",)))


def _at(args: tuple[Any, ...], kwargs: dict[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = {"args": args, "kwargs": kwargs}
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value if is_tensor(value) else None


def token_slot(args: tuple[Any, ...], kwargs: dict[str, Any],
               fed: set[tuple[int, int]] | None = None) -> tuple[Any, ...] | None:
    """Where the token ids are among a forward's inputs: the tensor an embedding was fed (``fed`` holds
    (data pointer, elements) of embedding inputs), else the first integer tensor of one or more dimensions.
    Found once; later forwards read the same place (their tensors live elsewhere in memory)."""
    integers = [(path, t) for path, t in _candidates(args, kwargs) if t.dim() >= 1 and is_integer(t)]
    if fed:
        for path, t in integers:
            if (_pointer(t), int(t.numel())) in fed:
                return path
    return integers[0][0] if integers else None


def input_work(args: tuple[Any, ...], kwargs: dict[str, Any], *, slot: tuple[Any, ...] | None,
               sequence_first: bool) -> tuple[int, int, int | None]:
    """(samples, tokens, sequence length) of one forward's inputs (see the module doc). ``slot``: where the
    token ids are (:func:`token_slot`); None for a model without a token embedding."""
    if slot is not None:
        t = _at(args, kwargs, slot)
        if t is not None and t.dim() >= 1 and is_integer(t):
            if t.dim() == 1:
                return 1, int(t.numel()), int(t.shape[0])
            batch_dim, seq_dim = (1, 0) if sequence_first else (0, t.dim() - 1)
            return int(t.shape[batch_dim]), int(t.numel()), int(t.shape[seq_dim])
    floats = [t for _, t in _candidates(args, kwargs) if t.dim() >= 1 and t.is_floating_point()]
    if floats:
        return int(floats[0].shape[0]), 0, None
    return 0, 0, None


def batch_size(batch: Any) -> tuple[int, int]:
    """(samples, tokens) of a DataLoader batch: the first tensor's first dimension; tokens when it holds
    integer ids of shape [batch, sequence] (a dict batch's ``input_ids`` first)."""
    tensor = batch.get("input_ids") if isinstance(batch, dict) and is_tensor(batch.get("input_ids")) else None
    tensor = tensor if tensor is not None else first_tensor(batch)
    if tensor is None or tensor.dim() == 0:
        return 0, 0
    samples = int(tensor.shape[0])
    return samples, int(tensor.numel()) if is_integer(tensor) and tensor.dim() == 2 else 0


def tensor_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    total = 0
    for value in list(args) + list(kwargs.values()):
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if hasattr(item, "element_size") and hasattr(item, "numel"):
                total += item.numel() * item.element_size()
    return total


def embedding_input(args: tuple[Any, ...]) -> tuple[int, int] | None:
    """(data pointer, elements) of an embedding's input, to match it with the model's input later."""
    t = first_tensor(args)
    if t is None:
        return None
    pointer = _pointer(t)
    return None if pointer is None else (pointer, int(t.numel()))


def _pointer(t: Any) -> int | None:
    try:
        return int(t.data_ptr())
    except Exception:  # fake or meta tensors (tracing) have no storage
        return None
