"""Test job: a word-level language model in the style of the classic PyTorch language-model examples:
the corpus is a 1-D tensor of token ids cut by ``batchify`` into columns, ``get_batch(source, i)`` slices
``bptt`` rows off it (sequence-first tensors of shape [bptt, batch]), an ``nn.TransformerEncoder`` (or an
LSTM with ``--model lstm``) runs over them, and the weights are updated by hand:
``p.data.add_(p.grad, alpha=-lr)``. No optimizer object, no DataLoader.

It prints ``JOBSTEP <index> <seconds>`` after every update and once
``JOBINFO tokens_per_step=<n> flops_per_step=<f>`` (6 x matmul weights x tokens + 12 x layers x bptt x
d_model x tokens for the transformer).
"""

import argparse
import math
import time

import torch
import torch.nn as nn


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=5000):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(1))

    def forward(self, x):
        return x + self.pe[:x.size(0)]


class TransformerLM(nn.Module):
    def __init__(self, ntoken, ninp, nhead, nhid, nlayers):
        super().__init__()
        self.pos_encoder = PositionalEncoding(ninp)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout=0.1)  # sequence-first (batch_first=False)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.decoder = nn.Linear(ninp, ntoken)
        self.ninp = ninp

    def forward(self, src):
        mask = nn.Transformer.generate_square_subsequent_mask(len(src)).to(src.device)
        src = self.pos_encoder(self.encoder(src) * math.sqrt(self.ninp))
        return torch.log_softmax(self.decoder(self.transformer_encoder(src, mask, is_causal=True)), dim=-1)


class RNNLM(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, src, hidden):
        output, hidden = self.rnn(self.encoder(src), hidden)
        return torch.log_softmax(self.decoder(output), dim=-1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def batchify(data, bsz, device):
    nbatch = data.size(0) // bsz
    return data[:nbatch * bsz].view(bsz, -1).t().contiguous().to(device)


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["transformer", "lstm"], default="transformer")
    p.add_argument("--ntokens", type=int, default=2000)
    p.add_argument("--emsize", type=int, default=64)
    p.add_argument("--nhid", type=int, default=128)
    p.add_argument("--nlayers", type=int, default=2)
    p.add_argument("--nhead", type=int, default=4)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=5.0)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    corpus = torch.randint(0, args.ntokens, (60_000,))
    train_data = batchify(corpus, args.batch_size, device)
    if args.model == "transformer":
        model = TransformerLM(args.ntokens, args.emsize, args.nhead, args.nhid, args.nlayers).to(device)
    else:
        model = RNNLM(args.ntokens, args.emsize, args.nhid, args.nlayers).to(device)
    criterion = nn.NLLLoss()
    tokens = args.bptt * args.batch_size
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    matmul += sum(m.in_proj_weight.numel() for m in model.modules() if isinstance(m, nn.MultiheadAttention))
    flops = (6 * matmul + 12 * args.nlayers * args.bptt * args.emsize) * tokens
    print(f"JOBINFO tokens_per_step={tokens} flops_per_step={flops:.6e}", flush=True)

    step = 0
    last = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        hidden = model.init_hidden(args.batch_size) if args.model == "lstm" else None
        for i in range(0, train_data.size(0) - 1 - args.bptt, args.bptt):
            data, targets = get_batch(train_data, i, args.bptt)
            model.zero_grad()
            if args.model == "transformer":
                output = model(data)
            else:
                hidden = repackage_hidden(hidden)
                output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, args.ntokens), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for param in model.parameters():
                param.data.add_(param.grad, alpha=-args.lr)
            now = time.perf_counter()
            print(f"JOBSTEP {step} {now - last:.6f}", flush=True)
            last = now
            step += 1
        with torch.no_grad():  # a short evaluation each epoch, outside training
            model.eval()
            data, _ = get_batch(train_data, 0, args.bptt)
            model(data) if args.model == "transformer" else model(data, model.init_hidden(args.batch_size))


if __name__ == "__main__":
    main()
