"""Training stacks as data (``data/software.yaml``): named presets of :class:`~ai_ready.model.step.Software`,
each with its sources, so a prediction says which stack it assumed and why.

A workload names one (``software: torchtitan``), overrides fields of one (``software: {preset:
megatron-core-2024, tp_overlap: 0.3}``) or gives every field; without any it runs on the default
preset, a plain PyTorch stack: an unknown user job is not credited with the best published stack.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ai_ready.errors import InputError
from ai_ready.model.step import Software

PRESETS_FILE = Path(__file__).parent / "data" / "software.yaml"
FIELDS = tuple(f.name for f in dataclasses.fields(Software))
META_KEYS = ("description", "sources", "assumptions")


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    software: Software
    description: str
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]


@lru_cache(maxsize=1)
def presets() -> tuple[dict[str, Preset], str]:
    """(presets by name, the default's name), read once from data/software.yaml."""
    data = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))
    found = {}
    for name, raw in data["presets"].items():
        software = Software(**{k: raw[k] for k in FIELDS}).validate()
        found[name] = Preset(name, software, raw["description"], tuple(raw.get("sources", ())),
                             tuple(raw.get("assumptions", ())))
    return found, data["default"]


def preset(name: str) -> Preset:
    known, _ = presets()
    if name not in known:
        raise InputError(f"software: unknown preset '{name}'; accepted: {', '.join(known)}")
    return known[name]


def default_preset() -> Preset:
    return preset(presets()[1])


def resolve(raw: Any) -> tuple[Software, str]:
    """The stack a workload's ``software`` value names, and a line saying which (for the assumptions)."""
    if raw is None:
        chosen = default_preset()
        return chosen.software, _say(chosen, "default, no software given")
    if isinstance(raw, str):
        chosen = preset(raw)
        return chosen.software, _say(chosen, "given")
    if not isinstance(raw, dict):
        raise InputError(f"software: must be a preset name ({', '.join(presets()[0])}) or a mapping with keys "
                         f"preset, {', '.join(FIELDS)}")
    for key in raw:
        if key not in FIELDS and key != "preset":
            raise InputError(f"software: unknown key 'software.{key}'; accepted: preset, {', '.join(FIELDS)}")
    overrides = {k: v for k, v in raw.items() if k != "preset"}
    if "preset" in raw:
        base = preset(str(raw["preset"]))
        software = dataclasses.replace(base.software, **overrides).validate()
        changed = ", ".join(f"{k} {v}" for k, v in overrides.items())
        return software, _say(base, "given") + (f"; overridden: {changed}" if changed else "")
    base = default_preset()
    software = dataclasses.replace(base.software, **overrides).validate()
    return software, f"software: given fields over the default preset {base.name} ({', '.join(overrides)})"


def _say(chosen: Preset, how: str) -> str:
    notes = "; ".join(chosen.assumptions)
    return (f"software: preset {chosen.name} ({how}): {chosen.description} (sources: {'; '.join(chosen.sources)})"
            + (f"; assumptions: {notes}" if notes else ""))
