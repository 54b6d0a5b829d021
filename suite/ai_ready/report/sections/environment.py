"""Environment: where the figures were measured (host, device, CPU, launcher,
versions), since no figure means anything without the machine it came from.
"""

from __future__ import annotations

import json
from typing import Any

from ai_ready.report.sections.common import ReportData, _as_dict, _finite, _plain, format_number


#: CPU flags that matter for the CPU fallback paths; the full list is long and rarely useful in a report.
NOTABLE_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                     "sve", "sve2", "asimd")


def build_environment(data: ReportData) -> dict[str, Any] | None:
    """One block per distinct environment, naming the documents that share it; omitted when none is recorded."""
    blocks: dict[str, dict[str, Any]] = {}
    for doc, label in zip(data.documents, data.labels):
        env = _as_dict(_as_dict(doc.meta).get("environment"))
        if not env:
            continue
        key = json.dumps(env, sort_keys=True, default=str)
        if key not in blocks:
            blocks[key] = {"labels": [], "groups": _environment_groups(env)}
        blocks[key]["labels"].append(label)
    if not blocks:
        return None
    return {"blocks": list(blocks.values()), "distinct": len(blocks) > 1}


def _environment_groups(env: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [
        ("Host and accelerators", [("Host", env.get("host"))] + _device_rows(_as_dict(env.get("device")))),
        ("CPU and memory", _cpu_rows(_as_dict(env.get("cpu")))),
        ("Launcher and ranks", _launcher_rows(_as_dict(env.get("launcher")))),
        ("Software", [(str(k), v) for k, v in _as_dict(env.get("versions")).items()]),
        ("Other", [(str(k), v) for k, v in env.items() if k not in _KNOWN_ENV_KEYS]),
    ]
    result = []
    for title, rows in groups:
        shown = [(label, _plain(value)) for label, value in rows if value not in (None, "", [], {})]
        if shown:
            result.append({"title": title, "rows": shown})
    return result


_KNOWN_ENV_KEYS = {"host", "device", "cpu", "launcher", "versions"}


def _extra(group: str, values: dict[str, Any], known: set[str]) -> list[tuple[str, Any]]:
    """Keys a newer detector added that this report does not know yet: shown, not dropped."""
    return [(f"{group}.{k}", v) for k, v in values.items() if k not in known]


def _device_rows(d: dict[str, Any]) -> list[tuple[str, Any]]:
    name, count, kind = d.get("name"), d.get("count"), d.get("kind")
    described = name or (str(kind).upper() if kind else None)
    if described and count:
        described = f"{count} × {described}"
    if described and kind and name:
        described = f"{described} ({kind})"
    memory = d.get("memory_gb")
    return [
        ("Accelerator", described),
        ("Accelerator memory", f"{format_number(memory)} GB each" if _finite(memory) else memory),
        ("Streaming multiprocessors", d.get("sm_count")),
        ("Compute capability", d.get("compute_capability")),
        ("Driver", d.get("driver")),
        ("CUDA", d.get("cuda")),
        ("NCCL", d.get("nccl")),
    ] + _extra("device", d, {"name", "count", "kind", "memory_gb", "sm_count", "compute_capability",
                            "driver", "cuda", "nccl"})


def _cpu_rows(c: dict[str, Any]) -> list[tuple[str, Any]]:
    physical, logical = c.get("cores_physical"), c.get("cores_logical")
    cores = ", ".join(f"{n} {kind}" for n, kind in ((physical, "physical"), (logical, "logical")) if n)
    freq, memory = c.get("freq_mhz"), c.get("memory_gb")
    return [
        ("CPU", c.get("model")),
        ("Cores", cores),
        ("Clock", f"{format_number(freq, 4)} MHz" if _finite(freq) else freq),
        ("Features", _cpu_features(c.get("flags"))),
        ("Host memory", f"{format_number(memory)} GB" if _finite(memory) else memory),
    ] + _extra("cpu", c, {"model", "cores_physical", "cores_logical", "freq_mhz", "flags", "memory_gb"})


def _cpu_features(flags: Any) -> str | None:
    if not isinstance(flags, list) or not flags:
        return None
    present = [f for f in NOTABLE_CPU_FLAGS if f in flags]
    return f"{', '.join(present) or 'none of the notable ones'} ({len(flags)} flags reported)"


def _launcher_rows(l: dict[str, Any]) -> list[tuple[str, Any]]:
    rank, world = l.get("rank"), l.get("world_size")
    ranks = f"rank {rank} of {world}" if rank is not None and world is not None else (
        f"{world} ranks" if world is not None else None)
    return [
        ("Launcher", l.get("name")),
        ("Ranks", ranks),
        ("Local rank", l.get("local_rank")),
        ("Nodes", l.get("nodes")),
        ("Job", l.get("job_id")),
    ] + _extra("launcher", l, {"name", "rank", "world_size", "local_rank", "nodes", "job_id"})
