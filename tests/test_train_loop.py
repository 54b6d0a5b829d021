"""The training loop's instrumentation (injected clock) and the on-disk synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ai_ready.bench.io.scratch import Scratch
from ai_ready.train import data
from ai_ready.train.loop import PHASES, train_steps


class TickClock:
    """Advances one second per reading: each phase of a step then measures exactly 1 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def regression_loader(batch: int = 16) -> torch.utils.data.DataLoader:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.arange(1.0, 9.0).unsqueeze(1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True)


def test_phases_are_measured_per_step_and_warmup_excluded() -> None:
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    log = train_steps(model, regression_loader(), torch.nn.functional.mse_loss, optimizer, steps=40,
                      warmup_steps=3, device="cpu", clock=TickClock())
    assert len(log.total) == 40 and len(log.warmup_loss) == 3
    for phase in PHASES:  # the clock is read once at each of a step's five boundaries
        assert log.phases[phase] == [1.0] * 40
    assert log.total == [4.0] * 40
    assert log.loss[-1] < 0.1 * log.warmup_loss[0]  # it really trains


def test_diverging_loss_stops_the_run() -> None:
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)  # explodes
    with pytest.raises(FloatingPointError, match="diverged"):
        train_steps(model, regression_loader(), torch.nn.functional.mse_loss, optimizer, steps=200,
                    warmup_steps=0, device="cpu")


def test_bf16_autocast_on_cpu_runs() -> None:
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    log = train_steps(model, regression_loader(), torch.nn.functional.mse_loss, optimizer, steps=5,
                      warmup_steps=1, device="cpu", precision="bf16")
    assert len(log.loss) == 5


def test_token_file_is_a_learnable_markov_chain(tmp_path: Path) -> None:
    with Scratch(tmp_path) as scratch:
        path = data.write_tokens(scratch, sequences=64, seq_len=16, vocab=100, seed=3)
        dataset = data.TokenFile(path, seq_len=16)
        assert len(dataset) == 64
        inputs, targets = dataset[5]
        assert inputs.shape == targets.shape == (16,) and inputs.dtype == torch.int64
        assert torch.equal(inputs[1:], targets[:-1])  # targets are the inputs shifted by one
        # every token has at most SUCCESSORS distinct next tokens
        rows = np.stack([torch.cat([dataset[i][0], dataset[i][1][-1:]]).numpy() for i in range(64)])
        pairs = {}
        for row in rows:
            for a, b in zip(row[:-1], row[1:]):
                pairs.setdefault(int(a), set()).add(int(b))
        assert max(len(s) for s in pairs.values()) <= data.SUCCESSORS
        batches = list(data.loader(dataset, batch=8, workers=0, seed=0))
        assert len(batches) == 8 and batches[0][0].shape == (8, 16)
    assert not any(tmp_path.iterdir())  # the data folder is removed with the scratch folder


def test_image_files_and_rank_shards(tmp_path: Path) -> None:
    with Scratch(tmp_path) as scratch:
        images, labels = data.write_images(scratch, samples=40, channels=3, size=8, classes=4, seed=1)
        dataset = data.ImageFile(images, labels, channels=3, size=8)
        image, label = dataset[3]
        assert image.shape == (3, 8, 8) and 0 <= int(label) < 4
        shards = [sorted(i for batch in data.loader(torch.utils.data.TensorDataset(torch.arange(40)), 5, 0, 0, r, 2)
                         for i in batch[0].tolist()) for r in range(2)]
        assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 20


def test_every_preset_runs_one_schedule_shape_with_a_width_scaled_peak() -> None:
    from ai_ready.train.schedule import FLOOR, peak_rate, rate_factor
    factors = [rate_factor(step, 23) for step in range(23)]
    warmup = factors.index(max(factors))
    assert 0 < factors[0] < 1 and warmup >= 1 and max(factors) == 1.0  # linear warm-up to the peak
    assert all(a >= b for a, b in zip(factors[warmup:], factors[warmup + 1:]))  # then only down
    assert factors[-1] == pytest.approx(FLOOR)
    assert peak_rate(3e-3, 64) == 3e-3 and peak_rate(3e-3, 1792) == pytest.approx(3e-3 * 256 / 1792)
    assert peak_rate(1e-3, None) == 1e-3
