"""The `ai-ready` commands as data: which module holds each one, loaded only when it is run.

`ai-ready --help`, `systems`, `extrapolate`, `validate` and `report` never import torch (about 1.4 s),
which only measuring commands need. The command-line group lists and loads commands from this table, and
an acceptance suite checks a benchmark's `args` against the options of the command it names through it,
so neither the CLI nor the acceptance package imports the other.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name: (module, attribute, modules that add subcommands to it, the one-line help `ai-ready --help` shows; a
#: test checks it against the command's own).
COMMANDS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "info": ("ai_ready.cli.info", "info", (),
             "Show the device, CPU, launcher, ranks and software versions."),
    "bench": ("ai_ready.cli.bench", "bench", ("ai_ready.cli.collectives", "ai_ready.cli.memory", "ai_ready.cli.io"),
             "Micro-benchmarks: each writes a versioned JSON result file."),
    "systems": ("ai_ready.cli.systems", "systems", (),
             "The system catalog: peak figures with their sources."),
    "report": ("ai_ready.cli.report", "report", (),
             "Render result files (bench, train, profile) and extrapolations into a readiness report (opens "
             "offline)."),
    "train": ("ai_ready.cli.train", "train", (),
             "Train a scaled-down GPT, mixture-of-experts GPT or ResNet for a few steps: throughput, MFU, "
             "time breakdown (data, forward, backward, optimizer), loss curve and memory."),
    "profile": ("ai_ready.cli.profile", "profile", (),
             "Profile the training job in DIRECTORY (its ai-ready.yaml says how to run it), or the command "
             "after `--`: `ai-ready profile DIR -- python train.py --lr 3e-4`."),
    "validate": ("ai_ready.cli.validate", "validate", (),
             "Predict published large-scale training runs with the analytic model and report the errors."),
    "extrapolate": ("ai_ready.cli.extrapolate", "extrapolate", (),
             "Predict step time, MFU, memory, time/energy/cost to train and goodput of WORKLOAD on a system."),
    "accept": ("ai_ready.cli.accept", "accept", (),
             "Nightly system acceptance: run a suite, judge every metric on every node against its reference, "
             "its history and the fleet, keep the run in a history database, write JUnit, Prometheus and "
             "HTML."),
}


def load(name: str) -> Any:
    """The click command `name` with its subcommands (importing their modules registers them)."""
    module, attribute, extensions, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module), attribute)
    for extension in extensions:
        importlib.import_module(extension)
    return command
