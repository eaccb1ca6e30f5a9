"""Weight interpolation between two fine-tunings of one model (WiSE-FT, Wortsman et al. 2022).

A stage that teaches something new (counts that can be "1") also moves what it was not asked to
change; a point on the line between the weights before and after it can keep most of the new skill and
most of the old behaviour. Both folders must hold the same architecture (``save_pretrained`` outputs of
one config): every floating tensor becomes ``(1 - weight) * before + weight * after``, stored in
``before``'s dtype, and the rest of ``before``'s folder (config, tokenizer, calibration) is copied.
"""

from __future__ import annotations

import shutil
from pathlib import Path

WEIGHTS = "model.safetensors"


def interpolate(before: str | Path, after: str | Path, weight: float, out: str | Path) -> Path:
    """Write ``before`` moved ``weight`` (0..1) of the way to ``after`` into the folder ``out``."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    before, after, out = Path(before), Path(after), Path(out)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the weight must be between 0 and 1, not {weight}")
    if out.resolve() in (before.resolve(), after.resolve()):
        raise ValueError(f"{out} is one of the inputs; write the result to a new folder")
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(before / WEIGHTS, "pt") as a, safe_open(after / WEIGHTS, "pt") as b:
        metadata, keys = a.metadata(), list(a.keys())
        if set(keys) != set(b.keys()):
            missing = sorted(set(keys) ^ set(b.keys()))[:3]
            raise ValueError(f"{before} and {after} hold different models (e.g. {missing})")
        for key in keys:
            x, y = a.get_tensor(key), b.get_tensor(key)
            if x.shape != y.shape:
                raise ValueError(f"{key}: {tuple(x.shape)} in {before}, {tuple(y.shape)} in {after}")
            if x.is_floating_point():
                tensors[key] = torch.lerp(x.float(), y.float(), weight).to(x.dtype)
            else:  # integer buffers (position ids) are the architecture's, not learnt
                tensors[key] = x
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(before, staging)
    save_file(tensors, staging / WEIGHTS, metadata=metadata)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out
