"""What every benchmark case needs to know about where it runs."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from ai_ready.measure.comm import Comm, SingleComm
from ai_ready.measure.harness import DEFAULT, Budget
from ai_ready.measure.timers import Timer, timer_for


@dataclass
class BenchContext:
    """Device, ranks, time budget, environment and seed shared by the cases of one run."""

    device: str = "cpu"
    device_name: str = "cpu"
    comm: Comm = field(default_factory=SingleComm)
    budget: Budget = DEFAULT
    environment: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    timer: Timer | None = None
    host: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        if self.timer is None:
            self.timer = timer_for(self.device)

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def record_fields(self) -> dict[str, Any]:
        """Identity fields every record of this run carries."""
        return {"rank": self.rank, "host": self.host, "device": self.device_name}
