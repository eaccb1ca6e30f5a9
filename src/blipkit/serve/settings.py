"""How a server runs: every knob of ``blipkit serve`` in one frozen record, defaults from
:mod:`blipkit.defaults`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from blipkit import defaults


@dataclass(frozen=True)
class ServeSettings:
    """Settings of one server. ``api_key`` is kept out of ``repr`` so that it never reaches a log."""

    model: str = defaults.DEFAULT_MODEL
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    fast: bool | None = None  # None: blipkit.load's default (runtime.checkpoint.use_fast)
    index: Path | None = None
    policy: Path | None = None  # moderation policy (YAML); /v1/moderate is off without one
    host: str = defaults.SERVE_HOST
    port: int = defaults.SERVE_PORT
    api_key: str | None = field(default=None, repr=False)
    batch_wait_ms: float = defaults.SERVE_BATCH_WAIT_MS
    max_batch: int = defaults.SERVE_MAX_BATCH
    queue_size: int = defaults.SERVE_QUEUE_SIZE
    allow_urls: bool = False
    url_timeout_s: float = defaults.URL_TIMEOUT_S
    # URL fetching refuses hosts that resolve to loopback/private/link-local addresses (SSRF); tests of
    # the fetching itself, against a local server, turn that off.
    allow_private_urls: bool = False
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = defaults.SERVE_MAX_BODY_BYTES
    max_pixels: int = defaults.MAX_IMAGE_PIXELS
    max_images_per_request: int = defaults.SERVE_MAX_IMAGES_PER_REQUEST
    max_texts_per_request: int = defaults.SERVE_MAX_TEXTS_PER_REQUEST
    # How long the batcher may take to finish queued work at shutdown before it gives up on it.
    drain_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must be >= 0")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty")


def read_api_key(path: Path) -> str:
    """The key in ``path`` (surrounding whitespace and a trailing newline removed)."""
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ValueError(f"{path} holds no API key")
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ValueError(f"the API key in {path} must be one line of printable characters without spaces")
    return key
