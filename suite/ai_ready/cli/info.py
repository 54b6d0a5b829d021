"""`ai-ready info`: what this process runs on."""

from __future__ import annotations

import json

import click

from ai_ready.cli.console import print_table
from ai_ready.env.detect import detect


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the environment record as JSON.")
def info(as_json: bool) -> None:
    """Show the device, CPU, launcher, ranks and software versions."""
    env = detect()
    if as_json:
        click.echo(json.dumps(env, indent=2))
        return
    device, cpu, launcher, versions = env["device"], env["cpu"], env["launcher"], env["versions"]
    rows = [("host", env["host"]), ("platform", env["platform"])]
    if device["kind"] == "cuda":
        rows += [
            ("GPU", f"{device['count']} × {device['name']}"),
            ("GPU memory", f"{device['memory_gb']:.1f} GB"),
            ("SMs / compute capability", f"{device['sm_count']} / {device['compute_capability']}"),
            ("driver / CUDA / NCCL", f"{device['driver'] or '?'} / {device['cuda'] or '?'} / {device['nccl'] or '?'}"),
        ]
    else:
        rows.append(("GPU", "none (CPU only)"))
    rows += [
        ("CPU", f"{cpu['model']} ({cpu['cores_physical']} cores, {cpu['cores_logical']} threads)"),
        ("CPU clock", f"{cpu['freq_mhz']:.0f} MHz" if cpu["freq_mhz"] else "unknown"),
        ("memory", f"{cpu['memory_gb']:.1f} GB"),
        ("launcher", f"{launcher['name']}: rank {launcher['rank']} of {launcher['world_size']}, "
                     f"local rank {launcher['local_rank']}"),
    ]
    rows += [(name, value or "not installed") for name, value in versions.items()]
    print_table("ai-ready info", ["item", "value"], rows)
