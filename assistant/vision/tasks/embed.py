"""Image-text contrastive (ITC) embeddings: L2-normalised vectors whose dot product ranks matches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from assistant.vision.models.parts import image_feature, text_feature
from assistant.vision.runtime.checkpoint import ITC, Checkpoint
from assistant.vision.runtime.encoding import check_text, tokenize


@torch.inference_mode()
def image_vectors(ckpt: Checkpoint, image_embeds: torch.Tensor) -> torch.Tensor:
    ckpt.require(ITC)
    return image_feature(ckpt.model, image_embeds)


@torch.inference_mode()
def text_vectors(ckpt: Checkpoint, texts: Sequence[str]) -> torch.Tensor:
    ckpt.require(ITC)
    ids, mask = tokenize(ckpt, [check_text(t) for t in texts])
    return text_feature(ckpt.model, ids, mask)


def similarity(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Cosine similarity matrix of two sets of vectors (rows), as float32 numpy."""
    ta, tb = (torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(-1, np.shape(x)[-1])
              for x in (a, b))
    if ta.shape[1] != tb.shape[1]:
        raise ValueError(f"cannot compare vectors of {ta.shape[1]} and {tb.shape[1]} dimensions "
                         "(embeddings of two different models?)")
    return (F.normalize(ta, dim=-1) @ F.normalize(tb, dim=-1).T).numpy()
