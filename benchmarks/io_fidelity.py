#!/usr/bin/env python3
"""I/O fidelity: ai-ready's sequential write and read bandwidth against fio, same parameters, same run.

fio is Debian's package: `apt-get update && apt-get install -y fio` (or your distribution's).
Matching parameters: the same file size and block size, psync I/O, writes
buffered and made durable with a final fsync (fio `end_fsync=1`; ai-ready
fsyncs inside its timed region), reads with O_DIRECT when ai-ready could use
it (fio `direct=1`), else buffered after dropping the cache. Rounds alternate
ai-ready and fio; each figure is the median over rounds; target: ai-ready >= 0.85 × fio.
Both write only inside a scratch folder under --path, removed at the end.

    python benchmarks/io_fidelity.py --path /tmp [--size 256M] [--block 1M] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from ai_ready.bench.collectives.ops import parse_size
from ai_ready.bench.context import BenchContext
from ai_ready.bench.io import files
from ai_ready.bench.io.scratch import Scratch, check_path, check_space

TARGET = 0.85


def fio_gbs(scratch: Scratch, mode: str, size: int, block: int, direct: bool, name: str) -> float:
    """One fio job; bandwidth in GB/s (1e9) from its JSON report."""
    target = scratch.file(name)
    cmd = ["fio", "--name=ai-ready-fidelity", f"--filename={target}", f"--rw={mode}", f"--bs={block}",
           f"--size={size}", "--ioengine=psync", f"--direct={int(direct)}", "--output-format=json"]
    if mode == "write":
        cmd.append("--end_fsync=1")
    report = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    side = report["jobs"][0]["write" if mode == "write" else "read"]
    return side["bw_bytes"] / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/tmp")
    parser.add_argument("--size", default="256M")
    parser.add_argument("--block", default="1M")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("fio") is None:
        print("fio is not installed: apt-get update && apt-get install -y fio", file=sys.stderr)
        return 2
    root = check_path(Path(args.path))
    size, block = parse_size(args.size), parse_size(args.block)
    check_space(root, 3 * size)
    ctx = BenchContext(device="cpu", device_name="io")
    ours_w, ours_r, fio_w, fio_r, cache = [], [], [], [], ""
    with Scratch(root) as scratch:
        for i in range(args.rounds):
            records, path = files.sequential(ctx, scratch, block, size, 1, {}, keep=False)
            by_op = {r.params["op"]: r for r in records}
            ours_w.append(by_op["seq_write"].value)
            ours_r.append(by_op["seq_read"].value)
            cache = by_op["seq_read"].timing["cache"]
            name = f"fio-{i}.dat"
            fio_w.append(fio_gbs(scratch, "write", size, block, False, name))
            fio_r.append(fio_gbs(scratch, "read", size, block, cache == files.CACHE_DIRECT, name))
            scratch.file(name).unlink()
    w, r = statistics.median(ours_w) / statistics.median(fio_w), statistics.median(ours_r) / statistics.median(fio_r)
    print(f"{root} ({files.fs_type(root)}), {args.size} file, {args.block} blocks, {args.rounds} alternating rounds; "
          f"reads: {cache}")
    print(f"sequential write: ai-ready {statistics.median(ours_w):.3f} GB/s, fio {statistics.median(fio_w):.3f} GB/s, "
          f"ratio {w:.3f} (target >= {TARGET})")
    print(f"sequential read:  ai-ready {statistics.median(ours_r):.3f} GB/s, fio {statistics.median(fio_r):.3f} GB/s, "
          f"ratio {r:.3f} (target >= {TARGET})")
    return 0 if min(w, r) >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
