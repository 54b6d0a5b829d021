"""Training stacks as data (``data/software.yaml``): named presets of :class:`~ai_ready.model.step.Software`,
each with its sources, so a prediction says which stack it assumed and why.

A workload names one (``software: torchtitan``), overrides fields of one (``software: {preset:
megatron-core-2024, tp_overlap: 0.3}``) or gives every field; without any it runs on the default
preset, a plain PyTorch stack: an unknown user job is not credited with the best published stack.

A preset's kernel ``efficiency`` comes from ``data/stack_fit.yaml``: fitted on the published runs of
that stack, else of its family, else of all stacks (:mod:`ai_ready.model.fit` writes the file; a
test checks it is current).
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
FIT_FILE = Path(__file__).parent / "data" / "stack_fit.yaml"
FIELDS = tuple(f.name for f in dataclasses.fields(Software))
#: Fields a preset states; ``efficiency`` is fitted (stack_fit.yaml), never written by hand.
PRESET_FIELDS = tuple(f for f in FIELDS if f != "efficiency")
META_KEYS = ("description", "family", "sources", "assumptions")


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    software: Software
    description: str
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]
    family: str = ""
    #: How ``software.efficiency`` was found: "fitted on <sources>", or why not.
    efficiency_basis: str = "not fitted (no data/stack_fit.yaml): 1.0"


@lru_cache(maxsize=1)
def fitted() -> dict[str, Any]:
    """data/stack_fit.yaml as read, or {} where it does not exist yet (while it is being fitted)."""
    if not FIT_FILE.exists():
        return {}
    return yaml.safe_load(FIT_FILE.read_text(encoding="utf-8")) or {}


@lru_cache(maxsize=1)
def presets() -> tuple[dict[str, Preset], str]:
    """(presets by name, the default's name), read once from data/software.yaml and data/stack_fit.yaml."""
    data = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))
    fits = fitted().get("presets", {})
    found = {}
    for name, raw in data["presets"].items():
        fit = fits.get(name)
        efficiency = float(fit["efficiency"]) if fit else 1.0
        software = Software(**{k: raw[k] for k in PRESET_FIELDS}, efficiency=efficiency).validate()
        basis = (f"{efficiency:.3f}, {fit['basis']}" if fit else Preset.efficiency_basis)
        found[name] = Preset(name, software, raw["description"], tuple(raw.get("sources", ())),
                             tuple(raw.get("assumptions", ())), raw["family"], basis)
    return found, data["default"]


def cross_validated() -> dict[str, Any]:
    """The leave-one-source-out summary of data/stack_fit.yaml ({} before the first fit)."""
    return dict(fitted().get("cross_validation", {}))


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


def names() -> tuple[str, ...]:
    """The preset names, in file order (for help texts and error messages)."""
    return tuple(presets()[0])


def _say(chosen: Preset, how: str) -> str:
    notes = "; ".join(chosen.assumptions)
    return (f"software: preset {chosen.name} ({how}): {chosen.description} (sources: {'; '.join(chosen.sources)})"
            + (f"; assumptions: {notes}" if notes else "")
            + f"; kernel efficiency {chosen.efficiency_basis}")
