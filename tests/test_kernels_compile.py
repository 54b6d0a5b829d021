"""Every CUDA source in kernels/ compiles with nvcc for Ampere and Hopper, with warnings as errors.

CI has nvcc but no GPU: this is how the kernels prove at least that they build.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ai_ready.resources import resource_dir

SOURCES = sorted(resource_dir("kernels").glob("*.cu"))
ARCHES = ("sm_80", "sm_90")


def test_there_are_kernels_to_compile() -> None:
    assert "memory.cu" in [p.name for p in SOURCES]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_compiles_without_warnings(source: Path, arch: str, tmp_path: Path) -> None:
    proc = subprocess.run(["nvcc", "-std=c++17", f"-arch={arch}", "--cubin", "-Werror", "all-warnings",
                           "-Xptxas", "-Werror", "-o", str(tmp_path / "k.cubin"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert (tmp_path / "k.cubin").stat().st_size > 0


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
def test_every_kernel_the_benchmark_launches_is_defined() -> None:
    from ai_ready.bench.memory.kernels import KERNEL_NAMES

    text = SOURCES[0].read_text()
    for name in KERNEL_NAMES:
        assert f'extern "C" __global__ void {name}(' in text, name
