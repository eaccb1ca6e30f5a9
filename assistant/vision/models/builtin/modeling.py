"""The engine's built-in BLIP: EfficientNet-Lite image tokens + BLIP's own text encoder and decoder.

One model holds every BLIP head (ITC projections, ITM head, captioning/answer decoder), with the same
sub-module names as the Salesforce checkpoints (``vision_model``, ``text_encoder``, ``text_decoder``,
``vision_proj``, ``text_proj``, ``itm_head``), so the engine's task code drives it exactly as it drives
``BlipForConditionalGeneration``, ``BlipForQuestionAnswering`` and ``BlipForImageTextRetrieval``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.blip.modeling_blip_text import BlipTextLMHeadModel, BlipTextModel

from assistant.vision.models.builtin.configuration import BuiltinBlipConfig
from assistant.vision.models.builtin.efficientnet_lite import HEAD_CHANNELS, EfficientNetLite

IMAGENET_CLASSES = 1000

# Sub-modules of each BLIP text layer that the decoder shares with the encoder (all but self-attention).
SHARED_LAYER_PARTS = ("crossattention", "intermediate", "output")


class BuiltinVisionModel(nn.Module):
    """Image -> ``[CLS, grid tokens]``: the CNN's last feature grid, projected, plus a small transformer.

    The transformer lets each grid cell see the whole image and gives BLIP its [CLS] summary token, which
    the ITC head projects, as in BLIP's ViT.
    """

    def __init__(self, config: BuiltinBlipConfig) -> None:
        super().__init__()
        width = config.vision_hidden_size
        self.trunk = EfficientNetLite(config.vision_variant)
        self.proj = nn.Linear(HEAD_CHANNELS, width)
        grid = math.ceil(config.image_size / 32)
        self.grid_size = grid
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + grid * grid, width))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width,
                config.vision_num_heads,
                4 * width,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.vision_num_layers)
        )
        self.post_layernorm = nn.LayerNorm(width)
        self.num_tag_tokens = config.num_tag_tokens
        if self.num_tag_tokens > 0:
            # The CNN's ImageNet head (frozen: it is the pretrained package's) and one learned token per
            # plain label; `tag_groups[c]` is the label of ImageNet class c, so breeds pool into "a dog".
            self.classifier = nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES)
            self.register_buffer("tag_groups", torch.zeros(IMAGENET_CLASSES, dtype=torch.long))
            self.tag_embedding = nn.Embedding(config.num_tag_labels, width)
            self.tag_prob = nn.Parameter(torch.zeros(width))  # how sure the classifier is, added to the token
            self.tag_norm = nn.LayerNorm(width)

    def _positions(self, h: int, w: int) -> torch.Tensor:
        pos = self.position_embedding
        if h == w == self.grid_size:
            return pos
        # Another input size: resample the grid's position embeddings, keep the [CLS] one.
        grid = pos[:, 1:].reshape(1, self.grid_size, self.grid_size, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        trunk_features: torch.Tensor | None = None,
        **_: object,
    ) -> BaseModelOutputWithPooling:
        """Encode images; ``trunk_features`` (the CNN's cached output) skips the CNN when it is frozen."""
        features = self.trunk(pixel_values) if trunk_features is None else trunk_features  # (B, 1280, h, w)
        b, _, h, w = features.shape
        tokens = self.proj(features.flatten(2).transpose(1, 2))
        tokens = torch.cat([self.class_embedding.expand(b, -1, -1).to(tokens.dtype), tokens], dim=1)
        tokens = tokens + self._positions(h, w).to(tokens.dtype)
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.post_layernorm(tokens)
        if self.num_tag_tokens > 0:
            tokens = torch.cat([tokens, self.tag_tokens(features).to(tokens.dtype)], dim=1)
        return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=tokens[:, 0])

    def label_probs(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_tag_labels) probability of each plain label from the trunk's grid (the sum over its
        ImageNet classes)."""
        logits = self.classifier(features.mean(dim=(2, 3)).to(self.classifier.weight.dtype))
        probs = torch.softmax(logits.float(), dim=-1)
        out = torch.zeros(probs.shape[0], self.tag_embedding.num_embeddings, device=probs.device)
        return out.index_add_(1, self.tag_groups, probs)

    def tag_tokens(self, features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the choice of tags is not learned; their tokens are
            probs, labels = self.label_probs(features).topk(self.num_tag_tokens, dim=-1)
        tokens = self.tag_embedding(labels) + probs.unsqueeze(-1).to(self.tag_prob.dtype) * self.tag_prob
        return self.tag_norm(tokens)


class BuiltinBlipPreTrainedModel(PreTrainedModel):
    config_class = BuiltinBlipConfig
    config: BuiltinBlipConfig
    base_model_prefix = "blipkit"  # the shipped weights were saved under it
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _no_split_modules: ClassVar[list[str]] = []

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, BuiltinVisionModel):
            nn.init.trunc_normal_(module.class_embedding, std=std)
            nn.init.trunc_normal_(module.position_embedding, std=std)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm | nn.BatchNorm2d):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if hasattr(module, "position_ids") and isinstance(module.position_ids, torch.Tensor):
            module.position_ids.copy_(torch.arange(module.position_ids.shape[-1]).expand((1, -1)))


class BuiltinBlipModel(BuiltinBlipPreTrainedModel):
    """Every BLIP head in one model: ITC, ITM, captioning and VQA answer generation."""

    def __init__(self, config: BuiltinBlipConfig) -> None:
        super().__init__(config)
        text = config.text_config
        self.vision_model = BuiltinVisionModel(config)
        self.text_encoder = BlipTextModel(text, add_pooling_layer=False)
        self.text_decoder = BlipTextLMHeadModel(text)
        self.vision_proj = nn.Linear(config.vision_hidden_size, config.image_text_hidden_size)
        self.text_proj = nn.Linear(text.hidden_size, config.image_text_hidden_size)
        self.itm_head = nn.Linear(text.hidden_size, 2)
        # BLIP learns the ITC temperature; stored as log(1/T) so that the optimiser works in a sane scale.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.itc_temperature)))
        share_embeddings = config.share_text_layers or config.share_text_embeddings
        self._tied_weights_keys = (
            self._share_text_parts(layers=config.share_text_layers) if share_embeddings else {}
        )
        self.post_init()

    def _share_text_parts(self, layers: bool) -> dict[str, str]:
        """Make the decoder reuse the encoder's embeddings and, with ``layers``, its cross-attention and
        FFNs; return the tie map."""
        enc, dec = self.text_encoder, self.text_decoder
        dec.bert.embeddings = enc.embeddings
        ties = {
            f"text_decoder.bert.embeddings.{n}": f"text_encoder.embeddings.{n}"
            for n, _ in enc.embeddings.named_parameters()
        }
        pairs = zip(enc.encoder.layer, dec.bert.encoder.layer, strict=True)
        for i, (enc_layer, dec_layer) in enumerate(pairs):
            for part in SHARED_LAYER_PARTS if layers else ():
                setattr(dec_layer, part, getattr(enc_layer, part))
                for n, _ in getattr(enc_layer, part).named_parameters():
                    ties[f"text_decoder.bert.encoder.layer.{i}.{part}.{n}"] = (
                        f"text_encoder.encoder.layer.{i}.{part}.{n}"
                    )
        # The LM head's output matrix is the (shared) word embedding; tie it to the encoder's copy
        # directly so that no tie points at another tie.
        ties["text_decoder.cls.predictions.decoder.weight"] = "text_encoder.embeddings.word_embeddings.weight"
        ties["text_decoder.cls.predictions.decoder.bias"] = "text_decoder.cls.predictions.bias"
        dec._tied_weights_keys = {}
        dec.all_tied_weights_keys = {}
        return ties

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        # The tie map is built expanded (whole parameter names), but transformers' test for that reads a
        # name ending in "bias" as a pattern, and then matches each of the 102 names against every
        # parameter name: 130,000 regex searches, 0.2 s of each load.
        ties = self._tied_weights_keys
        if all_submodels or not ties or not getattr(self.config, "tie_word_embeddings", False):
            return super().get_expanded_tied_weights_keys(all_submodels)
        return dict(ties)

    def get_input_embeddings(self) -> nn.Module:
        return self.text_encoder.get_input_embeddings()

    @property
    def itc_temperature(self) -> torch.Tensor:
        return (1.0 / self.logit_scale.exp()).clamp(min=1e-3, max=0.5)
