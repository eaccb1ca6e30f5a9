"""Dataset loading, validation and saving for training, evaluation and CapFilt.

Torch-free on purpose: checking a dataset must not cost the seconds that importing torch takes.
"""

from __future__ import annotations

from blipkit.data.captions import check_caption_dataset, detect_caption_format, load_caption_dataset
from blipkit.data.records import CaptionRecord, VQARecord, normalize_split
from blipkit.data.validation import Issue, OnBad, ValidationReport, check_image, validate
from blipkit.data.vqa import check_vqa_dataset, load_vqa_dataset
from blipkit.data.writers import save_caption_dataset

__all__ = [
    "CaptionRecord",
    "Issue",
    "OnBad",
    "VQARecord",
    "ValidationReport",
    "check_caption_dataset",
    "check_image",
    "check_vqa_dataset",
    "detect_caption_format",
    "load_caption_dataset",
    "load_vqa_dataset",
    "normalize_split",
    "save_caption_dataset",
    "validate",
]
