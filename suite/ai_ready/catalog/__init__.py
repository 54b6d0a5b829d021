"""The system catalog: accelerators and systems as data, every figure with its source.

Peaks, bandwidths, link speeds, power and failure rates live in YAML files
under ``data/`` (and in user folders from ``AI_READY_CATALOG_PATH``), never as
literals in code, so the model and the reports can always cite them.
``docs/catalog.md`` describes the format.
"""

from __future__ import annotations

from ai_ready.catalog.loader import ENV_PATH, clear_cache, load_catalog
from ai_ready.catalog.model import DTYPES, Accelerator, Catalog, CatalogError, Figure, System

__all__ = [
    "DTYPES",
    "ENV_PATH",
    "Accelerator",
    "Catalog",
    "CatalogError",
    "Figure",
    "System",
    "clear_cache",
    "load_catalog",
]
