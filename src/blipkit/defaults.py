"""Every default blipkit uses, in one place.

Commands, the Python API, the server and the jobs all read their defaults from here, so that
changing a default changes it everywhere at once.
"""

from __future__ import annotations

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
URL_TIMEOUT_S = 10.0

# --- text -------------------------------------------------------------------------------------
MAX_TEXT_TOKENS = 64  # longer texts are truncated (BLIP was trained on 30-35 tokens)
MAX_TEXT_CHARS = 10_000  # longer texts are refused: they are not captions or questions

# --- generation -------------------------------------------------------------------------------
MAX_NEW_TOKENS = 30
MIN_NEW_TOKENS = 5
NUM_BEAMS = 3
TOP_P = 0.9
TEMPERATURE = 1.0
REPETITION_PENALTY = 1.0
NO_REPEAT_NGRAM_SIZE = 3  # the guard against "a dog a dog a dog" loops, on by default
VQA_MAX_NEW_TOKENS = 10

# --- batching ---------------------------------------------------------------------------------
BATCH_SIZE = 16
