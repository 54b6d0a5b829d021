"""Energy and electricity cost of a training run: GPUs × power × (1 + node overhead) × PUE × hours.

Pure Python on plain floats. A negative or non-finite argument raises ValueError; a catalog system
without the accelerator power this needs raises :class:`~ai_ready.errors.InputError`.

Formula: IT power = GPUs × P_GPU × (1 + o), where o is the rest of the node and system (CPUs, NICs,
switches, fans, storage) as a fraction of the GPUs' power; facility power = IT power × PUE; energy
= facility power × hours. The catalog has no electricity price and no per-node overhead
(``docs/catalog.md``, "Not in the schema"), so both come from the constants below, marked as
assumptions from the project's research notes (``shared/reference/systems-catalogue.yaml``,
POWER / COST), unless a system's whole power lets the overhead be derived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ai_ready.catalog.model import Figure, System
from ai_ready.errors import InputError

WH_PER_KWH = 1000.0
W_PER_MW = 1e6

#: Electricity price, EUR per kWh. Not in the catalog schema.
DEFAULT_EUR_PER_KWH = 0.20
EUR_PER_KWH_ASSUMPTION = (
    "research notes (electricity_Germany, S16, S34): ~0.20 EUR/kWh for German HPC centres, rising ~3%/yr; "
    "planning range 0.15-0.25 EUR/kWh for a German DC/HPC site; 0.20 chosen"
)

#: Power of everything but the GPUs, as a fraction of the GPUs' power, when the catalog cannot derive it.
DEFAULT_NODE_OVERHEAD_FRACTION = 0.5
NODE_OVERHEAD_ASSUMPTION = (
    "research notes (AI_Gigafactories, S26, S27): GB200 NVL72 ~120-130 kW per 72 GPUs of ~1,200 W "
    "(GB200 tdp, S1, S3), i.e. 0.39-0.50 above the GPUs' power; upper end chosen so energy errs high"
)

#: PUE when the system's catalog entry has none.
DEFAULT_PUE = 1.2
PUE_ASSUMPTION = "research notes (PUE, S18): new AI data centres 1.1-1.3; midpoint chosen"

#: Mean GPU power over a training run as a fraction of the catalog's TDP.
DEFAULT_POWER_FRACTION = 1.0
POWER_FRACTION_ASSUMPTION = (
    "GPUs and the rest of the node draw their rated power for the whole wall time, restarts included; "
    "the research notes give TDPs only, so this is an upper bound"
)


def _check(name: str, value: float, strict: bool = False) -> float:
    """`value` as a finite float >= 0 (> 0 if `strict`), else ValueError."""
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or (strict and value == 0.0):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {value!r}")
    return value


def energy_kwh(gpus: int, gpu_power_w: float, hours: float, node_overhead_fraction: float, pue: float) -> float:
    """Facility energy in kWh: gpus × gpu_power_w × (1 + node_overhead_fraction) × pue × hours / 1000."""
    count = _check("gpus", gpus)
    power = _check("gpu_power_w", gpu_power_w)
    duration = _check("hours", hours)
    overhead = _check("node_overhead_fraction", node_overhead_fraction)
    usage = _check("pue", pue, strict=True)
    if usage < 1.0:
        raise ValueError(f"pue must be >= 1 (facility power includes the IT power), got {pue!r}")
    return count * power * (1.0 + overhead) * usage * duration / WH_PER_KWH


def cost_eur(kwh: float, eur_per_kwh: float = DEFAULT_EUR_PER_KWH) -> float:
    """Electricity cost in EUR: kwh × eur_per_kwh (energy only: no hardware, staff or network fees)."""
    return _check("kwh", kwh) * _check("eur_per_kwh", eur_per_kwh)


@dataclass(frozen=True)
class EnergyCost:
    """Energy and electricity cost of `gpus` GPUs for `hours`, with every input that produced them.

    ``gpu_power_w`` is the mean power per GPU used (TDP × power fraction for :func:`for_system`);
    ``assumptions`` names each figure and where it came from (catalog with source, or assumption).
    """

    gpus: int
    gpu_power_w: float
    hours: float
    node_overhead_fraction: float
    pue: float
    eur_per_kwh: float
    kwh: float
    eur: float
    assumptions: tuple[str, ...] = ()

    @property
    def it_power_kw(self) -> float:
        """Power of the job's share of the machine: gpus × P × (1 + overhead), kW."""
        return self.gpus * self.gpu_power_w * (1.0 + self.node_overhead_fraction) / WH_PER_KWH

    @property
    def facility_power_kw(self) -> float:
        """IT power × PUE, kW."""
        return self.it_power_kw * self.pue


def energy_cost(gpus: int, gpu_power_w: float, hours: float, node_overhead_fraction: float, pue: float,
                eur_per_kwh: float = DEFAULT_EUR_PER_KWH, assumptions: tuple[str, ...] = ()) -> EnergyCost:
    """:func:`energy_kwh` and :func:`cost_eur` together, as an :class:`EnergyCost`."""
    kwh = energy_kwh(gpus, gpu_power_w, hours, node_overhead_fraction, pue)
    return EnergyCost(gpus=int(gpus), gpu_power_w=float(gpu_power_w), hours=float(hours),
                      node_overhead_fraction=float(node_overhead_fraction), pue=float(pue),
                      eur_per_kwh=float(eur_per_kwh), kwh=kwh, eur=cost_eur(kwh, eur_per_kwh),
                      assumptions=tuple(assumptions))


def _node_overhead(system: System, gpu_figure: Figure) -> tuple[float, str]:
    """Overhead derived from the system's whole power, else the default assumption."""
    whole = system.power.get("system_power_mw")
    if whole is None:
        return DEFAULT_NODE_OVERHEAD_FRACTION, (
            f"node overhead: {DEFAULT_NODE_OVERHEAD_FRACTION:g} of GPU power (no power.system_power_mw in "
            f"the catalog for {system.name}; assumption: {NODE_OVERHEAD_ASSUMPTION})")
    gpu_total_w = system.total_accelerators * float(gpu_figure.value)
    derived = float(whole.value) * W_PER_MW / gpu_total_w - 1.0
    clamped = max(0.0, derived)
    text = (f"node overhead: {clamped:.3g} of GPU power, derived: catalog {system.name} power.system_power_mw "
            f"{float(whole.value):g} MW ({whole.provenance()}) / ({system.total_accelerators} × "
            f"{float(gpu_figure.value):g} W) - 1, the whole system's non-GPU power spread over its GPUs")
    if derived < 0.0:
        text += f"; the system's power is below its GPUs' TDP sum ({derived:.3g}), 0 used"
    return clamped, text


def for_system(system: System, gpus: int, hours: float, utilisation_power_fraction: float | None = None,
               eur_per_kwh: float | None = None) -> EnergyCost:
    """Energy and cost of `gpus` GPUs of a catalog `system` for `hours` of wall time.

    From the catalog: the accelerator's ``power_w`` (TDP), the system's ``power.pue`` (else
    :data:`DEFAULT_PUE`), and the node overhead o = system_power / (total GPUs × TDP) − 1 when the
    system has ``power.system_power_mw`` (else :data:`DEFAULT_NODE_OVERHEAD_FRACTION`). Mean power
    is TDP × ``utilisation_power_fraction`` (default :data:`DEFAULT_POWER_FRACTION`, 1), applied to
    GPU and overhead alike. The price defaults to :data:`DEFAULT_EUR_PER_KWH`. Pass the wall time
    including failure waste (:attr:`ai_ready.model.resilience.Goodput.wall_s`) as `hours` × 3600.
    """
    if isinstance(gpus, bool) or int(gpus) != gpus or gpus < 1:
        raise ValueError(f"gpus must be a whole number >= 1, got {gpus!r}")
    if gpus > system.total_accelerators:
        raise InputError(f"system '{system.name}' has {system.total_accelerators} accelerators, "
                         f"fewer than the {gpus} asked for")
    gpu_figure = system.accelerator.power_w
    if gpu_figure is None:
        raise InputError(f"accelerator '{system.accelerator.name}' of system '{system.name}' has no power_w "
                         "in the catalog; declare it in a catalog folder of your own to estimate energy")
    notes = [f"GPU power: {float(gpu_figure.value):g} W TDP (catalog accelerator {system.accelerator.name} "
             f"power_w, {gpu_figure.provenance()})"]
    if utilisation_power_fraction is None:
        fraction = DEFAULT_POWER_FRACTION
        notes.append(f"power fraction: {fraction:g} of rated power (assumption: {POWER_FRACTION_ASSUMPTION})")
    else:
        fraction = _check("utilisation_power_fraction", utilisation_power_fraction, strict=True)
        if fraction > 1.0:
            raise ValueError(f"utilisation_power_fraction must be in (0, 1], got {utilisation_power_fraction!r}")
        notes.append(f"power fraction: {fraction:g} of rated power (given by the caller)")
    overhead, overhead_note = _node_overhead(system, gpu_figure)
    notes.append(overhead_note)
    pue_figure = system.power.get("pue")
    if pue_figure is not None:
        pue = float(pue_figure.value)
        notes.append(f"PUE: {pue:g} (catalog {system.name} power.pue, {pue_figure.provenance()})")
    else:
        pue = DEFAULT_PUE
        notes.append(f"PUE: {pue:g} (not in the catalog for {system.name}; assumption: {PUE_ASSUMPTION})")
    if eur_per_kwh is None:
        price = DEFAULT_EUR_PER_KWH
        notes.append(f"electricity price: {price:g} EUR/kWh (not in the catalog schema; "
                     f"assumption: {EUR_PER_KWH_ASSUMPTION})")
    else:
        price = _check("eur_per_kwh", eur_per_kwh)
        notes.append(f"electricity price: {price:g} EUR/kWh (given by the caller)")
    return energy_cost(int(gpus), float(gpu_figure.value) * fraction, hours, overhead, pue, price,
                       tuple(notes))
