"""Test job: a Hugging Face ``transformers.Trainer`` run, written the way its users write one.

A tiny GPT-2 built from its config with ``AutoModelForCausalLM.from_config`` (nothing is
downloaded: HF_HUB_OFFLINE=1), 2 layers, hidden 64, 4 heads, a 300-token vocabulary and 512
positions -- more positions than tokens, so the largest embedding is NOT the vocabulary.
The data set is random token ids served as ``{"input_ids", "labels"}`` dicts (the model
shifts the labels itself).  TrainingArguments: per-device batch 4, gradient accumulation 2,
``max_steps``, no saving, no logging, no reporting, the CPU when there is no GPU, no
DataLoader workers.

Printed to stdout:

* once, before training: ``JOBINFO tokens_per_step=<int> flops_per_step=<float>`` where
  tokens_per_step = batch x accumulation x seq and flops_per_step is the job's own count,
  6 x (weights taking part in a matmul per token: every Linear / Conv1D weight, the LM head
  included) x tokens + 12 x layers x seq x hidden x tokens (attention scores and values,
  forward and backward);
* for every optimizer step (``TrainerCallback.on_step_end``): ``JOBSTEP <index> <seconds>``
  (index from 0; seconds since the previous optimizer step ended, step 0 since training began).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import torch.nn as nn
from torch.utils.data import Dataset
from transformers import AutoModelForCausalLM, GPT2Config, Trainer, TrainerCallback, TrainingArguments
from transformers.pytorch_utils import Conv1D

from jobkit import StepClock, job_parser, scratch_dir

VOCAB, POSITIONS, LAYERS, HIDDEN, HEADS = 300, 512, 2, 64, 4


class RandomTokens(Dataset):
    """`size` sequences of `seq` random token ids, fixed by the seed."""

    def __init__(self, size, seq, vocab, seed):
        self.ids = torch.randint(0, vocab, (size, seq), generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


class StepPrinter(TrainerCallback):
    """JOBSTEP for every optimizer step: on_step_end runs once per optimizer step, not per micro-batch."""

    def __init__(self):
        self.clock = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock = StepClock(show=state.is_world_process_zero)

    def on_step_end(self, args, state, control, **kwargs):
        self.clock.tick(state.global_step - 1)


def matmul_weights(model):
    """Weights multiplied with every token's activations: Linear (the tied LM head too) and GPT-2's Conv1D."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)))


def main():
    p = job_parser("HF Trainer causal LM", batch_size=4, lr=3e-4, samples=4096, batch_help="per device")
    p.add_argument("--accum", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    args = p.parse_args()

    config = GPT2Config(vocab_size=VOCAB, n_positions=POSITIONS, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS,
                        bos_token_id=0, eos_token_id=0)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config)
    train_set = RandomTokens(args.samples, args.seq, VOCAB, args.seed)

    tokens = args.batch_size * args.accum * args.seq
    flops = (6 * matmul_weights(model) * tokens
             + 12 * config.n_layer * args.seq * config.n_embd * tokens)
    print(f"JOBINFO tokens_per_step={tokens} flops_per_step={float(flops)}", flush=True)

    with scratch_dir("hf_trainer_job_") as tmp:
        training_args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=args.accum,
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=0,
            weight_decay=0.01,
            save_strategy="no",
            logging_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            seed=args.seed,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train_set, callbacks=[StepPrinter()])
        result = trainer.train()
        if trainer.is_world_process_zero():
            print(f"done: {trainer.state.global_step} steps, loss {result.training_loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
