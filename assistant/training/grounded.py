"""Object tags for the built-in model (issue #22): the starting point of the grounded fine-tuning stage.

``make_tagged_model`` copies a trained built-in model into one whose image encoder also emits
``num_tag_tokens`` object-tag tokens (see
:class:`~assistant.vision.models.builtin.modeling.BuiltinVisionModel`):
the CNN's own ImageNet classifier (``resources/models/builtin/imagenet/head.safetensors``) picks the
likeliest plain labels, and each becomes a learned token. Every trained weight is kept; the tag tokens
start from the MiniLM word embeddings of their label's words, so that "a dog" starts near "dog".
The recipe then trains on from it (``train.lr_tags`` for the new tokens)::

    python -m assistant.training.grounded resources/models/builtin ../runs/tags-init
    blip-assistant model pretrain --config resources/models/builtin/recipe.yaml --set init=../runs/tags-init
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import BertTokenizerFast
from transformers.models.blip import BlipImageProcessorPil

from assistant.vision.imagenet import ImageNetHead, load_head
from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel

DEFAULT_TAGS = 5


@torch.no_grad()
def label_word_embeddings(model: BuiltinBlipModel, tokenizer, words: list[str]) -> torch.Tensor:
    """The mean word embedding of each label's words, without its article ("a cup of coffee" -> cup, of,
    coffee)."""
    table = model.text_encoder.embeddings.word_embeddings.weight
    rows = []
    for word in words:
        text = word.split(" ", 1)[1] if word.split(" ", 1)[0] in ("a", "an") and " " in word else word
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
        rows.append(table[ids].mean(dim=0))
    return torch.stack(rows)


@torch.no_grad()
def make_tagged_model(
    source: Path, head: ImageNetHead, num_tags: int = DEFAULT_TAGS
) -> tuple[BuiltinBlipModel, object]:
    old = BuiltinBlipModel.from_pretrained(source, dtype=torch.float32, use_safetensors=True)
    tokenizer = BertTokenizerFast.from_pretrained(source)  # the model's own, [DEC] and [ENC] included
    config = BuiltinBlipConfig(
        **{**old.config.to_dict(), "num_tag_tokens": num_tags, "num_tag_labels": len(head.words)}
    )
    model = BuiltinBlipModel(config)
    missing, unexpected = model.load_state_dict(old.state_dict(), strict=False)
    if unexpected or any(not k.startswith("vision_model.") for k in missing):
        raise RuntimeError(f"weights did not carry over: missing {missing[:5]}, unexpected {unexpected[:5]}")
    vision = model.vision_model
    vision.classifier.weight.copy_(head.weight)
    vision.classifier.bias.copy_(head.bias)
    vision.tag_groups.copy_(head.group)
    vision.tag_embedding.weight.copy_(label_word_embeddings(model, tokenizer, head.words))
    vision.tag_prob.zero_()
    vision.tag_norm.reset_parameters()
    model.tie_weights()
    return model, tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="a trained built-in model folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--head", type=Path, help="the ImageNet head (default: the source's imagenet/)")
    parser.add_argument("--tags", type=int, default=DEFAULT_TAGS)
    args = parser.parse_args(argv)
    head = load_head(args.head or args.source)
    model, tokenizer = make_tagged_model(args.source, head, args.tags)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    BlipImageProcessorPil.from_pretrained(args.source).save_pretrained(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
