"""Which NVIDIA-only libraries a job has imported: what would stop it moving to an AMD system (MI300A/MI300X).

Read from ``sys.modules`` in the job's own process when its profile is saved, so nothing is guessed from
the source. Each entry says why it matters and what runs on ROCm instead; a centre can see at a glance
whether a job bound for an MI300A machine such as HLRS's Hunter needs work first. PyTorch itself, Triton
(torch.compile), DeepSpeed and NCCL through torch.distributed (RCCL on ROCm) port as they are.
"""

from __future__ import annotations

import sys
from typing import Mapping

#: Top-level module → why it binds the job to NVIDIA GPUs and the portable route.
NVIDIA_ONLY: dict[str, str] = {
    "apex": "NVIDIA Apex (fused optimizers/norms, CUDA extensions); use torch.optim fused=True and torch.nn layers",
    "transformer_engine": "Transformer Engine (NVIDIA); ROCm needs AMD's separate ROCm/TransformerEngine build",
    "cupy": "CuPy CUDA kernels; the ROCm build (cupy-rocm) must be installed and RawKernel sources ported to HIP",
    "pycuda": "PyCUDA is CUDA-only; port kernels to Triton or torch.utils.cpp_extension with HIP",
    "numba": "numba.cuda kernels are CUDA-only (numba's ROCm target is unmaintained); port to Triton",
    "tensorrt": "TensorRT is NVIDIA-only; use torch.compile or ONNX Runtime (MIGraphX) on ROCm",
    "nvidia_dali": "DALI data loading is NVIDIA-only; use torch DataLoader workers or rocAL",
    "cuda": "cuda-python bindings are CUDA-only; use torch.cuda APIs, which HIP builds of PyTorch map",
    "bitsandbytes": "bitsandbytes ROCm support is partial; check the kernels the job uses",
    "flash_attn": "flash-attn needs its ROCm (Composable Kernel) build; torch's scaled_dot_product_attention ports as is",
    "xformers": "xFormers ROCm support is partial; torch's scaled_dot_product_attention ports as is",
}


def nvidia_only_imports(modules: Mapping[str, object] | None = None) -> list[dict[str, str]]:
    """The NVIDIA-only libraries among the imported modules (``sys.modules`` by default), sorted by name."""
    loaded = sys.modules if modules is None else modules
    tops = {name.split(".", 1)[0] for name in loaded}
    found = []
    for name in sorted(tops & NVIDIA_ONLY.keys()):
        if name == "numba" and "numba.cuda" not in loaded:
            continue  # numba on the CPU ports fine; only its CUDA target does not
        found.append({"module": name, "why": NVIDIA_ONLY[name]})
    return found
