"""Reading a user's model and inputs: the token embedding (not the largest table), transformer sizes from
modules and Hugging Face configs, sequence-first layouts, and the work that enters a forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ai_ready.profile import shape, work


class TinyGPT(nn.Module):
    """nanoGPT's layout: a character vocabulary (65) smaller than the position table (256)."""

    def __init__(self, tied: bool) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(65, 32), nn.Embedding(256, 32)
        self.h = nn.ModuleList(nn.TransformerEncoderLayer(32, 4, 128, batch_first=True) for _ in range(3))
        self.lm_head = nn.Linear(32, 65, bias=False)
        if tied:
            self.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(x)


@pytest.mark.parametrize("tied, how", [(True, "shares its weight"), (False, "mirrored by the output head")])
def test_the_token_embedding_is_not_the_largest_table(tied: bool, how: str) -> None:
    model = TinyGPT(tied)
    embedding = shape.token_embedding(model)
    assert embedding is not None and embedding[0] is model.wte and how in embedding[1]
    found = shape.transformer_shape(model, embedding)
    assert found is not None
    assert (found["vocab"], found["hidden"], found["layers"], found["heads"]) == (65, 32, 3, 4)
    assert shape.sequence_first(model) is False  # batch_first=True layers


def test_the_embedding_fed_the_input_ids_wins_over_every_other_sign() -> None:
    model = TinyGPT(tied=False)
    embedding = shape.token_embedding(model, consumed={id(model.wpe)})
    assert embedding is not None and embedding[0] is model.wpe and "fed" in embedding[1]


def test_hugging_face_llama_config_gives_grouped_query_attention_and_swiglu() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = transformers.AutoModelForCausalLM.from_config(config)
    found = shape.transformer_shape(model, shape.token_embedding(model))
    assert found is not None
    assert (found["vocab"], found["layers"], found["hidden"], found["heads"], found["kv_heads"]) == (300, 2, 64, 4, 2)
    assert (found["ffn"], found["ffn_hidden"]) == ("swiglu", 176)


def test_gpt2_conv1d_weights_count_as_matmul_weights() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=300, n_positions=512, n_embd=64, n_layer=2, n_head=4)
    model = transformers.AutoModelForCausalLM.from_config(config)
    embedding = shape.token_embedding(model)
    assert embedding is not None and embedding[0].num_embeddings == 300  # not the 512 positions
    conv = sum(m.weight.numel() for m in model.modules() if type(m).__name__ == "Conv1D")
    assert shape.matmul_parameters(model, embedding) == conv + 300 * 64  # + the tied head


def test_sequence_first_models_read_inputs_as_sequence_by_batch() -> None:
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 2, enable_nested_tensor=False)
    assert shape.sequence_first(encoder) is True
    assert shape.sequence_first(nn.LSTM(8, 8)) is True and shape.sequence_first(nn.LSTM(8, 8, batch_first=True)) is False
    ids = torch.zeros(35, 20, dtype=torch.long)  # [bptt, batch]
    assert work.input_work((ids,), {}, slot=("args", 0), sequence_first=True) == (20, 700, 35)
    assert work.input_work((ids,), {}, slot=("args", 0), sequence_first=False) == (35, 700, 20)


def test_work_entering_a_forward_from_keywords_tuples_and_float_inputs() -> None:
    ids, labels = torch.zeros(4, 64, dtype=torch.long), torch.zeros(4, 64, dtype=torch.long)
    kwargs = {"labels": labels, "input_ids": ids, "attention_mask": torch.ones(4, 64)}
    slot = work.token_slot((), kwargs)
    assert slot == ("kwargs", "input_ids")
    assert work.input_work((), kwargs, slot=slot, sequence_first=False) == (4, 256, 64)
    # the ids an embedding was fed are chosen over an earlier integer tensor (targets passed first)
    fed = {work.embedding_input((ids,))}
    assert work.token_slot((labels, ids), {}, fed) == ("args", 1)
    # a dict batch passed whole: the path reaches inside it
    assert work.token_slot(({"x": ids},), {}) == ("args", 0, "x")
    # no token embedding: samples are the batch dimension of the first floating-point input
    images = torch.zeros(16, 3, 8, 8)
    assert work.input_work((images, torch.zeros(16, dtype=torch.long)), {}, slot=None,
                           sequence_first=False) == (16, 0, None)
