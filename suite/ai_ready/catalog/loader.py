"""Read and validate catalog YAML: shipped data first, then user folders on top.

Every check fails with one line naming the file and the key path, because a
catalog typo would otherwise surface much later as a wrong extrapolation.
The schema lives in the tables below: adding a key means adding one line here
and documenting it in docs/catalog.md.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NoReturn

import yaml

from ai_ready.catalog.local import build_local
from ai_ready.catalog.model import DTYPES, LOCAL_SYSTEM, Accelerator, Catalog, CatalogError, Figure, System
from ai_ready.errors import yaml_problem

#: Folder of the catalog that ships inside the package.
SHIPPED_DIR = Path(__file__).resolve().parent / "data"
#: Environment variable with extra catalog folders, separated like PATH.
ENV_PATH = "AI_READY_CATALOG_PATH"

ACCELERATOR_SCHEMA = "ai-ready/catalog-accelerator"
SYSTEM_SCHEMA = "ai-ready/catalog-system"
SOURCES_SCHEMA = "ai-ready/catalog-sources"
#: File-format versions this code reads. Version 1 is the first.
SUPPORTED_VERSIONS = (1,)

ACCELERATORS_FOLDER = "accelerators"
SYSTEMS_FOLDER = "systems"
SOURCES_FILE = "sources.yaml"
YAML_SUFFIXES = (".yaml", ".yml")

#: Names are lowercase words joined by dashes, equal to the file stem.
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
#: Accelerator names the local system builds itself; files may not take them.
RESERVED_ACCELERATORS = ("local-cpu", "unknown-gpu")

FIGURE_KEYS = ("value", "unit", "source", "assumption", "note")
SOURCE_ENTRY_KEYS = ("title", "url", "reference", "note")
HEADER_KEYS = ("schema", "version", "name")

#: libyaml's loader when pyyaml was built with it (several times faster), else pure Python.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: How many distinct folder combinations keep a loaded catalog in memory.
CACHE_SIZE = 16

# Value kinds a figure may be required to have.
COUNT = "positive integer"
POSITIVE = "positive number"
NON_NEGATIVE = "non-negative number"
PERCENT = "percentage in (0, 100]"
TEXT = "text"
PERCENT_MAX = 100


@dataclass(frozen=True)
class FigureSpec:
    """What one figure key accepts: its kind of value and its unit (None: unitless)."""

    kind: str
    unit: str | None = None


TFLOPS = FigureSpec(POSITIVE, "TFLOP/s")

ACCELERATOR_SECTIONS: dict[str, dict[str, FigureSpec]] = {
    "peak_tflops": {dtype: TFLOPS for dtype in DTYPES},
    "memory": {
        "capacity_gb": FigureSpec(POSITIVE, "GB"),
        "bandwidth_tbs": FigureSpec(POSITIVE, "TB/s"),
    },
    "scale_up": {
        "interconnect": FigureSpec(TEXT),
        "link_gbs_per_direction": FigureSpec(POSITIVE, "GB/s"),
        "domain_size": FigureSpec(COUNT),
    },
}
#: Single figures at the top of an accelerator file; all but power_w land in `.figures`.
ACCELERATOR_FIGURES: dict[str, FigureSpec] = {
    "power_w": FigureSpec(POSITIVE, "W"),
    "matmul_efficiency_bf16": FigureSpec(PERCENT, "%"),
    "attention_efficiency_bf16": FigureSpec(PERCENT, "%"),
}
ACCELERATOR_TEXT = ("vendor", "model", "description")
ACCELERATOR_REQUIRED = ("vendor", "model", "match")

SYSTEM_SECTIONS: dict[str, dict[str, FigureSpec]] = {
    "scale_out": {
        "nic_gbps_per_accelerator": FigureSpec(POSITIVE, "Gb/s"),
        "fabric": FigureSpec(TEXT),
        "topology": FigureSpec(TEXT),
        "tiers": FigureSpec(COUNT),
        "oversubscription": FigureSpec(POSITIVE),
        "latency_us": FigureSpec(POSITIVE, "us"),
    },
    "storage": {
        "parallel_fs_read_gbs": FigureSpec(POSITIVE, "GB/s"),
        "parallel_fs_write_gbs": FigureSpec(POSITIVE, "GB/s"),
        "parallel_fs_capacity_pb": FigureSpec(POSITIVE, "PB"),
        "node_local_nvme_tb": FigureSpec(NON_NEGATIVE, "TB"),
    },
    "power": {
        "pue": FigureSpec(POSITIVE),
        "system_power_mw": FigureSpec(POSITIVE, "MW"),
    },
    "reliability": {
        "failures_per_1000_node_days": FigureSpec(NON_NEGATIVE),
    },
}
SYSTEM_FIGURES: dict[str, FigureSpec] = {
    "nodes": FigureSpec(COUNT),
    "accelerators_per_node": FigureSpec(COUNT),
}
SYSTEM_TEXT = ("accelerator", "description")
SYSTEM_REQUIRED = ("accelerator", "nodes", "accelerators_per_node")


# ---------------------------------------------------------------- public entry


def load_catalog(extra_dirs: Iterable[str | os.PathLike[str]] | None = None) -> Catalog:
    """The shipped catalog with folders from $AI_READY_CATALOG_PATH and `extra_dirs` on top.

    Precedence, highest first: `extra_dirs` in order, then the environment
    folders in order (like PATH), then the shipped data. Results are cached
    per folder list; call :func:`clear_cache` after editing files in-process.
    """
    return _load_cached(catalog_dirs(extra_dirs))


def clear_cache() -> None:
    """Forget loaded catalogs, so the next load re-reads the files."""
    _load_cached.cache_clear()


def catalog_dirs(extra_dirs: Iterable[str | os.PathLike[str]] | None = None) -> tuple[Path, ...]:
    """Folders to read, lowest precedence first, so later ones override earlier ones."""
    env_dirs = [Path(part) for part in os.environ.get(ENV_PATH, "").split(os.pathsep) if part]
    user_dirs = [Path(d) for d in extra_dirs or ()]
    for folder in env_dirs + user_dirs:
        _check_user_dir(folder)
    return (SHIPPED_DIR, *reversed(env_dirs), *reversed(user_dirs))


def load_dirs(dirs: Iterable[Path]) -> Catalog:
    """Read and validate the folders (lowest precedence first), without caching."""
    dirs = tuple(dirs)
    sources: dict[str, dict[str, Any]] = {}
    for folder in dirs:
        if (folder / SOURCES_FILE).is_file():
            sources.update(_read_sources(folder / SOURCES_FILE))
    accelerators = {
        name: _parse_accelerator(_Context(path, sources), doc)
        for name, (path, doc) in _collect(dirs, ACCELERATORS_FOLDER, ACCELERATOR_SCHEMA).items()
    }
    systems = {
        name: _parse_system(_Context(path, sources), doc, accelerators)
        for name, (path, doc) in _collect(dirs, SYSTEMS_FOLDER, SYSTEM_SCHEMA).items()
    }
    return Catalog(accelerators=accelerators, systems=systems, sources=sources, build_local=build_local)


def load_system_file(path: str | os.PathLike[str], catalog: Catalog) -> System:
    """One system YAML file (same schema as the catalog's systems/ files) whose accelerator and sources
    come from `catalog`: what `--system FILE` reads, so a user can try a machine without a folder."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"system file {path} does not exist or is not a file")
    doc = _read_yaml(path)
    ctx = _Context(path, catalog.sources)
    _check_header(ctx, doc, SYSTEM_SCHEMA, expect_name=False)
    return _parse_system(ctx, doc, dict(catalog.accelerators))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_cached(dirs: tuple[Path, ...]) -> Catalog:
    return load_dirs(dirs)


def _check_user_dir(folder: Path) -> None:
    """A mistyped catalog folder must not be silently ignored."""
    if not folder.is_dir():
        raise CatalogError(f"catalog folder {folder} does not exist (from {ENV_PATH} or extra_dirs)")
    parts = (folder / ACCELERATORS_FOLDER, folder / SYSTEMS_FOLDER, folder / SOURCES_FILE)
    if not any(part.exists() for part in parts):
        raise CatalogError(
            f"catalog folder {folder} has no {ACCELERATORS_FOLDER}/, {SYSTEMS_FOLDER}/ or {SOURCES_FILE}"
        )


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class _Context:
    """The file being parsed and the source ids it may cite; raises errors that name it."""

    path: Path
    sources: dict[str, dict[str, Any]]

    def fail(self, message: str) -> NoReturn:
        raise CatalogError(f"catalog file {self.path}: {message}")


def _read_yaml(path: Path) -> dict[str, Any]:
    """Parse one file into a mapping; YAML errors become one readable line."""
    ctx = _Context(path, {})
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        ctx.fail(f"not valid YAML ({yaml_problem(exc)})")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(f"cannot be read ({exc})")
    if not isinstance(doc, dict):
        ctx.fail(f"top level must be a mapping (got {type(doc).__name__})")
    return doc



def _check_header(ctx: _Context, doc: dict[str, Any], schema: str, expect_name: bool = True) -> None:
    """Schema, version and (for entries) name equal to the file stem."""
    if doc.get("schema") != schema:
        found = f"is '{doc['schema']}'" if "schema" in doc else "is missing"
        ctx.fail(f"key 'schema' {found}; expected '{schema}'")
    version = doc.get("version")
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        found = f"is {version!r}" if "version" in doc else "is missing"
        ctx.fail(f"key 'version' {found}; supported: {', '.join(map(str, SUPPORTED_VERSIONS))}")
    if not expect_name:
        return
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        ctx.fail(f"key 'name' is {name!r}; expected lowercase words joined by dashes")
    if name != ctx.path.stem:
        ctx.fail(f"key 'name' is '{name}' but the file is {ctx.path.name}; they must match")


def _check_keys(ctx: _Context, mapping: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """Unknown keys are errors: a typo must not silently drop a figure."""
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            what = "dtype" if prefix == "peak_tflops." else "key"
            ctx.fail(f"unknown {what} '{prefix}{key}'; known: {', '.join(allowed)}")


def _collect(dirs: tuple[Path, ...], folder: str, schema: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Header-checked documents by name; a later folder's file replaces an earlier one."""
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for base in dirs:
        sub = base / folder
        if not sub.is_dir():
            continue
        for path in sorted(p for p in sub.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file()):
            doc = _read_yaml(path)
            _check_header(_Context(path, {}), doc, schema)
            found[doc["name"]] = (path, doc)
    return found


def _read_sources(path: Path) -> dict[str, dict[str, Any]]:
    """Source ids → {title, url or reference}; every figure's `source` must be one of them."""
    ctx = _Context(path, {})
    doc = _read_yaml(path)
    _check_header(ctx, doc, SOURCES_SCHEMA, expect_name=False)
    _check_keys(ctx, doc, ("schema", "version", "sources"))
    entries = doc.get("sources")
    if not isinstance(entries, dict):
        ctx.fail("key 'sources' must be a mapping of id -> {title, url or reference}")
    for source_id, entry in entries.items():
        _check_source_entry(ctx, str(source_id), entry)
    return {str(k): dict(v) for k, v in entries.items()}


def _check_source_entry(ctx: _Context, source_id: str, entry: Any) -> None:
    key = f"sources.{source_id}"
    if not isinstance(entry, dict):
        ctx.fail(f"key '{key}' must be a mapping with title and url or reference")
    _check_keys(ctx, entry, SOURCE_ENTRY_KEYS, prefix=f"{key}.")
    if not isinstance(entry.get("title"), str) or not entry["title"].strip():
        ctx.fail(f"key '{key}.title' is missing or empty")
    if "url" not in entry and "reference" not in entry:
        ctx.fail(f"key '{key}' needs a url or a reference")


# ---------------------------------------------------------------- figures


def _parse_figure(ctx: _Context, key: str, raw: Any, spec: FigureSpec) -> Figure:
    """One figure: a mapping with value, a unit matching the schema, and provenance."""
    if not isinstance(raw, dict) or "value" not in raw:
        ctx.fail(f"figure '{key}' must be a mapping with 'value' (got {raw!r})")
    _check_keys(ctx, raw, FIGURE_KEYS, prefix=f"{key}.")
    _check_value(ctx, key, raw["value"], spec.kind)
    unit = _parse_unit(ctx, key, raw.get("unit"), spec)
    source = _parse_source(ctx, key, raw.get("source"))
    assumption = _optional_text(ctx, f"{key}.assumption", raw.get("assumption"))
    if not source and assumption is None:
        ctx.fail(f"figure '{key}' has neither source nor assumption")
    note = _optional_text(ctx, f"{key}.note", raw.get("note"))
    return Figure(value=raw["value"], unit=unit, source=source, assumption=assumption, note=note)


def _check_value(ctx: _Context, key: str, value: Any, kind: str) -> None:
    if kind == TEXT:
        if not isinstance(value, str) or not value.strip():
            ctx.fail(f"figure '{key}' must be {kind} (got {value!r})")
        return
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    valid = is_number and {
        COUNT: lambda v: isinstance(v, int) and v > 0,
        POSITIVE: lambda v: v > 0,
        NON_NEGATIVE: lambda v: v >= 0,
        PERCENT: lambda v: 0 < v <= PERCENT_MAX,
    }[kind](value)
    if not valid:
        ctx.fail(f"figure '{key}' must be a {kind} (got {value!r})")


def _parse_unit(ctx: _Context, key: str, unit: Any, spec: FigureSpec) -> str | None:
    """The schema fixes each key's unit; a file may restate it but not change it."""
    if unit is None:
        return spec.unit
    if unit != spec.unit:
        expected = f"'{spec.unit}'" if spec.unit else "no unit"
        ctx.fail(f"figure '{key}' has unit {unit!r}; expected {expected}")
    return unit


def _parse_source(ctx: _Context, key: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    ids = [raw] if isinstance(raw, str) else raw
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        ctx.fail(f"figure '{key}.source' must be a source id or a list of ids (got {raw!r})")
    for source_id in ids:
        if source_id not in ctx.sources:
            ctx.fail(f"figure '{key}' cites unknown source '{source_id}'; add it to {SOURCES_FILE}")
    return tuple(ids)


def _optional_text(ctx: _Context, key: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        ctx.fail(f"key '{key}' must be non-empty text (got {raw!r})")
    return raw


def _parse_section(ctx: _Context, doc: dict[str, Any], section: str, specs: dict[str, FigureSpec]) -> dict[str, Figure]:
    raw = doc.get(section)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.fail(f"key '{section}' must be a mapping of figures")
    _check_keys(ctx, raw, specs, prefix=f"{section}.")
    return {key: _parse_figure(ctx, f"{section}.{key}", value, specs[key]) for key, value in raw.items()}


def _parse_figures(ctx: _Context, doc: dict[str, Any], specs: dict[str, FigureSpec]) -> dict[str, Figure]:
    return {key: _parse_figure(ctx, key, doc[key], spec) for key, spec in specs.items() if key in doc}


def _require(ctx: _Context, doc: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if key not in doc:
            ctx.fail(f"required key '{key}' is missing")


def _text(ctx: _Context, doc: dict[str, Any], key: str) -> str:
    return _optional_text(ctx, key, doc.get(key)) or ""


# ---------------------------------------------------------------- entries


def _parse_accelerator(ctx: _Context, doc: dict[str, Any]) -> Accelerator:
    """An accelerator file: identity, match strings, then figures by section."""
    allowed = (*HEADER_KEYS, *ACCELERATOR_TEXT, "match", *ACCELERATOR_SECTIONS, *ACCELERATOR_FIGURES)
    _check_keys(ctx, doc, allowed)
    _require(ctx, doc, ACCELERATOR_REQUIRED)
    if doc["name"] in RESERVED_ACCELERATORS:
        ctx.fail(f"key 'name' is '{doc['name']}', which is reserved for the local system")
    single = _parse_figures(ctx, doc, ACCELERATOR_FIGURES)
    power_w = single.pop("power_w", None)
    return Accelerator(
        name=doc["name"],
        vendor=_text(ctx, doc, "vendor"),
        model=_text(ctx, doc, "model"),
        description=_text(ctx, doc, "description"),
        match=_parse_match(ctx, doc["match"]),
        peak_tflops=_parse_section(ctx, doc, "peak_tflops", ACCELERATOR_SECTIONS["peak_tflops"]),
        memory=_parse_section(ctx, doc, "memory", ACCELERATOR_SECTIONS["memory"]),
        scale_up=_parse_section(ctx, doc, "scale_up", ACCELERATOR_SECTIONS["scale_up"]),
        power_w=power_w,
        figures=single,
    )


def _parse_match(ctx: _Context, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        ctx.fail(f"key 'match' must be a list of device-name substrings (got {raw!r})")
    return tuple(raw)


def _parse_system(ctx: _Context, doc: dict[str, Any], accelerators: dict[str, Accelerator]) -> System:
    """A system file: which accelerator, how many, and the figures around them."""
    _check_keys(ctx, doc, (*HEADER_KEYS, *SYSTEM_TEXT, *SYSTEM_FIGURES, *SYSTEM_SECTIONS))
    _require(ctx, doc, SYSTEM_REQUIRED)
    if doc["name"] == LOCAL_SYSTEM:
        ctx.fail(f"key 'name' is '{LOCAL_SYSTEM}', which is built from detection and cannot be a file")
    accelerator_name = doc["accelerator"]
    if not isinstance(accelerator_name, str) or accelerator_name not in accelerators:
        ctx.fail(
            f"key 'accelerator' names unknown accelerator {accelerator_name!r}; "
            f"known: {', '.join(sorted(accelerators))}"
        )
    counts = _parse_figures(ctx, doc, SYSTEM_FIGURES)
    sections = {name: _parse_section(ctx, doc, name, specs) for name, specs in SYSTEM_SECTIONS.items()}
    return System(
        name=doc["name"],
        accelerator=accelerators[accelerator_name],
        nodes=counts["nodes"],
        accelerators_per_node=counts["accelerators_per_node"],
        description=_text(ctx, doc, "description"),
        **sections,
    )
