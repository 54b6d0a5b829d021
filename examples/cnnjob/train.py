"""Train a small ResNet-style CNN on synthetic 32x32 images (10 classes).

An ordinary PyTorch training script: argparse, an image dataset stored as .npy files and
read through a Dataset / DataLoader, SGD with momentum, periodic checkpoints.  Runs on
CUDA when available, otherwise on the CPU; single process.

The images are made on first run: every class has a smooth random colour template, and
each image is its class template plus per-pixel noise, stored as uint8 in ``--data-dir``.
"""

import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=16, help="channels of the first stage")
    p.add_argument("--blocks", type=int, default=1, help="BasicBlocks per stage")
    p.add_argument("--num-images", type=int, default=2560)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=60, help="optimizer steps to run")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--checkpoint-every", type=int, default=20, help="0 disables checkpoints")
    p.add_argument("--checkpoint-dir", default=os.path.join(HERE, "checkpoints"))
    p.add_argument("--data-dir", default=os.path.join(HERE, "data"))
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args()


# --------------------------------------------------------------------------- data

NUM_CLASSES = 10
MEAN, STD = 127.5, 64.0


def data_files(data_dir, n, seed):
    stem = os.path.join(data_dir, f"synthetic_n{n}_s{seed}")
    return stem + "_images.npy", stem + "_labels.npy"


def make_images(image_path, label_path, n, seed):
    """Class template (smooth random colour pattern) + Gaussian noise, stored as uint8 NCHW."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.normal(size=(NUM_CLASSES, 3, 4, 4)).astype(np.float32))
    templates = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False).numpy()
    labels = rng.integers(0, NUM_CLASSES, size=n).astype(np.int64)
    noise = rng.normal(scale=1.0, size=(n, 3, 32, 32)).astype(np.float32)
    images = np.clip(MEAN + 40.0 * (templates[labels] + noise), 0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    for path, arr in ((image_path, images), (label_path, labels)):
        tmp = f"{path}.tmp{os.getpid()}.npy"
        np.save(tmp, arr)
        os.replace(tmp, path)


class ImageDataset(Dataset):
    def __init__(self, image_path, label_path, train=True):
        self.image_path, self.label_path, self.train = image_path, label_path, train
        self.labels = np.load(label_path)
        self.images = None  # memory-mapped lazily, once per DataLoader worker

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if self.images is None:
            self.images = np.load(self.image_path, mmap_mode="r")
        x = torch.from_numpy(np.array(self.images[i], dtype=np.float32))
        x = (x - MEAN) / STD
        if self.train and torch.rand(()) < 0.5:  # random horizontal flip
            x = x.flip(-1)
        return x, int(self.labels[i])


# --------------------------------------------------------------------------- model


class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, width=16, blocks=1, num_classes=NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers, in_ch = [], width
        for stage, mult in enumerate((1, 2, 4)):
            out_ch = width * mult
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(in_ch, out_ch, stride))
                in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# --------------------------------------------------------------------------- main


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    image_path, label_path = data_files(args.data_dir, args.num_images, args.seed)
    if not (os.path.exists(image_path) and os.path.exists(label_path)):
        print(f"writing synthetic images to {args.data_dir}", flush=True)
        make_images(image_path, label_path, args.num_images, args.seed)
    dataset = ImageDataset(image_path, label_path)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
        persistent_workers=args.workers > 0,
    )

    model = ResNet(args.width, args.blocks).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    criterion = nn.CrossEntropyLoss()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device {device} params {n_params / 1e6:.2f}M images {len(dataset)} "
          f"batches/epoch {len(loader)}", flush=True)
    if args.checkpoint_every > 0:
        os.makedirs(args.checkpoint_dir, exist_ok=True)
    ckpt_path = os.path.join(args.checkpoint_dir, "ckpt.pt")

    step, epoch = 0, 0
    t0 = time.time()
    model.train()
    while step < args.steps:
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            logits = model(images)
            loss = criterion(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1

            if step % 10 == 0:
                acc = (logits.argmax(1) == labels).float().mean().item()
                print(f"step {step} loss {loss.item():.3f} acc {acc:.2f}", flush=True)
            if args.checkpoint_every > 0 and step % args.checkpoint_every == 0:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "step": step}, ckpt_path)
            if step >= args.steps:
                break
        epoch += 1

    elapsed = time.time() - t0
    print(f"done: {step} steps, {epoch} epochs, {elapsed:.1f}s "
          f"({1000 * elapsed / max(step, 1):.1f} ms/step)", flush=True)


if __name__ == "__main__":
    main()
