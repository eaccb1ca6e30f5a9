"""What the machine can do: its measured matmul peak, and what it is."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any


def matmul_gflops(dtype_name: str = "float32", size: int = 1536, seconds: float = 1.5) -> float:
    """Best GFLOP/s of a square matmul in ``dtype_name`` on this process's threads (a practical peak)."""
    import torch

    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    flops = 2 * size**3
    best = float("inf")
    a @ b  # warm-up: first calls pay for kernel selection
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return flops / best / 1e9


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(threads: int) -> dict[str, Any]:
    import torch
    import transformers

    cpu = getattr(torch, "cpu", None)
    flags = {
        name: bool(getattr(cpu, f"_is_{name}_supported", lambda: False)())
        for name in ("amx_tile", "avx512_bf16", "vnni")
    }
    return {
        "cpu": cpu_name(),
        "threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        **flags,
    }
