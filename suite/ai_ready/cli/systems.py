"""`ai-ready systems ...`: the catalog of accelerators and systems."""

from __future__ import annotations

import json

import click

from ai_ready.catalog import load_catalog
from ai_ready.cli.console import print_table


@click.group(no_args_is_help=True)
def systems() -> None:
    """The system catalog: peak figures with their sources."""


def _fmt(figure: object) -> str:
    value = getattr(figure, "value", None)
    if value is None:
        return ""
    unit = getattr(figure, "unit", None) or ""
    mark = "*" if getattr(figure, "is_assumption", False) else ""
    return f"{value:g}{mark}" if isinstance(value, (int, float)) and not unit else f"{value}{mark}"


@systems.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print names and summaries as JSON.")
def systems_list(as_json: bool) -> None:
    """List the systems and accelerators the catalog knows."""
    catalog = load_catalog()
    names = sorted(catalog.systems)
    if as_json:
        click.echo(json.dumps({"systems": names, "accelerators": sorted(catalog.accelerators)}, indent=2))
        return
    rows = []
    for name in names:
        system = catalog.system(name)
        rows.append((name, system.accelerator.name, _fmt(system.nodes), _fmt(system.accelerators_per_node),
                     system.total_accelerators))
    print_table("systems", ["name", "accelerator", "nodes", "per node", "total"], rows)
    acc_rows = []
    for name in sorted(catalog.accelerators):
        acc = catalog.accelerators[name]
        acc_rows.append((name, acc.model, _fmt(acc.peak("bf16")), _fmt(acc.peak("fp8")),
                         _fmt(acc.memory.get("capacity_gb")), _fmt(acc.memory.get("bandwidth_tbs"))))
    print_table("accelerators (dense peaks; * = assumption)",
                ["name", "model", "bf16 TFLOP/s", "fp8 TFLOP/s", "HBM GB", "HBM TB/s"], acc_rows)


@systems.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the system with every figure and source as JSON.")
def systems_show(name: str, as_json: bool) -> None:
    """Show one system (or accelerator) with every figure and its source."""
    catalog = load_catalog()
    if name not in catalog.systems and name in catalog.accelerators:
        entry = catalog.accelerator(name).to_dict()
    else:
        entry = catalog.system(name).to_dict()
    if as_json:
        click.echo(json.dumps(entry, indent=2))
        return
    rows = list(_flatten(entry, catalog))
    print_table(f"{name}", ["figure", "value", "source"], rows)
    cited = sorted({sid for data in _figures(entry) for sid in data.get("source") or []},
                   key=lambda sid: (not sid[1:].isdigit(), int(sid[1:]) if sid[1:].isdigit() else 0, sid))
    source_rows = [(sid, catalog.sources.get(sid, {}).get("title", ""),
                    catalog.sources.get(sid, {}).get("url") or catalog.sources.get(sid, {}).get("reference", ""))
                   for sid in cited]
    print_table("sources", ["id", "title", "where"], source_rows)


def _is_figure(data: object) -> bool:
    return isinstance(data, dict) and "value" in data and ("source" in data or "assumption" in data)


def _figures(data: object):
    """Every figure dict inside a catalog entry's dict."""
    if _is_figure(data):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _figures(value)


def _flatten(data: object, catalog: object, prefix: str = ""):
    """(key path, value, citation) rows for every figure in a catalog entry's dict."""
    if _is_figure(data):
        unit = f" {data['unit']}" if data.get("unit") else ""
        cite = ", ".join(data["source"]) if data.get("source") else ""
        if data.get("assumption"):
            cite = (cite + "; " if cite else "") + f"assumption: {data['assumption']}"
        yield prefix, f"{data['value']}{unit}", cite
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _flatten(value, catalog, f"{prefix}.{key}" if prefix else key)
    elif not isinstance(data, (list, tuple)) or prefix.endswith("match"):
        yield prefix, str(data), ""
