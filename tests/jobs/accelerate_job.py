"""Test job: a Hugging Face Accelerate training loop, in the style of Accelerate's documentation.

``Accelerator(gradient_accumulation_steps=2)``; ``accelerator.prepare(model, optimizer,
dataloader, scheduler)``; a loop over the DataLoader with ``with accelerator.accumulate(model):``,
``accelerator.backward(loss)``, ``optimizer.step(); scheduler.step(); optimizer.zero_grad()``
(the prepared optimizer only really steps on the micro-batch that syncs the gradients).

The model is a small GPT-like transformer written here, called the Hugging Face way with
keyword arguments (``model(**batch)`` with ``input_ids`` and ``labels``; it returns the loss
and the logits): a token embedding whose weight is shared with the LM head (weight tying), a
learned position embedding with MORE positions than tokens, pre-norm blocks with causal
attention through F.scaled_dot_product_attention and a GELU MLP.  Batches are dicts of random
token ids from a DataLoader.

Printed to stdout (main process only):

* once, before training: ``JOBINFO tokens_per_step=<int> flops_per_step=<float>``:
  tokens_per_step = batch x accumulation x seq; flops_per_step = 6 x (every Linear weight,
  the tied LM head included once) x tokens + 12 x layers x seq x hidden x tokens;
* for every optimizer step (when ``accelerator.sync_gradients``): ``JOBSTEP <index> <seconds>``
  (index from 0; seconds since the previous optimizer step ended, step 0 since training began).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset

from jobkit import StepClock, job_parser

VOCAB, POSITIONS, LAYERS, HIDDEN, HEADS = 288, 512, 2, 64, 4


class Attention(nn.Module):
    def __init__(self, hidden, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.o_proj = nn.Linear(hidden, hidden)

    def forward(self, x):
        b, t, c = x.shape
        shape = (b, t, self.num_heads, c // self.num_heads)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, c))


class DecoderLayer(nn.Module):
    def __init__(self, hidden, num_heads):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(hidden)
        self.self_attn = Attention(hidden, num_heads)
        self.post_attention_layernorm = nn.LayerNorm(hidden)
        self.fc_in = nn.Linear(hidden, 4 * hidden)
        self.fc_out = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.fc_out(F.gelu(self.fc_in(self.post_attention_layernorm(x))))


class SmallGPT(nn.Module):
    def __init__(self, vocab_size, max_positions, num_layers, hidden, num_heads):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, hidden)
        self.embed_positions = nn.Embedding(max_positions, hidden)
        self.layers = nn.ModuleList(DecoderLayer(hidden, num_heads) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab_size, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied input and output embeddings
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, labels=None):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed_tokens(input_ids) + self.embed_positions(positions)
        for layer in self.layers:
            x = layer(x)
        logits = self.lm_head(self.norm(x))
        loss = None
        if labels is not None:  # next-token prediction: position i predicts token i + 1
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))
        return {"loss": loss, "logits": logits}


class RandomTokens(Dataset):
    def __init__(self, size, seq, seed):
        self.ids = torch.randint(0, VOCAB, (size, seq), generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main():
    p = job_parser("Accelerate causal LM", batch_size=8, lr=3e-4, samples=4096, batch_help="per process")
    p.add_argument("--accum", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    args = p.parse_args()

    accelerator = Accelerator(gradient_accumulation_steps=args.accum)
    set_seed(args.seed)

    model = SmallGPT(VOCAB, POSITIONS, LAYERS, HIDDEN, HEADS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    train_dataloader = DataLoader(RandomTokens(args.samples, args.seq, args.seed), batch_size=args.batch_size,
                                  shuffle=True, drop_last=True)
    warmup = 5
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))

    tokens = args.batch_size * args.accum * args.seq
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    flops = 6 * matmul * tokens + 12 * LAYERS * args.seq * HIDDEN * tokens
    if accelerator.is_main_process:
        print(f"JOBINFO tokens_per_step={tokens} flops_per_step={float(flops)}", flush=True)

    model, optimizer, train_dataloader, scheduler = accelerator.prepare(model, optimizer, train_dataloader, scheduler)

    model.train()
    step = 0
    clock = StepClock(show=accelerator.is_main_process)
    while step < args.steps:
        for batch in train_dataloader:
            with accelerator.accumulate(model):
                outputs = model(**batch)
                loss = outputs["loss"]
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                clock.tick(step)
                step += 1
                if step % 10 == 0:
                    accelerator.print(f"step {step} loss {loss.item():.4f}")
                if step >= args.steps:
                    break
    accelerator.wait_for_everyone()
    accelerator.print(f"done: {step} steps on {accelerator.num_processes} process(es)")
    accelerator.end_training()


if __name__ == "__main__":
    main()
