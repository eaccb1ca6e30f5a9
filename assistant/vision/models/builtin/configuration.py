"""Configuration of the engine's built-in BLIP model."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PretrainedConfig
from transformers.models.blip.configuration_blip import BlipTextConfig

# The built-in model's text side is MiniLM-L6-H384 (BERT vocabulary) plus BLIP's two extra tokens,
# [DEC] (30522, the decoder's BOS) and [ENC] (30523), exactly as in Salesforce's BLIP tokenizer.
BUILTIN_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 30524,
    "hidden_size": 384,
    "encoder_hidden_size": 384,
    "intermediate_size": 1536,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "max_position_embeddings": 512,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "layer_norm_eps": 1e-12,
    "bos_token_id": 30522,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "sep_token_id": 102,
    "is_decoder": True,
    "label_smoothing": 0.1,
}


class BuiltinBlipConfig(PretrainedConfig):
    r"""A BLIP whose image encoder is an EfficientNet-Lite grid plus a small transformer.

    The image encoder's output is a sequence ``[CLS, grid tokens]`` of width ``vision_hidden_size``, the same
    contract as BLIP's ViT, so every BLIP task runs on it unchanged. The text side is BLIP's BERT with
    cross-attention (``BlipTextModel``) and its causal decoder (``BlipTextLMHeadModel``); with
    ``share_text_layers`` the decoder shares all but its self-attention with the encoder, as in BLIP
    pre-training. Without it, the decoder has its own layers; ``share_text_embeddings`` still gives both
    one word and position table (and the LM head's tied matrix), which is a third of the text weights.
    With ``num_tag_tokens > 0`` the image encoder also appends object-tag tokens from the CNN's ImageNet
    classifier (see :class:`~assistant.vision.models.builtin.modeling.BuiltinVisionModel`).
    """

    model_type = "blipkit"  # the name stored in the shipped config.json
    sub_configs: ClassVar[dict[str, type]] = {"text_config": BlipTextConfig}

    def __init__(
        self,
        text_config: dict[str, Any] | BlipTextConfig | None = None,
        vision_variant: str = "lite0",
        image_size: int = 224,
        vision_hidden_size: int = 384,
        vision_num_layers: int = 2,
        vision_num_heads: int = 6,
        image_text_hidden_size: int = 256,
        share_text_layers: bool = True,
        share_text_embeddings: bool = False,
        itc_temperature: float = 0.07,
        image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        image_std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        initializer_range: float = 0.02,
        num_tag_tokens: int = 0,
        num_tag_labels: int = 0,
        **kwargs: Any,
    ) -> None:
        if text_config is None:
            text_config = dict(BUILTIN_TEXT_CONFIG)
        if isinstance(text_config, dict):
            text_config = BlipTextConfig(**text_config)
        self.text_config = text_config
        self.vision_variant = vision_variant
        self.image_size = image_size
        self.vision_hidden_size = vision_hidden_size
        self.vision_num_layers = vision_num_layers
        self.vision_num_heads = vision_num_heads
        self.image_text_hidden_size = image_text_hidden_size
        self.share_text_layers = share_text_layers
        self.share_text_embeddings = share_text_embeddings
        self.itc_temperature = itc_temperature
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.initializer_range = initializer_range
        # Object tags (issue #22): the trunk's own ImageNet classifier picks the `num_tag_tokens` likeliest
        # of `num_tag_labels` plain labels ("a dog" pools 118 breeds), and each becomes an extra image
        # token, so the decoder reads what the classifier recognised (Oscar/VinVL's object tags). 0: none.
        self.num_tag_tokens = num_tag_tokens
        self.num_tag_labels = num_tag_labels
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(**kwargs)
