"""``blipkit serve``: the HTTP API and its web page."""

from __future__ import annotations

from pathlib import Path

import typer

from blipkit import defaults
from blipkit.cli import common as c


def serve(
    model: str = typer.Option(
        None, "--model", "-m",
        help="builtin, an alias (base, large, vqa, itm...), a hub id or a local folder. Default: --db's own "
             "model, else builtin.",
    ),
    db: Path = typer.Option(None, "--db", help="An image index (blipkit index add) to search."),
    policy: Path = typer.Option(None, "--policy", exists=True, dir_okay=False, readable=True,
                                help="Moderation policy (YAML); enables /v1/moderate."),
    host: str = typer.Option(defaults.SERVE_HOST, "--host", help="Address to listen on (0.0.0.0: all)."),
    port: int = typer.Option(defaults.SERVE_PORT, "--port", min=0, max=65535),
    api_key_file: Path = typer.Option(
        None, "--api-key-file", help="File holding the API key requests must send (X-API-Key or Bearer).",
        exists=True, dir_okay=False, readable=True,
    ),
    batch_wait_ms: float = typer.Option(defaults.SERVE_BATCH_WAIT_MS, "--batch-wait-ms", min=0,
                                        help="How long a request waits for others to batch with."),
    max_batch: int = typer.Option(defaults.SERVE_MAX_BATCH, "--max-batch", min=1,
                                  help="Most images (or texts) per model call; 1 turns batching off."),
    queue_size: int = typer.Option(defaults.SERVE_QUEUE_SIZE, "--queue-size", min=1,
                                   help="Requests waiting or running; past it, 503 with Retry-After."),
    allow_urls: bool = typer.Option(False, "--allow-urls/--no-allow-urls",
                                    help="Let requests give images as http(s) URLs that the server fetches."),
    cors_origin: list[str] = typer.Option(None, "--cors-origin",
                                          help="Origin allowed to call the API from a browser (repeatable)."),
    max_body_mb: float = typer.Option(defaults.SERVE_MAX_BODY_BYTES / 2**20, "--max-body-mb", min=0.001,
                                      help="Largest request body, in MiB."),
    max_pixels: int = typer.Option(defaults.MAX_IMAGE_PIXELS, "--max-pixels", min=1,
                                   help="Largest image, in pixels (checked before decoding)."),
    device: str = c.DeviceOption,
    dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption,
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Serve the model over HTTP: /v1 API, web page at /, /docs, /healthz, /readyz, /metrics.

    Concurrent requests are micro-batched into one model call. Stop with Ctrl-C (or SIGTERM): requests in
    flight are finished first.
    """
    from blipkit.serve.settings import ServeSettings, read_api_key

    api_key = None
    if api_key_file is not None:
        try:
            api_key = read_api_key(api_key_file)
        except (OSError, ValueError) as exc:
            raise c.fail(str(exc)) from exc
    if db is not None and not db.is_dir():
        raise c.fail(f"--db {db}: no such index folder")
    try:
        settings = ServeSettings(
            model=c.index_model(db, model), index=db, policy=policy, host=host, port=port, api_key=api_key,
            batch_wait_ms=batch_wait_ms, max_batch=max_batch, queue_size=queue_size, allow_urls=allow_urls,
            cors_origins=tuple(cors_origin or ()), max_body_bytes=int(max_body_mb * 2**20),
            max_pixels=max_pixels, device=device, dtype=dtype, threads=threads, fast=fast,
        )
    except ValueError as exc:
        raise c.fail(str(exc)) from exc
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        typer.secho(f"warning: listening on {host} without --api-key-file: anyone who can reach it can "
                    "use it", fg="yellow", err=True)
    from blipkit.serve.runner import serve as run_server  # imports torch: after the cheap checks

    raise typer.Exit(run_server(settings, log_level=log_level))


def register(app: typer.Typer) -> None:
    """Register ``blipkit serve``."""
    app.command("serve")(serve)
