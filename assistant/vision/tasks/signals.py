"""The signals of an honest description (issue #22), from one vision pass.

For each image: the caption and its token confidence (as :mod:`~assistant.vision.tasks.caption` gives
them), the model's ITM probability of its own caption, and what the EfficientNet-Lite backbone's
ImageNet classifier sees (:mod:`assistant.vision.imagenet`), in plain words. :mod:`assistant.honesty`
turns them into a calibrated confidence and the words to say.

For the built-in model the classifier reads the very CNN pass that feeds the image encoder. A Salesforce
checkpoint (a ViT) gets the same classifier from the built-in model's CNN, run beside it on the same
decoded image: one EfficientNet-Lite0 pass, small next to a ViT-B.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open

from assistant.vision.imagenet import ImageNetHead, head_path, load_head
from assistant.vision.models.builtin.efficientnet_lite import EfficientNetLite
from assistant.vision.runtime.checkpoint import Checkpoint
from assistant.vision.runtime.encoding import pixel_values

TOP_LABELS = 3
Classify = Callable[[list], tuple[torch.Tensor, list[list[tuple[str, float]]]]]


def _builtin_dir() -> Path:
    from assistant.vision.runtime.resolve import builtin_dir

    return builtin_dir()


def imagenet_head(ckpt: Checkpoint) -> ImageNetHead:
    """The classifier head beside the checkpoint's weights, else the built-in model's (loaded once)."""
    head = ckpt.extras.get("imagenet_head")
    if not isinstance(head, ImageNetHead):
        own = head_path(ckpt.path)
        head = load_head(own if own.is_file() else head_path(_builtin_dir()))
        ckpt.extras["imagenet_head"] = head
    return head


def _side_trunk(ckpt: Checkpoint) -> tuple[EfficientNetLite, Checkpoint]:
    """The built-in model's CNN and preprocessing, for a checkpoint that has no CNN of its own."""
    held = ckpt.extras.get("imagenet_trunk")
    if isinstance(held, tuple):
        return held  # type: ignore[return-value]
    from transformers.models.blip import BlipImageProcessorPil

    folder = _builtin_dir()
    trunk = EfficientNetLite("lite0")
    prefix = "vision_model.trunk."
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        names = [k for k in f.keys() if k.startswith(prefix)]  # noqa: SIM118 - a safetensors handle
        state = {k[len(prefix) :]: f.get_tensor(k).float() for k in names}
    trunk.load_state_dict(state)
    trunk.eval().to(ckpt.device)
    processor = BlipImageProcessorPil.from_pretrained(folder)
    side = Checkpoint(name="builtin-cnn", path=folder, model=ckpt.model, tokenizer=ckpt.tokenizer,
                      image_processor=processor, tasks=frozenset(), device=ckpt.device, dtype=torch.float32,
                      architecture="EfficientNetLite")
    ckpt.extras["imagenet_trunk"] = (trunk, side)
    return trunk, side


def image_classifier(ckpt: Checkpoint, k: int = TOP_LABELS) -> Classify:
    """A function from decoded images to (image embeddings, the classifier's top ``k`` plain labels of
    each), for :func:`~assistant.vision.runtime.encoding.encode_images`."""
    head = imagenet_head(ckpt)
    vision = ckpt.model.vision_model
    has_trunk = isinstance(getattr(vision, "trunk", None), EfficientNetLite)

    @torch.inference_mode()
    def classify(images: list) -> tuple[torch.Tensor, list[list[tuple[str, float]]]]:
        px = pixel_values(ckpt, images)
        if has_trunk:  # one CNN pass feeds both the image tokens and the classifier
            features = vision.trunk(px)
            return vision(trunk_features=features)[0], head.top_labels(features.float().cpu(), k)
        trunk, side = _side_trunk(ckpt)
        embeds = vision(pixel_values=px)[0]
        features = trunk(pixel_values(side, images).float())
        return embeds, head.top_labels(features.cpu(), k)

    return classify
