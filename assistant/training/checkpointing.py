"""Training state saved as safetensors + JSON (never pickle), written atomically, for resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

STATE_DIR = "train_state"


def _unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # tied parameters appear under several names; store each storage once
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().contiguous().cpu()
    return out


def save_state(
    out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]
) -> None:
    """Write model, optimizer and RNG state to ``out_dir/train_state`` (replaced atomically)."""
    final = out_dir / STATE_DIR
    tmp = out_dir / f".{STATE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_unique_state(model), str(tmp / "model.safetensors"))
    names = {id(p): n for n, p in model.named_parameters()}
    opt_tensors: dict[str, torch.Tensor] = {}
    groups = []
    for group in optimizer.param_groups:
        groups.append(
            {k: v for k, v in group.items() if k != "params"}
            | {"params": [names[id(p)] for p in group["params"]]}
        )
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                opt_tensors[f"{names[id(p)]}::{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "groups": groups, **extra}, indent=1))
    if final.exists():
        old = out_dir / f".{STATE_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def load_state(out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore what :func:`save_state` wrote; None when there is nothing to resume."""
    folder = out_dir / STATE_DIR
    if not (folder / "state.json").is_file():
        return None
    meta = json.loads((folder / "state.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {n for n, t in model.state_dict().items()}
    if unexpected or any(m not in tied for m in missing):
        raise RuntimeError(f"train state does not fit this model: {unexpected[:3]} {missing[:3]}")
    model.tie_weights()
    params = dict(model.named_parameters())
    opt = load_file(str(folder / "optimizer.safetensors"))
    for key, value in opt.items():
        name, field = key.split("::")
        p = params[name]
        optimizer.state.setdefault(p, {})[field] = value.to(p.device) if value.dim() else value
    for group, saved in zip(optimizer.param_groups, meta["groups"], strict=True):
        for k, v in saved.items():
            if k != "params":
                group[k] = v
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return meta
