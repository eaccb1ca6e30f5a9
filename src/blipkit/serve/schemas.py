"""The request and response bodies of the HTTP API, as pydantic models (they make the OpenAPI document).

Every image-taking endpoint accepts the same body two ways: JSON, with ``images`` as a list of
:class:`ImageRef` (base64 bytes or a URL), or ``multipart/form-data``, with ``images`` as uploaded files and
the other fields as form fields (list fields repeated).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from blipkit import defaults


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- shared -------------------------------------------------------------------------------------


class ErrorDetail(_Model):
    code: str = Field(description="Machine-readable error code, e.g. `image_decode_error`, `queue_full`.")
    message: str = Field(description="What went wrong, for people.")


class ErrorResponse(_Model):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


class ImageRef(_Model):
    """One image: its encoded bytes in base64 (a ``data:image/...;base64,`` URL is accepted too), or an
    http(s) URL when the server runs with ``--allow-urls``."""

    base64: str | None = Field(default=None, description="Encoded image file (JPEG, PNG, WebP...) in base64.")
    url: str | None = Field(default=None, description="http(s) URL of the image (needs --allow-urls).",
                            max_length=2048)

    @model_validator(mode="after")
    def _one_source(self) -> ImageRef:
        if (self.base64 is None) == (self.url is None):
            raise ValueError("give exactly one of `base64` or `url`")
        return self


class ImagesRequest(_Model):
    images: list[ImageRef] = Field(min_length=1, description="The images (one result per image).")


# --- caption ------------------------------------------------------------------------------------


class CaptionRequest(ImagesRequest):
    prompt: str | None = Field(default=None, max_length=defaults.MAX_TEXT_CHARS,
                               description="Text the caption must start with, e.g. `a picture of`.")
    decoding: defaults.Decoding = defaults.DECODING
    num_beams: int = Field(default=defaults.NUM_BEAMS, ge=1, le=10)
    max_new_tokens: int = Field(default=defaults.MAX_NEW_TOKENS, ge=1, le=128)


class CaptionItem(_Model):
    index: int = Field(description="Position of the image in the request.")
    caption: str
    confidence: float = Field(description="Geometric-mean token probability of the caption, in (0, 1].")


class CaptionResponse(_Model):
    model: str
    results: list[CaptionItem]


# --- ask ----------------------------------------------------------------------------------------


class AskRequest(ImagesRequest):
    question: str = Field(min_length=1, max_length=defaults.MAX_TEXT_CHARS)
    choices: list[str] | None = Field(
        default=None, min_length=1, max_length=100,
        description="Candidate answers: each is scored and the best is the answer (closed-set VQA).",
    )


class AnswerItem(_Model):
    index: int
    question: str
    answer: str
    confidence: float
    scores: dict[str, float] | None = Field(default=None, description="Score of every choice (sums to 1).")


class AskResponse(_Model):
    model: str
    results: list[AnswerItem]


# --- match --------------------------------------------------------------------------------------


class MatchRequest(ImagesRequest):
    texts: list[str] = Field(min_length=1, description="Texts to match against every image.")


class MatchItem(_Model):
    image: int = Field(description="Position of the image in the request.")
    text: str
    score: float = Field(description="Probability (ITM head) that the text describes the image.")


class MatchResponse(_Model):
    model: str
    results: list[MatchItem]


# --- embed --------------------------------------------------------------------------------------


class EmbedRequest(_Model):
    images: list[ImageRef] = Field(default_factory=list)
    texts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> EmbedRequest:
        if not self.images and not self.texts:
            raise ValueError("give `images`, `texts` or both")
        return self


class EmbedResponse(_Model):
    model: str
    dim: int
    images: list[list[float]] = Field(description="One L2-normalised vector per image.")
    texts: list[list[float]] = Field(description="One L2-normalised vector per text.")
    similarity: list[list[float]] | None = Field(
        default=None, description="Cosine similarity, images x texts (when both are given).")


# --- tags and moderation --------------------------------------------------------------------------


class TagRequest(ImagesRequest):
    top_k: int = Field(default=10, ge=1, le=100, description="At most this many tags per image.")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="Drop tags scored below this.")


class Tag(_Model):
    tag: str
    score: float


class TagItem(_Model):
    index: int
    tags: list[Tag]


class TagResponse(_Model):
    model: str
    results: list[TagItem]


class ModerateRequest(ImagesRequest):
    explain: bool = Field(default=False, description="Also caption each image, as the explanation.")


class ModerationItem(_Model):
    index: int
    flagged: bool = Field(description="True when any category is at or above its threshold.")
    categories: dict[str, float] = Field(description="Score of each moderation category.")
    flagged_categories: list[str] = Field(default_factory=list, description="Flagged ones, worst first.")
    caption: str | None = Field(default=None, description="The image's caption (with `explain`).")


class ModerateResponse(_Model):
    model: str
    results: list[ModerationItem]


# --- search -------------------------------------------------------------------------------------


class SearchHit(_Model):
    id: str = Field(description="The image's id in the index (its content hash).")
    score: float
    caption: str | None = Field(default=None, description="The caption stored with the image.")
    thumbnail_url: str = Field(description="Server path of a JPEG thumbnail of the image.")
    image_url: str = Field(description="Server path of the image itself.")


class SearchResponse(_Model):
    query: str
    results: list[SearchHit]


# --- service ------------------------------------------------------------------------------------


class Health(_Model):
    status: Literal["ok"] = "ok"


class Readiness(_Model):
    ready: bool
    model: str | None = None
    tasks: list[str] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why the model failed to load, if it did.")


class Limits(_Model):
    max_body_bytes: int
    max_pixels: int
    max_images_per_request: int
    max_texts_per_request: int
    max_batch: int
    batch_wait_ms: float
    queue_size: int


class Info(_Model):
    """What this server can do: the page reads it to show only what works."""

    version: str
    model: str | None
    tasks: list[str] = Field(description="Tasks of the loaded checkpoint: caption, vqa, itm, itc.")
    endpoints: list[str] = Field(description="The /v1 endpoints this server answers.")
    embedding_dim: int | None = None
    search: bool = Field(description="True when an index is loaded (GET /v1/search works).")
    index_size: int | None = None
    allow_urls: bool
    auth: bool = Field(description="True when requests need an API key.")
    limits: Limits
