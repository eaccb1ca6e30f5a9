"""Evaluation metrics that need no model: caption, VQA and retrieval scores, and result reports.

Light to import: pycocoevalcap, nltk and rich are imported only by the functions that use them.
"""

from __future__ import annotations

from assistant.evaluation.caption_metrics import caption_scores, simple_ptb_tokenize
from assistant.evaluation.report import print_table, save_predictions, write_report
from assistant.evaluation.retrieval_metrics import retrieval_scores
from assistant.evaluation.vqa_metrics import normalize_answer, vqa_accuracy, vqa_scores, wups

__all__ = [
    "caption_scores",
    "normalize_answer",
    "print_table",
    "retrieval_scores",
    "save_predictions",
    "simple_ptb_tokenize",
    "vqa_accuracy",
    "vqa_scores",
    "write_report",
    "wups",
]
