"""Run `ai-ready bench collectives` under mpiexec with a planted fault on one rank.

AI_READY_TEST_FAULT=wrong:RANK   rank RANK corrupts the first output element of every step
AI_READY_TEST_FAULT=hang:RANK:BYTES   rank RANK sleeps for a minute in the first call at size BYTES
The rest of argv is passed to the CLI unchanged. Used only by tests/test_collectives.py.
"""

from __future__ import annotations

import os
import sys
import time

from ai_ready.bench.collectives import backends
from ai_ready.cli import main

HANG_S = 60.0


def rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def plant(kind: str, target: int, size: int | None) -> None:
    for cls in (backends.TorchBackend, backends.MPIBackend):
        real = cls.prepare

        def prepare(self, op, placement, count, _real=real):
            prepared = _real(self, op, placement, count)
            if rank() != target:
                return prepared
            if kind == "wrong":
                output = prepared.output

                def corrupted():
                    values = output().copy()
                    values[0] += 1000.0
                    return values

                prepared.output = corrupted
            elif kind == "hang" and count * self.type_size == size:
                run = prepared.run

                def sleepy():
                    time.sleep(HANG_S)
                    return run()

                prepared.run = sleepy
            return prepared

        cls.prepare = prepare


if __name__ == "__main__":
    kind, target, *rest = os.environ["AI_READY_TEST_FAULT"].split(":")
    plant(kind, int(target), int(rest[0]) if rest else None)
    main(sys.argv[1:])
