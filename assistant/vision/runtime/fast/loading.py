"""Loading a checkpoint straight into its fast form: weights stream from the safetensors file one tensor at a
time, so no float32 copy of the model is ever held."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from assistant.vision.errors import ModelNotFoundError
from assistant.vision.runtime.fast.convert import (
    _gelu_fed,
    _install,
    _parents,
    apply_fast,
    fold_batchnorm,
    linear_formats,
    stored_dtypes,
    swap_attention,
    widen_embeddings,
)
from assistant.vision.runtime.fast.linear import make_linear
from assistant.vision.runtime.fast.plan import FastPlan, default_plan, usable

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER = 100 * 1024 * 1024


def safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / n for n in names]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"{path} has no .safetensors weights; the engine loads safetensors only")
    return files


def read_safetensors(file: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) one at a time with plain reads.

    Memory-mapping the file (what ``safe_open`` does) would count every page read in the process's
    resident memory until it is closed; reading into fresh buffers keeps only the tensors kept.
    """
    size = file.stat().st_size
    with file.open("rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if not 0 < header_len <= min(_MAX_HEADER, size - 8):
            raise ModelNotFoundError(f"{file} is not a safetensors file")
        header = json.loads(f.read(header_len))
        header.pop("__metadata__", None)
        base = 8 + header_len
        for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
            start, end = info["data_offsets"]
            if dtype is None or not 0 <= start <= end <= size - base:
                raise ModelNotFoundError(f"{file}: tensor {name} has an unsupported dtype or bad offsets")
            buffer = bytearray(end - start)
            f.seek(base + start)
            f.readinto(buffer)
            tensor = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
            yield name, tensor.reshape(info["shape"])


def _set_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    if attr in module._parameters:
        param = value if isinstance(value, nn.Parameter) else nn.Parameter(value, requires_grad=False)
        module._parameters[attr] = param
    else:
        module._buffers[attr] = value


def _find_parameter(model: nn.Module, name: str) -> torch.Tensor | None:
    try:
        return model.get_parameter(name)
    except AttributeError:  # inside a Linear that was replaced
        return None


class _Builder:
    """Collects each replaced Linear's weight and bias, and builds it as soon as both are there."""

    def __init__(self, model: nn.Module, formats: dict[str, tuple[str, torch.dtype | None, bool]]) -> None:
        self.model, self.formats = model, formats
        self.gelu_fed = _gelu_fed(model)
        self.parents = _parents(model)
        self.modules = dict(model.named_modules())
        self.pending: dict[str, dict[str, torch.Tensor]] = {}

    def wants(self, name: str) -> bool:
        module_name, _, attr = name.rpartition(".")
        return module_name in self.formats and attr in ("weight", "bias")

    def add(self, name: str, value: torch.Tensor) -> None:
        module_name, _, attr = name.rpartition(".")
        old = self.modules[module_name]
        parts = self.pending.setdefault(module_name, {})
        parts[attr] = value
        if "weight" in parts and ("bias" in parts or old.bias is None):
            fmt, out, gelu = self.formats[module_name]
            new = make_linear(parts["weight"], parts.get("bias"), fmt, out, gelu)
            _install(self.parents, old, new, self.gelu_fed.get(module_name) if gelu else None)
            del self.pending[module_name]


def _restore_buffer(name: str, buffer: torch.Tensor) -> torch.Tensor:
    if name.endswith("position_ids"):
        return torch.arange(buffer.shape[-1]).expand(buffer.shape).clone()
    raise ModelNotFoundError(f"the fast loader does not know how to rebuild buffer {name}")


def load_fast(cls: type[PreTrainedModel], path: Path, plan: FastPlan | None = None,
              device: str | torch.device = "cpu") -> tuple[PreTrainedModel, FastPlan]:
    """Load ``cls`` from ``path`` straight into its fast form; return the model and the plan it used."""
    plan = usable(plan or default_plan(device))
    if torch.device(device).type != "cpu":
        model = cls.from_pretrained(path, dtype=torch.float32, use_safetensors=True).to(device)
        return apply_fast(model, plan), plan
    config = cls.config_class.from_pretrained(path)
    with torch.device("meta"):
        model = cls(config)
    model.eval()
    swap_attention(model, plan)
    builder = _Builder(model, linear_formats(model, plan))
    stored = stored_dtypes(model, plan)
    widen_embeddings(model, stored)
    loaded: set[str] = set()
    names = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    names |= {n for n, _ in model.named_buffers(remove_duplicate=False)}
    with _returning_freed_buffers():
        for file in safetensors_files(path):
            for name, tensor in read_safetensors(file):
                if name not in names:
                    continue
                value = tensor.to(stored.get(name, torch.float32)) if tensor.is_floating_point() else tensor
                del tensor
                if builder.wants(name):
                    builder.add(name, value)
                else:
                    _set_tensor(model, name, value)
                loaded.add(name)
        # Tied weights (the LM head is the word embedding) are stored once; point the copies at it.
        # Targets inside modules the built-in model shares are already there (or already replaced).
        for target, source in getattr(model, "all_tied_weights_keys", {}).items():
            value = _find_parameter(model, source)
            if target in loaded or value is None or value.is_meta:
                continue
            if builder.wants(target):
                builder.add(target, value.data)
            else:
                current = _find_parameter(model, target)
                if current is None or not current.is_meta:
                    continue
                _set_tensor(model, target, value)
            loaded.add(target)
    for name, buffer in model.named_buffers():
        if buffer.is_meta:  # non-persistent buffers are not in the file
            _set_tensor(model, name, _restore_buffer(name, buffer))
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if builder.pending or missing:
        raise ModelNotFoundError(
            f"{path} lacks weights the model needs: {sorted(set(missing) | set(builder.pending))[:5]}"
        )
    fold_batchnorm(model, plan)
    return model.requires_grad_(False), plan


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_LOAD_MMAP_THRESHOLD = 1 << 20  # while loading: every read buffer over 1 MB is its own mapping
_RUN_MMAP_THRESHOLD = 32 << 20  # afterwards: the ceiling glibc's own dynamic threshold climbs to
MMAP_THRESHOLD_ENV = "BLIP_ASSISTANT_MMAP_THRESHOLD"


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def _returning_freed_buffers() -> Iterator[None]:
    """Make the load's read buffers go back to the system as soon as each tensor is converted.

    glibc serves large allocations from its heap once its dynamic mmap threshold has grown, and keeps what
    is freed there: the buffers of a whole load then pile up as free-but-resident heap (about 120 MB at
    BLIP-base). A low threshold during the load maps each buffer on its own and unmaps it when freed.
    Afterwards the threshold is pinned where glibc's dynamic mode ends up (32 MB, trimming above 64 MB),
    since mapping every activation afresh costs 15-35% of inference speed.
    ``BLIP_ASSISTANT_MMAP_THRESHOLD=<bytes>``
    pins a lower one instead: a few percent less peak memory, for that speed.
    """
    libc = _libc()
    with contextlib.suppress(AttributeError):
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _LOAD_MMAP_THRESHOLD)
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError, ValueError):
            if libc is not None:
                threshold = int(os.environ.get(MMAP_THRESHOLD_ENV, "0")) or _RUN_MMAP_THRESHOLD
                libc.mallopt(_M_MMAP_THRESHOLD, threshold)
                libc.mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
                libc.malloc_trim(0)
