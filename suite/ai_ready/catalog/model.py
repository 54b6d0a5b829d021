"""The catalog's value types: every number carries where it came from.

A :class:`Figure` is a value with its unit and its provenance (source ids from
``sources.yaml`` or an explicit assumption). Accelerators and systems are plain
collections of figures, so a report can always say why it believes a number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from ai_ready.errors import InputError

#: Dense peak keys an accelerator may declare, in the order reports show them.
#: ``fp64`` is the vector rate, ``fp64_tensor`` the matrix (tensor-core) rate.
DTYPES: tuple[str, ...] = ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4")

#: The system that is built from runtime detection instead of a file.
LOCAL_SYSTEM = "local"

FigureValue = Union[int, float, str]


class CatalogError(InputError):
    """A catalog file is malformed; the message names the file and the key path."""


@dataclass(frozen=True)
class Figure:
    """One catalog number (or label) with its unit and why we believe it."""

    value: FigureValue
    unit: str | None = None
    source: tuple[str, ...] = ()
    assumption: str | None = None
    note: str | None = None

    @property
    def is_assumption(self) -> bool:
        """True when the figure rests on an assumption rather than only on sources."""
        return self.assumption is not None

    def cite(self) -> str:
        """Short provenance for tables: ``"S4, S1"`` or ``"assumption: ..."`` (or both)."""
        parts = []
        if self.source:
            parts.append(", ".join(self.source))
        if self.assumption:
            parts.append(f"assumption: {self.assumption}")
        return "; ".join(parts)

    def provenance(self) -> str:
        """For assumption lists in predictions: ``"source S4, S1"``, ``"assumption: ..."`` or both."""
        return f"source {self.cite()}" if self.source else self.cite()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form with every key present, so consumers need no guessing."""
        return {
            "value": self.value,
            "unit": self.unit,
            "source": list(self.source),
            "assumption": self.assumption,
            "note": self.note,
        }


def _figures_dict(figures: Mapping[str, Figure]) -> dict[str, Any]:
    return {key: figure.to_dict() for key, figure in figures.items()}


@dataclass(frozen=True)
class Accelerator:
    """One GPU/APU (or the local CPU standing in for one): peaks, memory, links, power."""

    name: str
    vendor: str
    model: str
    match: tuple[str, ...] = ()
    peak_tflops: dict[str, Figure] = field(default_factory=dict)
    memory: dict[str, Figure] = field(default_factory=dict)
    scale_up: dict[str, Figure] = field(default_factory=dict)
    power_w: Figure | None = None
    figures: dict[str, Figure] = field(default_factory=dict)
    description: str = ""

    def peak(self, dtype: str) -> Figure | None:
        """Dense peak TFLOP/s for `dtype`, or None when the part (or catalog) has none."""
        if dtype not in DTYPES:
            raise InputError(f"unknown dtype '{dtype}'; known: {', '.join(DTYPES)}")
        return self.peak_tflops.get(dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form shaped like the YAML file it came from."""
        data: dict[str, Any] = {
            "name": self.name,
            "vendor": self.vendor,
            "model": self.model,
            "description": self.description,
            "match": list(self.match),
            "peak_tflops": _figures_dict(self.peak_tflops),
            "memory": _figures_dict(self.memory),
            "scale_up": _figures_dict(self.scale_up),
            "power_w": self.power_w.to_dict() if self.power_w else None,
        }
        data.update(_figures_dict(self.figures))
        return data


@dataclass(frozen=True)
class System:
    """A machine: how many nodes of which accelerator, and what connects and feeds them."""

    name: str
    accelerator: Accelerator
    nodes: Figure
    accelerators_per_node: Figure
    scale_out: dict[str, Figure] = field(default_factory=dict)
    storage: dict[str, Figure] = field(default_factory=dict)
    power: dict[str, Figure] = field(default_factory=dict)
    reliability: dict[str, Figure] = field(default_factory=dict)
    description: str = ""

    @property
    def total_accelerators(self) -> int:
        """Nodes × accelerators per node (both are validated positive integers)."""
        return int(self.nodes.value) * int(self.accelerators_per_node.value)

    def with_nodes(self, nodes: int) -> "System":
        """This system's node (accelerator, links, storage, power, reliability) as a cluster of ``nodes``
        of them: "what if I had 64 DGX H100" without writing a system file. The node count is the user's
        definition; everything per node keeps its catalog source."""
        if nodes < 1:
            raise InputError(f"--nodes: must be at least 1, got {nodes}")
        if nodes == int(self.nodes.value):
            return self
        count = Figure(nodes, source=("definition",), note=f"--nodes {nodes}: a cluster of {self.name} nodes")
        return dataclasses.replace(self, name=f"{self.name}×{nodes}", nodes=count,
                                   description=f"{nodes} × ({self.description or self.name})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form including the full accelerator, so a record is self-contained."""
        return {
            "name": self.name,
            "description": self.description,
            "accelerator": self.accelerator.to_dict(),
            "nodes": self.nodes.to_dict(),
            "accelerators_per_node": self.accelerators_per_node.to_dict(),
            "total_accelerators": self.total_accelerators,
            "scale_out": _figures_dict(self.scale_out),
            "storage": _figures_dict(self.storage),
            "power": _figures_dict(self.power),
            "reliability": _figures_dict(self.reliability),
        }


class SystemTable(Mapping[str, System]):
    """Systems by name; ``local`` is listed always but built only when first read.

    Building ``local`` runs hardware detection (possibly importing torch), so
    listing names or testing membership must not trigger it.
    """

    def __init__(self, systems: dict[str, System], build_local: Callable[[], System]) -> None:
        self._systems = systems
        self._build_local = build_local
        self._local: System | None = None

    def __getitem__(self, name: str) -> System:
        if name == LOCAL_SYSTEM:
            if self._local is None:
                self._local = self._build_local()
            return self._local
        return self._systems[name]

    def __contains__(self, name: object) -> bool:
        return name == LOCAL_SYSTEM or name in self._systems

    def __iter__(self) -> Iterator[str]:
        yield from self._systems
        yield LOCAL_SYSTEM

    def __len__(self) -> int:
        return len(self._systems) + 1


class Catalog:
    """All known accelerators, systems and sources, after validation and user overrides."""

    def __init__(
        self,
        accelerators: dict[str, Accelerator],
        systems: dict[str, System],
        sources: dict[str, dict[str, Any]],
        build_local: "Callable[[dict[str, Any] | None, Catalog], System] | None" = None,
    ) -> None:
        self.accelerators = accelerators
        self.systems = SystemTable(systems, self._detect_local)
        self.sources = sources
        #: Builds ``local`` from detected hardware (None: detect now); given by the loader, which knows the
        #: module that does it (ai_ready.catalog.local), so this module needs none of it.
        self._build_local = build_local

    def accelerator(self, name: str) -> Accelerator:
        """The accelerator called `name`; an unknown name is the user's input error."""
        try:
            return self.accelerators[name]
        except KeyError:
            raise InputError(f"unknown accelerator '{name}'; known: {', '.join(sorted(self.accelerators))}") from None

    def system(self, name: str, detected: dict[str, Any] | None = None) -> System:
        """The system called `name`; ``local`` is built from `detected` (or fresh detection)."""
        if name == LOCAL_SYSTEM and detected is not None:
            return self._local(detected)
        if name not in self.systems:
            raise InputError(f"unknown system '{name}'; known: {', '.join(sorted(self.systems))}")
        return self.systems[name]

    def match_accelerator(self, device_name: str) -> Accelerator | None:
        """The accelerator whose longest `match` substring occurs in `device_name`.

        Longest wins so that 'NVIDIA GH200 480GB' is a GH200 although it also
        contains 'H200', and a user entry with a more specific string (say
        'H200 NVL') beats a shipped generic one.
        """
        haystack = device_name.lower()
        best: tuple[int, str] | None = None
        for name, accelerator in self.accelerators.items():
            for pattern in accelerator.match:
                if pattern and pattern.lower() in haystack:
                    candidate = (len(pattern), name)
                    if best is None or candidate[0] > best[0] or (candidate[0] == best[0] and name < best[1]):
                        best = candidate
        return self.accelerators[best[1]] if best else None

    def cite(self, figure: Figure) -> str:
        """Short provenance of `figure`: ``"S4, S1"`` or ``"assumption: ..."``."""
        return figure.cite()

    def _detect_local(self) -> System:
        """Build ``local`` from this machine (only when first read: detection may load torch)."""
        return self._local(None)

    def _local(self, detected: dict[str, Any] | None) -> System:
        if self._build_local is None:
            raise CatalogError("this catalog was built without a way to describe the local machine")
        return self._build_local(detected, self)
