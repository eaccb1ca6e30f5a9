"""The Trainer's resume state written as safetensors + JSON instead of torch pickles.

transformers' Trainer saves the optimizer, scheduler, gradient scaler and RNG states with ``torch.save``
and reads them back with ``torch.load``. the assistant never unpickles a file, so :class:`BlipTrainer` routes
those saves and loads through the functions here: tensors go to ``.safetensors`` files, everything else
(parameter groups, scheduler counters, Python's RNG) to JSON.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from assistant.vision.errors import VisionError

OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
SCALER_JSON = "scaler.json"
RNG_TENSORS = "rng_state.safetensors"
RNG_JSON = "rng_state.json"
MARKER = "assistant_checkpoint.json"  # says a checkpoint folder was written by the engine's trainer
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_plain(data), indent=1))


# --- optimizer and scheduler -------------------------------------------------------------------


def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Tensors of the optimizer state to safetensors (keyed ``<param index>/<name>``), the rest to JSON."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}/{name}"] = value
    save_file(tensors, str(folder / OPTIMIZER_TENSORS))
    _write_json(folder / OPTIMIZER_JSON, {"param_groups": state["param_groups"], "scalars": scalars})


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    meta = json.loads((folder / OPTIMIZER_JSON).read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in load_file(str(folder / OPTIMIZER_TENSORS)).items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_scheduler(scheduler: Any, folder: Path) -> None:
    _write_json(folder / SCHEDULER_JSON, scheduler.state_dict())


def load_scheduler(scheduler: Any, folder: Path) -> None:
    scheduler.load_state_dict(json.loads((folder / SCHEDULER_JSON).read_text()))


def save_scaler(scaler: Any, folder: Path) -> None:
    _write_json(folder / SCALER_JSON, scaler.state_dict())


def load_scaler(scaler: Any, folder: Path) -> None:
    path = folder / SCALER_JSON
    if scaler is not None and path.is_file():
        scaler.load_state_dict(json.loads(path.read_text()))


# --- random number generators ------------------------------------------------------------------


def save_rng(folder: Path) -> None:
    """Python's, numpy's and torch's (CPU and current CUDA device) generator states."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        tensors["torch_cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(folder / RNG_TENSORS))
    _write_json(
        folder / RNG_JSON,
        {
            "python": [version, list(internal), gauss],
            "numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        },
    )


def load_rng(folder: Path) -> bool:
    """Restore what :func:`save_rng` wrote; False when the folder has no RNG state."""
    if not (folder / RNG_TENSORS).is_file():
        return False
    tensors = load_file(str(folder / RNG_TENSORS))
    meta = json.loads((folder / RNG_JSON).read_text())
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    n = meta["numpy"]
    keys = tensors["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["torch_cuda"])
    return True


# --- model weights -----------------------------------------------------------------------------


def weight_files(folder: Path) -> list[Path]:
    """The safetensors weight files of a ``save_pretrained`` folder (sharded or not)."""
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / shard for shard in shards]
    raise VisionError(f"{folder} holds no model.safetensors; the engine loads safetensors weights only")


def load_weights(model: nn.Module, folder: Path) -> None:
    """Load a checkpoint's safetensors weights into ``model`` in place.

    ``save_pretrained`` stores tied parameters once, so keys that are missing must all be tied copies
    of stored ones; anything else means the checkpoint belongs to another model.
    """
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(folder):
        state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    shared = {name for name, _ in model.named_parameters(remove_duplicate=False)} - {
        name for name, _ in model.named_parameters()
    }
    tied = set(
        getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or {}
    )
    untied_missing = [
        m for m in missing if m not in shared and m not in tied and not m.endswith("position_ids")
    ]
    if unexpected or untied_missing:
        raise VisionError(
            f"the weights in {folder} do not fit this model: "
            f"unexpected {unexpected[:3]}, missing {untied_missing[:3]}"
        )
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def pickles_in(folder: Path) -> list[str]:
    """Names of files in ``folder`` that only torch.load could read (never read by the engine)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
