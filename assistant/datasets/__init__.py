"""Dataset loading, validation and saving for training, evaluation and CapFilt.

Torch-free on purpose: checking a dataset must not cost the seconds that importing torch takes.
"""

from __future__ import annotations

from assistant.datasets.captions import check_caption_dataset, detect_caption_format, load_caption_dataset
from assistant.datasets.records import CaptionRecord, VQARecord, normalize_split
from assistant.datasets.validation import Issue, OnBad, ValidationReport, check_image, validate
from assistant.datasets.vqa import check_vqa_dataset, load_vqa_dataset
from assistant.datasets.writers import save_caption_dataset

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
