"""Describe the machine and software: the environment stored with every result.

Works with no GPU, no MPI and no CuPy: every probe that can fail records
``None`` rather than raising, because a missing optional piece is a fact
about the environment, not an error.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from ai_ready import __version__
from ai_ready.env.launcher import detect_launcher
from ai_ready.stop import reraise_if_stopping

BYTES_PER_GB = 1e9
CPUINFO = Path("/proc/cpuinfo")
#: Distributions whose versions are recorded with every run.
VERSIONED_PACKAGES = ("torch", "numpy", "pandas", "mpi4py", "nvidia-ml-py")


def detect(include_mpi_library: bool = True) -> dict[str, Any]:
    """The full environment record (see docs/records.md, "environment")."""
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": detect_device(),
        "cpu": detect_cpu(),
        "launcher": detect_launcher(),
        "versions": detect_versions(include_mpi_library),
    }


#: Where a GPU driver shows itself (NVIDIA, ROCm's kernel driver, WSL's GPU bridge). Without any of them the
#: device is the CPU, and torch (1.4 s to import) need not be loaded to learn it.
GPU_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def gpu_driver_present() -> bool:
    return any(os.path.exists(path) for path in GPU_DRIVER_PATHS)


def detect_hardware() -> dict[str, Any]:
    """What the machine is (host, device, CPU, launcher), without the software versions: enough for the
    catalog's `local` system, and no torch import on a machine without a GPU driver."""
    return {"host": socket.gethostname(), "device": detect_device(), "cpu": detect_cpu(),
            "launcher": detect_launcher()}


def detect_device() -> dict[str, Any]:
    """The first CUDA device if there is one, else the CPU."""
    if "torch" not in sys.modules and not gpu_driver_present():
        return {"kind": "cpu", "name": _cpu_model(), "count": 1, "torch_device": "cpu"}
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return {"kind": "cpu", "name": platform.processor() or "cpu", "count": 1}
    if not torch.cuda.is_available():
        return {"kind": "cpu", "name": _cpu_model(), "count": 1, "torch_device": "cpu"}
    props = torch.cuda.get_device_properties(0)
    nccl = None
    try:
        version = torch.cuda.nccl.version()
        nccl = ".".join(str(v) for v in version) if isinstance(version, tuple) else str(version)
    except Exception as exc:  # NCCL absent from this torch build
        reraise_if_stopping(exc)
    return {
        "kind": "cuda",
        "name": props.name,
        "count": torch.cuda.device_count(),
        "memory_gb": props.total_memory / BYTES_PER_GB,
        "sm_count": props.multi_processor_count,
        "compute_capability": f"{props.major}.{props.minor}",
        "driver": _nvml_driver_version(),
        "cuda": torch.version.cuda,
        "nccl": nccl,
        "torch_device": "cuda",
    }


def _nvml_driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # nvidia-ml-py missing or no driver library
        reraise_if_stopping(exc)
        return None


def _cpuinfo_fields() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        for line in CPUINFO.read_text().splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                if fields:
                    break  # first processor block is enough
                continue
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_model() -> str:
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def detect_cpu() -> dict[str, Any]:
    """CPU model, cores, clock, ISA flags and memory."""
    import psutil

    fields = _cpuinfo_fields()
    freq = None
    try:
        cpufreq = psutil.cpu_freq()
        if cpufreq is not None:
            freq = cpufreq.max or cpufreq.current or None
    except (OSError, NotImplementedError):
        pass
    if not freq and fields.get("cpu MHz"):
        freq = float(fields["cpu MHz"])
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_available": len(psutil.Process().cpu_affinity()) if hasattr(psutil.Process, "cpu_affinity") else None,
        "freq_mhz": freq,
        "flags": sorted(fields.get("flags", "").split()),
        "memory_gb": psutil.virtual_memory().total / BYTES_PER_GB,
    }


def detect_versions(include_mpi_library: bool = True) -> dict[str, Any]:
    """Versions of Python, ai-ready and the packages that shape performance."""
    versions: dict[str, Any] = {"python": sys.version.split()[0], "ai_ready": __version__}
    for dist in VERSIONED_PACKAGES:
        versions[dist] = _dist_version(dist)
    versions["cupy"] = _cupy_version()
    try:
        import torch

        versions["torch_cuda"] = torch.version.cuda
        versions["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    versions["mpi_library"] = _mpi_library_version() if include_mpi_library and versions["mpi4py"] else None
    return versions


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cupy_version() -> str | None:
    """CuPy ships as cupy-cudaNNx; read its metadata without importing it (importing probes the GPU)."""
    for dist in importlib.metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if name == "cupy" or name.startswith("cupy-"):
            return f"{dist.version} ({name})"
    return None


def _mpi_library_version() -> str | None:
    """MPI_Get_library_version, which MPI allows before MPI_Init: `info` never starts MPI."""
    try:
        if "mpi4py.MPI" not in sys.modules:
            import mpi4py

            mpi4py.rc.initialize = False
        from mpi4py import MPI

        return MPI.Get_library_version().strip().splitlines()[0]
    except Exception as exc:  # no MPI library behind mpi4py
        reraise_if_stopping(exc)
        return None
