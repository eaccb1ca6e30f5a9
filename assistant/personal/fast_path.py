"""A model with a personal version merged in, put on the engine's CPU fast path.

Versions are merged into float32 weights (:meth:`~assistant.personal.versions.Version.apply`), but the
base model runs on the fast path (int8 on CPUs without AMX), so a user who personalized waited
longer for every word. The merged model is converted with the plan the base model gets, and the gate's
base layers (:mod:`assistant.personal.gate`) with it, so both models a description may use run the same
kernels: a brief description of a picture without the user's words 587 -> 416 ms, with them 277 -> 190
ms (the base model: 241 ms; tests/benchmarks/README.md, "Personal versions on the fast path").
"""

from __future__ import annotations

from typing import Any

from torch import nn


def to_fast(blip: Any) -> None:
    """Convert ``blip``'s model in place to this machine's fast plan, with its personal gate if it has one.

    The gate's base weights of converted layers become converted layers of their own; those of weights
    the plan keeps as tensors take their new dtype."""
    from assistant.personal.gate import gate_of
    from assistant.vision.runtime.fast import apply_fast, default_plan, linear_formats, usable
    from assistant.vision.runtime.fast.convert import stored_dtypes

    ckpt = blip.checkpoint
    model = ckpt.model
    plan = usable(default_plan(ckpt.device))
    formats = linear_formats(model, plan)
    stored = stored_dtypes(model, plan)
    gate = gate_of(blip)
    # named before conversion: linear_formats names each shared layer once, as named_modules() does
    layers = {id(m.weight): (name, m.bias) for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets = {param: layers[id(param)] for param in (gate.base_weights if gate else {})}
    apply_fast(model, plan)
    ckpt.extras["fast"] = plan.describe()
    if gate is None:
        return
    for param, (name, bias) in targets.items():
        if name in formats:
            gate.convert_layer(param, model, name, formats[name], bias)
        else:
            gate.retype(param, stored.get(f"{name}.weight", param.dtype))
