"""What a user's model is, read from its modules: parameters, the token embedding, the transformer shape.

A profile can only extrapolate a job whose model it understands, and users' models come in every
style (nanoGPT's ``wte``/``wpe``, Hugging Face configs, ``nn.TransformerEncoder``, torchtitan's Llama).
Rules that hold across them, in order of trust:

- the token embedding is the ``nn.Embedding`` that the model's integer input was fed to (seen by a
  hook during the first forward); else the one the output head shares its weight with; else the one
  the last ``nn.Linear`` mirrors (``out_features == num_embeddings``); never simply the largest, since a
  position table is often larger than a character vocabulary;
- layers: the longest list of identical blocks that hold attention;
- heads, key/value heads, MLP width, experts: from the blocks' modules (``nn.MultiheadAttention``, the
  usual attribute names) and, where a model carries one, its ``config`` object (Hugging Face, nanoGPT);
- sequence-first models (``nn.TransformerEncoderLayer``/``nn.LSTM`` left at ``batch_first=False``) read
  their inputs as [sequence, batch].

Imports torch only when called: the recorder is loaded into every process of a job.
"""

from __future__ import annotations

from typing import Any

HEAD_ATTRIBUTES = ("num_heads", "n_head", "n_heads", "heads", "num_attention_heads", "nhead")
KV_HEAD_ATTRIBUTES = ("num_key_value_heads", "n_kv_heads", "num_kv_heads", "n_kv_head", "n_kv_heads_per_group")
EXPERT_ATTRIBUTES = ("num_experts", "n_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
TOP_K_ATTRIBUTES = ("num_experts_per_tok", "top_k", "moe_top_k", "n_experts_per_tok", "experts_per_token")
#: Wrappers whose inner module is the model: torch.compile, DDP/DataParallel/Accelerate, FSDP1.
WRAPPED_ATTRIBUTES = ("_orig_mod", "module", "_fsdp_wrapped_module")
ATTENTION_WORDS = ("attn", "attention")


def unwrap(module: Any) -> Any:
    """The user's model inside compile/DDP/FSDP wrappers (at most a few levels deep)."""
    import torch.nn as nn

    for _ in range(4):
        inner = next((getattr(module, name) for name in WRAPPED_ATTRIBUTES
                      if isinstance(getattr(module, name, None), nn.Module)), None)
        if inner is None:
            return module
        module = inner
    return module


def sequence_first(model: Any) -> bool:
    """True when the model's own sequence modules expect [sequence, batch] inputs (PyTorch's default for
    nn.MultiheadAttention, nn.TransformerEncoderLayer and the RNNs)."""
    import torch.nn as nn

    layouts = [bool(getattr(m, "batch_first", False)) for m in model.modules()
               if isinstance(m, (nn.MultiheadAttention, nn.RNNBase))]
    return bool(layouts) and not any(layouts)


def token_embedding(model: Any, consumed: set[int] | None = None) -> tuple[Any, str] | None:
    """The embedding that turns token ids into vectors, and how it was recognised (see the module doc).

    ``consumed``: ids of the embeddings that were fed the model's integer input during a forward."""
    import torch.nn as nn

    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    if not embeddings:
        return None
    if consumed:
        fed = [m for m in embeddings if id(m) in consumed]
        if fed:
            return max(fed, key=lambda m: m.num_embeddings), "fed the model's integer input"
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    tied = [e for e in embeddings if any(lin.weight is e.weight for lin in linears)]
    if tied:
        return tied[0], "shares its weight with the output head"
    if linears:
        head = linears[-1]
        mirrored = [e for e in embeddings if e.num_embeddings == head.out_features and
                    e.embedding_dim == head.in_features]
        if mirrored:
            return mirrored[0], "mirrored by the output head"
    return max(embeddings, key=lambda m: m.num_embeddings), "the largest embedding (no better sign found)"


def transformer_shape(model: Any, embedding: tuple[Any, str] | None) -> dict[str, Any] | None:
    """Layers, hidden size, heads, key/value heads, MLP, experts and vocabulary, or None when the model is
    not a transformer (no token embedding or no repeated attention blocks)."""
    if embedding is None:
        return None
    blocks = _blocks(model)
    if not blocks:
        return None
    vocab_embedding, how = embedding
    hidden = int(vocab_embedding.embedding_dim)
    config = getattr(model, "config", None)
    heads = _block_int(blocks[0], HEAD_ATTRIBUTES) or _config_int(config, HEAD_ATTRIBUTES)
    kv_heads = _block_int(blocks[0], KV_HEAD_ATTRIBUTES) or _config_int(config, KV_HEAD_ATTRIBUTES)
    experts = _experts(blocks[0]) or _config_int(config, EXPERT_ATTRIBUTES)
    top_k = (_block_int(blocks[0], TOP_K_ATTRIBUTES) or _config_int(config, TOP_K_ATTRIBUTES)) if experts else None
    ffn_hidden, ffn = _mlp(blocks[0], hidden)
    shape = {"layers": len(blocks), "hidden": hidden, "heads": heads, "vocab": int(vocab_embedding.num_embeddings),
             "block": type(blocks[0]).__name__, "vocab_source": how, "kv_heads": kv_heads if kv_heads != heads else None,
             "ffn_hidden": ffn_hidden, "ffn": ffn, "experts": experts or 0, "top_k": top_k or 0}
    return shape


def matmul_parameters(model: Any, embedding: tuple[Any, str] | None) -> int:
    """Weights that take part in a matmul per token: every nn.Linear (and nn.MultiheadAttention's packed
    input projection), plus the token embedding when it also produces the logits (tied)."""
    import torch.nn as nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    total = sum(m.weight.numel() for m in linears)
    total += sum(m.in_proj_weight.numel() for m in model.modules()
                 if isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None)
    total += sum(m.weight.numel() for m in model.modules() if type(m).__name__ == "Conv1D"
                 and getattr(m, "weight", None) is not None)  # Hugging Face GPT-2's transposed linear
    if embedding is not None:
        vocab = embedding[0]
        heads = [m for m in linears if m.out_features == vocab.num_embeddings]
        conv_heads = any(type(m).__name__ == "Conv1D" and getattr(m, "nf", None) == vocab.num_embeddings
                         for m in model.modules())
        if not heads and not conv_heads:
            total += vocab.weight.numel()  # logits through the tied embedding
    return total


def _blocks(model: Any) -> list[Any]:
    import torch.nn as nn

    blocks: list[Any] = []
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) > len(blocks):
            kinds = {type(child) for child in module}
            if len(kinds) == 1 and _has_attention(module[0]):
                blocks = list(module)
    return blocks


def _has_attention(block: Any) -> bool:
    import torch.nn as nn

    for name, module in block.named_modules():
        if isinstance(module, nn.MultiheadAttention) or _is_attention_name(name) or \
                _is_attention_name(type(module).__name__):
            return True
    return False


def _is_attention_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ATTENTION_WORDS)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _block_int(block: Any, names: tuple[str, ...]) -> int | None:
    import torch.nn as nn

    for module in block.modules():
        if isinstance(module, nn.MultiheadAttention) and "num_heads" in names:
            return int(module.num_heads)
        for name in names:
            found = _positive_int(getattr(module, name, None))
            if found:
                return found
    return None


def _config_int(config: Any, names: tuple[str, ...]) -> int | None:
    if config is None:
        return None
    for name in names:
        found = _positive_int(getattr(config, name, None))
        if found:
            return found
    return None


def _experts(block: Any) -> int | None:
    """Experts of an MoE block: the longest list of identical modules, each with linear layers, outside
    attention."""
    import torch.nn as nn

    best = 0
    for name, module in block.named_modules():
        if _is_attention_name(name) or not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        kinds = {type(child) for child in module}
        if len(kinds) == 1 and any(isinstance(m, nn.Linear) for m in module[0].modules()):
            best = max(best, len(module))
    return best or None


def _mlp(block: Any, hidden: int) -> tuple[int | None, str]:
    """(MLP width, "gelu" | "swiglu") from the linear layers outside attention: up projections read the hidden
    size and write the MLP width; two of them of one width (gate and up) make it a gated (SwiGLU) MLP."""
    import torch.nn as nn

    ups: list[int] = []
    experts = _experts(block)
    for name, module in block.named_modules():
        if not isinstance(module, nn.Linear) or _is_attention_name(name):
            continue
        if experts and not _in_first_expert(name):
            continue
        if module.in_features == hidden and module.out_features > hidden:
            ups.append(int(module.out_features))
    if not ups:
        return None, "gelu"
    width = max(set(ups), key=ups.count)
    return width, "swiglu" if ups.count(width) >= 2 else "gelu"


def _in_first_expert(name: str) -> bool:
    """Inside an MoE block, count the MLP of one expert only (names like experts.0.w1)."""
    parts = name.split(".")
    return any(part == "0" for part in parts[:-1]) or not any(part.isdigit() for part in parts)
