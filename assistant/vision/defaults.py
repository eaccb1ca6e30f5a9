"""Every default the engine uses, in one place.

The commands, the app and the training code read their defaults from here, so that changing a default
changes it everywhere at once. (The app's user-facing settings are declared in ``assistant.settings``.)
"""

from __future__ import annotations

from typing import Literal, get_args

# --- models -----------------------------------------------------------------------------------
DEFAULT_MODEL = "builtin"

# Short names for the Salesforce checkpoints on the Hugging Face hub.
MODEL_ALIASES: dict[str, str] = {
    "base": "Salesforce/blip-image-captioning-base",
    "large": "Salesforce/blip-image-captioning-large",
    "caption-base": "Salesforce/blip-image-captioning-base",
    "caption-large": "Salesforce/blip-image-captioning-large",
    "vqa": "Salesforce/blip-vqa-base",
    "vqa-base": "Salesforce/blip-vqa-base",
    "vqa-large": "Salesforce/blip-vqa-capfilt-large",
    "itm": "Salesforce/blip-itm-base-coco",
    "itm-base": "Salesforce/blip-itm-base-coco",
    "itm-large": "Salesforce/blip-itm-large-coco",
    "itm-base-flickr": "Salesforce/blip-itm-base-flickr",
    "itm-large-flickr": "Salesforce/blip-itm-large-flickr",
}

# --- images -----------------------------------------------------------------------------------
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff",
)
# A decompression bomb is refused before its pixels are decoded. 64 Mpx is a 8000x8000 photo.
MAX_IMAGE_PIXELS = 64_000_000
MAX_IMAGE_BYTES = 64 * 1024 * 1024

# --- text -------------------------------------------------------------------------------------
MAX_TEXT_TOKENS = 64  # longer texts are truncated (BLIP was trained on 30-35 tokens)
MAX_TEXT_CHARS = 10_000  # longer texts are refused: they are not captions or questions

# --- generation -------------------------------------------------------------------------------
Decoding = Literal["beam", "greedy", "nucleus"]
DECODINGS: tuple[str, ...] = get_args(Decoding)
DECODING: Decoding = "beam"
DECODING_HELP = ", ".join(DECODINGS[:-1]) + f" or {DECODINGS[-1]}."
MAX_NEW_TOKENS = 30
MIN_NEW_TOKENS = 5
NUM_BEAMS = 3
TOP_P = 0.9
TEMPERATURE = 1.0
REPETITION_PENALTY = 1.0
NO_REPEAT_NGRAM_SIZE = 3  # the guard against "a dog a dog a dog" loops, on by default
NO_REPEAT_WORDS = True  # the guard against "a blue shirt and a black shirt" loops: +1.5 CIDEr (val)
VQA_MAX_NEW_TOKENS = 10
# Candidate answers scored in full per question when ranking (BLIP's k_test): the rest are cut by the
# probability of their first token alone. 128 is BLIP's own for VQAv2's 3,128 answers.
VQA_RANK_K = 128

# --- batching ---------------------------------------------------------------------------------
BATCH_SIZE = 16
# Images per vision-encoder call on the fast path. One image's tokens (577 at BLIP-base's 384 px) already
# fill the matmul units, and activations stay one image's (~35 MB): the BLIP-base VQA fast path peaks
# ~95 MB lower at batch 4, at no measured speed cost (built-in CNN included).
FAST_VISION_BATCH = 1
# fast=None (every command's default) resolves to this variable when set (0/1), else to the fast path on
# CPUs with bfloat16 units or int8 kernels (bfloat16 with AMX, int8 elsewhere: runtime.fast.plan).
FAST_ENV = "BLIP_ASSISTANT_FAST"

# --- fine-tuning and evaluation ---------------------------------------------------------------
FINETUNE_EPOCHS = 3
FINETUNE_BATCH_SIZE = 16
FINETUNE_LR = 2e-5  # BLIP fine-tunes at 1e-5 (caption, retrieval) to 2e-5 (VQA)
FINETUNE_WEIGHT_DECAY = 0.05
FINETUNE_WARMUP_RATIO = 0.05
FINETUNE_LABEL_SMOOTHING = 0.1  # on the caption LM loss, as BLIP
FINETUNE_SAVE_TOTAL_LIMIT = 2  # checkpoint folders kept (the best one is never deleted)
FINETUNE_EVAL_LIMIT = 100  # validation images (caption, retrieval) or questions (VQA) scored while training
RERANK_K = 16  # retrieval: ITM re-scores the top-k ITC candidates of each query, as BLIP's evaluation
# Zero-shot scores are softmax(cosine / T); a checkpoint's own learned ITC temperature wins over this
# (BLIP's initial value, for checkpoints that do not carry one).
ITC_TEMPERATURE = 0.07
