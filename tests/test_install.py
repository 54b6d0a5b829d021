"""A non-editable install finds its templates, kernels and catalog inside the package."""

from __future__ import annotations

from pathlib import Path

import pytest

import ai_ready
from ai_ready.resources import resource_dir

PACKAGE = Path(ai_ready.__file__).resolve().parent
FROM_SOURCE = (PACKAGE.parent.name == "suite")


@pytest.mark.skipif(FROM_SOURCE, reason="running from the source tree (PYTHONPATH=suite or editable install); "
                                        "CI installs the package non-editable and runs this check")
def test_installed_package_carries_its_resources() -> None:
    templates, kernels = resource_dir("templates"), resource_dir("kernels")
    assert templates == PACKAGE / "templates" and kernels == PACKAGE / "kernels"
    assert (templates / "report.html.j2").is_file() and (templates / "style.css").is_file()
    assert (kernels / "README.md").is_file()
    assert any((PACKAGE / "catalog" / "data" / "systems").glob("*.yaml"))


def test_resources_resolve_either_way() -> None:
    assert (resource_dir("templates") / "report.html.j2").is_file()
    with pytest.raises(FileNotFoundError):
        resource_dir("no-such-folder")
