"""Locate data that ships inside the package (templates, kernels, catalog).

A wheel carries `templates/` and `kernels/` as `ai_ready/templates` and
`ai_ready/kernels`; a source checkout (editable install or PYTHONPATH=suite)
keeps them at the repository top level. Installed copies win.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE_DIR.parent.parent


def resource_dir(name: str) -> Path:
    """Return the folder holding the shipped resource `name` ("templates", "kernels")."""
    installed = _PACKAGE_DIR / name
    if installed.is_dir():
        return installed
    source = _SOURCE_ROOT / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"ai-ready resource folder '{name}' is missing from the installation ({installed})")


def is_installed_copy(name: str) -> bool:
    """True when `name` is found inside the package, as in a non-editable install."""
    return resource_dir(name) == _PACKAGE_DIR / name
