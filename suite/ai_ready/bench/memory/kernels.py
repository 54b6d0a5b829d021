"""Load ai-ready's CUDA kernels (kernels/memory.cu, shipped in the package) with cupy.RawModule."""

from __future__ import annotations

from typing import Any

from ai_ready.resources import resource_dir
from ai_ready.stop import reraise_if_stopping

SOURCE = "memory.cu"
KERNEL_NAMES = (
    "stream_copy", "stream_copy_vec4", "stream_scale", "stream_scale_vec4", "stream_add", "stream_add_vec4",
    "stream_triad", "stream_triad_vec4", "reduce_sum", "reduce_sum_vec4", "bias_gelu", "empty_kernel",
)
THREADS_PER_BLOCK = 256
#: Blocks per multiprocessor of a grid-stride launch: enough resident warps to keep loads in flight.
BLOCKS_PER_SM = 8
#: float4 = 4 floats = 16 bytes per access.
VECTOR_WIDTH = 4
ALIGNMENT = 16
NVRTC_OPTIONS = ("-std=c++17",)


class KernelBuildError(RuntimeError):
    """The kernels did not compile or load; the message is the compiler's log."""


class Kernels:
    """The compiled module and launch geometry for the current device."""

    def __init__(self, cupy: Any) -> None:
        self.cp = cupy
        source = (resource_dir("kernels") / SOURCE).read_text()
        try:
            self.module = cupy.RawModule(code=source, options=NVRTC_OPTIONS)
            self.module.compile()
            self._functions = {name: self.module.get_function(name) for name in KERNEL_NAMES}
        except Exception as exc:  # CompileException carries NVRTC's log in its message
            reraise_if_stopping(exc)
            raise KernelBuildError(f"{SOURCE} failed to build: {exc}") from exc
        sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
        self.blocks = sms * BLOCKS_PER_SM

    def __getitem__(self, name: str) -> Any:
        return self._functions[name]

    def vectorizable(self, *arrays: Any) -> bool:
        """float4 kernels need 16-byte-aligned pointers and lengths divisible by 4."""
        return all(a.data.ptr % ALIGNMENT == 0 and a.size % VECTOR_WIDTH == 0 for a in arrays)

    def launch(self, name: str, args: tuple[Any, ...]) -> None:
        self._functions[name]((self.blocks,), (THREADS_PER_BLOCK,), args)
