"""Synthetic training data written to disk first, then read through a real DataLoader.

Input stalls are measured, not assumed: the data lives in files inside a
scratch folder (removed on exit, even on Ctrl-C or SIGTERM) and every batch
comes through `torch.utils.data.DataLoader`.

The data is learnable, so a short run shows the model really trains:
token sequences follow a sparse random Markov chain (each token has only
SUCCESSORS possible next tokens, entropy log(SUCCESSORS) against log(vocab)
for guessing), and images are a per-class template plus noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ai_ready.bench.io.scratch import Scratch

#: Possible next tokens of each token in the synthetic Markov chain.
SUCCESSORS = 4
#: Noise added to each class template, relative to the template's scale.
IMAGE_NOISE = 0.5
TOKEN_DTYPE = np.int32


def write_tokens(scratch: Scratch, sequences: int, seq_len: int, vocab: int, seed: int) -> Path:
    """`sequences` rows of seq_len + 1 tokens (inputs and shifted targets) in one raw int32 file."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, vocab, size=(vocab, SUCCESSORS))
    tokens = np.empty((sequences, seq_len + 1), dtype=TOKEN_DTYPE)
    tokens[:, 0] = rng.integers(0, vocab, size=sequences)
    choices = rng.integers(0, SUCCESSORS, size=(sequences, seq_len))
    for t in range(seq_len):
        tokens[:, t + 1] = successors[tokens[:, t], choices[:, t]]
    return _write(scratch, "tokens.bin", tokens)


def write_images(scratch: Scratch, samples: int, channels: int, size: int, classes: int,
                 seed: int) -> tuple[Path, Path]:
    """Images (float32) and labels (int32) as two raw files."""
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((classes, channels, size, size)).astype(np.float32)
    labels = rng.integers(0, classes, size=samples).astype(TOKEN_DTYPE)
    noise = rng.standard_normal((samples, channels, size, size)).astype(np.float32)
    images = templates[labels] + IMAGE_NOISE * noise
    return _write(scratch, "images.bin", images), _write(scratch, "labels.bin", labels)


def _write(scratch: Scratch, name: str, array: np.ndarray) -> Path:
    with os.fdopen(scratch.create(name), "wb") as handle:
        handle.write(np.ascontiguousarray(array).tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    return scratch.file(name)


class TokenFile(Dataset):
    """Rows of a token file, read from disk per item (memory-mapped): (inputs, targets)."""

    def __init__(self, path: Path, seq_len: int) -> None:
        self.path, self.row = path, seq_len + 1
        self.rows = path.stat().st_size // (self.row * np.dtype(TOKEN_DTYPE).itemsize)
        self._data: np.memmap | None = None

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._data is None:  # opened lazily, so each DataLoader worker maps the file itself
            self._data = np.memmap(self.path, dtype=TOKEN_DTYPE, mode="r", shape=(self.rows, self.row))
        row = torch.from_numpy(np.array(self._data[index], dtype=np.int64))
        return row[:-1], row[1:]


class ImageFile(Dataset):
    """Images and labels read from disk per item (memory-mapped)."""

    def __init__(self, images: Path, labels: Path, channels: int, size: int) -> None:
        self.images_path, self.labels_path, self.shape = images, labels, (channels, size, size)
        self.count = labels.stat().st_size // np.dtype(TOKEN_DTYPE).itemsize
        self._images: np.memmap | None = None
        self._labels: np.memmap | None = None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._images is None:
            self._images = np.memmap(self.images_path, dtype=np.float32, mode="r", shape=(self.count, *self.shape))
            self._labels = np.memmap(self.labels_path, dtype=TOKEN_DTYPE, mode="r", shape=(self.count,))
        assert self._labels is not None
        return torch.from_numpy(np.array(self._images[index])), torch.tensor(int(self._labels[index]))


def loader(dataset: Dataset, batch: int, workers: int, seed: int, rank: int = 0, world: int = 1) -> DataLoader:
    """Shuffled batches; with several ranks each rank reads its own shard (DistributedSampler)."""
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch, shuffle=True, generator=generator, num_workers=workers,
                      drop_last=True)
