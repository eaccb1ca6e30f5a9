"""Every default blipkit uses, in one place.

Commands, the Python API, the server and the jobs all read their defaults from here, so that
changing a default changes it everywhere at once.
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
URL_TIMEOUT_S = 10.0

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
# CPUs with bfloat16 matrix units, where its quality guard holds (runtime.checkpoint.use_fast).
FAST_ENV = "BLIPKIT_FAST"

# --- serving ----------------------------------------------------------------------------------
SERVE_HOST = "127.0.0.1"  # loopback: exposing the server is a decision, not a default
SERVE_PORT = 8000
SERVE_BATCH_WAIT_MS = 5.0  # how long the first request of a batch waits for company
SERVE_MAX_BATCH = 16  # images (or texts) per model call
SERVE_QUEUE_SIZE = 256  # requests waiting or running; more get 503 + Retry-After
SERVE_MAX_BODY_BYTES = 32 * 1024 * 1024  # a request body, base64 or multipart included
SERVE_MAX_IMAGES_PER_REQUEST = 16
SERVE_MAX_TEXTS_PER_REQUEST = 64
SERVE_SEARCH_LIMIT = 24
SERVE_THUMBNAIL_PX = 256

# --- image index and search (blipkit index / search / tag / moderate) ---------------------------
SEARCH_K = 20
# Each first-stage list (vector, full-text) fetches this many candidates before fusion and filters.
SEARCH_CANDIDATES = 100
# Hybrid search fuses the vector and full-text rankings by weighted reciprocal rank (blipkit.index.fusion):
# score = VECTOR_WEIGHT / (RRF_K + vector_rank) + TEXT_WEIGHT / (RRF_K + text_rank). Chosen on Flickr8k val
# with the built-in model (docs/search.md): the RRF paper's 60 with a text weight of 0.5 cost 4.5 R@1 on
# caption queries against the vector ranking alone; 10 and 0.1 are level with it on captions and ahead on
# keyword queries. The full text nudges near-ties; it cannot outvote the embedding.
HYBRID_VECTOR_WEIGHT = 1.0
HYBRID_TEXT_WEIGHT = 0.1
HYBRID_RRF_K = 10
# --rerank re-encodes this many top candidates from disk and orders them by ITM probability.
RERANK_CANDIDATES = 32
# Past this many rows the index gets an approximate vector index: LanceDB's exact scan costs about 5 ms
# per 1,000 rows on one core (benchmarks/ann_index.py, docs/search.md).
ANN_INDEX_MIN_ROWS = 20_000
# IVF with RaBitQ codes of 3 bits a dimension (96 bytes at 256 dimensions). A million codes scan in
# under 20 ms on one core, so a query can probe every partition of a million-row index and recall no
# longer depends on the data having clusters: on random vectors IVF-PQ reached recall@10 0.33, this 0.97
# (4 bits: 0.999 at 26 ms; 2 bits: 0.96 with refine 20 at 21 ms; docs/search.md).
ANN_INDEX_TYPE = "IVF_RQ"
ANN_NUM_BITS = 3
ANN_ROWS_PER_PARTITION = 32_768  # 31 partitions at a million rows
ANN_NPROBES = 32  # partitions probed per query: all of them up to about a million rows
ANN_REFINE_FACTOR = 5  # candidates re-scored with the exact vectors: refine_factor * k
# Images committed to the index per write: the most work a crash can cost.
INDEX_COMMIT_EVERY = 64
INDEX_TAGS = 5  # built-in vocabulary tags stored per image
TAG_PROMPT = "a photo of a {label}"
TAG_TOP_K = 5
TAG_ITM_CANDIDATES = 10  # --itm re-scores this many top ITC tags
MODERATION_THRESHOLD = 0.5
CALIBRATION_TARGET_PRECISION = 0.9

# --- fine-tuning, evaluation, CapFilt ---------------------------------------------------------
FINETUNE_EPOCHS = 3
FINETUNE_BATCH_SIZE = 16
FINETUNE_LR = 2e-5  # BLIP fine-tunes at 1e-5 (caption, retrieval) to 2e-5 (VQA)
FINETUNE_WEIGHT_DECAY = 0.05
FINETUNE_WARMUP_RATIO = 0.05
FINETUNE_LABEL_SMOOTHING = 0.1  # on the caption LM loss, as BLIP
FINETUNE_SAVE_TOTAL_LIMIT = 2  # checkpoint folders kept (the best one is never deleted)
FINETUNE_EVAL_LIMIT = 100  # validation images (caption, retrieval) or questions (VQA) scored while training
RERANK_K = 16  # retrieval: ITM re-scores the top-k ITC candidates of each query, as BLIP's evaluation
CAPFILT_THRESHOLD = 0.5  # ITM probability a text needs to be kept
CAPFILT_NUM_SYNTHETIC = 1  # synthetic captions written per image
# Zero-shot scores are softmax(cosine / T); a checkpoint's own learned ITC temperature wins over this
# (BLIP's initial value, for checkpoints that do not carry one).
ITC_TEMPERATURE = 0.07

# --- batch jobs (blipkit job ...) --------------------------------------------------------------
# Images per shard: the unit of work a worker takes, of output (one part file each) and of resumption.
JOB_SHARD_SIZE = 1000
# A Ray worker that dies is restarted, and its shard retried, this many times before the job fails.
JOB_MAX_RETRIES = 3
