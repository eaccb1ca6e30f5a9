"""The core commands: caption, ask, match, embed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from blipkit.cli import common as c


def _sources(paths: list[str]) -> list:
    from blipkit.io import expand_sources

    sources = expand_sources(paths)
    if not sources:
        raise c.fail("no images found in " + " ".join(paths))
    return sources


def caption(
    paths: list[str] = typer.Argument(..., help="Images, folders (recursive), globs, URLs or @list.txt."),
    prompt: str = typer.Option(
        None, "--prompt", "-p", help='Text the caption continues, e.g. "a photography of".'
    ),
    decoding: str = c.DecodingOption,
    num_beams: int = c.NumBeamsOption,
    max_new_tokens: int = c.MaxNewTokensOption,
    min_new_tokens: int = c.MinNewTokensOption,
    top_p: float = c.TopPOption,
    temperature: float = c.TemperatureOption,
    repetition_penalty: float = c.RepetitionPenaltyOption,
    no_repeat_ngram_size: int = c.NoRepeatNgramOption,
    no_repeat_words: bool = c.NoRepeatWordsOption,
    model: str = c.ModelOption,
    device: str = c.DeviceOption,
    dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption,
    batch_size: int = c.BatchOption,
    as_json: bool = c.JsonOption,
    out: Path = c.OutOption,
    resume: bool = c.ResumeOption,
    progress: bool = c.ProgressOption,
) -> None:
    """Caption images. Each caption comes with a confidence: the geometric-mean probability of its tokens."""
    from blipkit.tasks.generation import GenerationSettings

    c.check_out(out)
    try:
        settings = GenerationSettings(
            decoding=decoding,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,  # type: ignore[arg-type]
            min_new_tokens=min_new_tokens,
            top_p=top_p,
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            no_repeat_words=no_repeat_words,
        )
    except ValueError as exc:
        raise c.fail(str(exc)) from exc
    sources = _sources(paths)
    if resume:
        done = c.done_images(out)
        sources = [s for s in sources if str(s) not in done]
    blip = c.load_model(model, device, dtype, threads, fast, task="caption")
    writer = c.ResultWriter(
        out, as_json, lambda r: f"{r['image']}\t{r['caption']}\t({r['confidence']:.2f})", resume=resume
    )
    c.write_batches(
        sources, batch_size, progress, writer,
        lambda chunk: blip.caption(chunk, prompt=prompt, settings=settings, batch_size=batch_size),
    )
    raise typer.Exit(writer.close())


def ask(
    image: str = typer.Argument(..., help="An image (path, URL) or a folder/glob to ask about each image."),
    question: str = typer.Argument(..., help="The question."),
    choices: str = typer.Option(None, "--choices", help="Comma-separated candidate answers to rank."),
    model: str = c.ModelOption,
    device: str = c.DeviceOption,
    dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption,
    batch_size: int = c.BatchOption,
    as_json: bool = c.JsonOption,
    out: Path = c.OutOption,
    resume: bool = c.ResumeOption,
    progress: bool = c.ProgressOption,
) -> None:
    """Answer a question about an image, by generation or by ranking --choices."""
    c.check_out(out)
    options = [x.strip() for x in choices.split(",") if x.strip()] if choices is not None else None
    if options == []:  # an empty --choices (an unset variable in a script?) must not quietly mean "generate"
        raise c.fail("--choices has no candidate answers")
    sources = _sources([image])
    if resume:
        done = c.done_images(out)
        sources = [s for s in sources if str(s) not in done]
    blip = c.load_model(model, device, dtype, threads, fast, task="vqa")

    def human(r: dict) -> str:
        line = f"{r['image']}\t{r['answer']}\t({r['confidence']:.2f})"
        if r.get("scores"):
            line += "\t" + ", ".join(
                f"{k}: {v:.3f}" for k, v in sorted(r["scores"].items(), key=lambda kv: -kv[1])
            )
        return line

    writer = c.ResultWriter(out, as_json, human, resume=resume)
    c.write_batches(sources, batch_size, progress, writer,
                    lambda chunk: blip.ask(chunk, question, choices=options, batch_size=batch_size))
    raise typer.Exit(writer.close())


def match(
    image: str = typer.Argument(..., help="An image (or folder/glob: every image is matched)."),
    texts: list[str] = typer.Argument(..., help="One or more texts."),
    model: str = c.ModelOption,
    device: str = c.DeviceOption,
    dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption,
    batch_size: int = c.BatchOption,
    as_json: bool = c.JsonOption,
    out: Path = c.OutOption,
) -> None:
    """Image-text matching: the probability (ITM head) that each text describes the image."""
    c.check_out(out)
    sources = _sources([image])
    blip = c.load_model(model, device, dtype, threads, fast, task="itm")
    writer = c.ResultWriter(out, as_json, lambda r: f"{r['image']}\t{r['score']:.4f}\t{r['text']}")
    for result in blip.match(sources, texts, batch_size=batch_size):
        writer.write(result.to_dict())
    raise typer.Exit(writer.close())


def embed(
    paths: list[str] = typer.Argument(None, help="Images, folders, globs (omit with --text)."),
    text: list[str] = typer.Option(None, "--text", "-t", help="Embed these texts instead of images."),
    out: Path = typer.Option(..., "--out", "-o", help="vectors.parquet (with names) or vectors.npy."),
    model: str = c.ModelOption,
    device: str = c.DeviceOption,
    dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption,
    batch_size: int = c.BatchOption,
    resume: bool = typer.Option(False, "--resume", help="Skip images already in the .parquet --out."),
    progress: bool = c.ProgressOption,
) -> None:
    """L2-normalised ITC embeddings of images or texts, saved as Parquet (name + vector) or .npy.

    The file is written at the end, or when Ctrl-C or SIGTERM stops the run (exit 130): with a .parquet
    --out, --resume then embeds only the images it does not hold yet.
    """
    import numpy as np

    if out.suffix not in (".parquet", ".npy"):
        raise c.fail("--out must end in .parquet or .npy")
    c.check_writable(out)
    if bool(paths) == bool(text):
        raise c.fail("give images or --text, not both (and not neither)")
    if resume and (text or out.suffix != ".parquet"):
        raise c.fail("--resume needs images and a .parquet --out (a .npy holds no image names)")
    # an earlier run's rows worth keeping: those without an error are not redone
    earlier = [r for r in c.read_rows(out) if not r.get("error")] if resume and out.exists() else []
    sources = _sources(paths) if paths else []
    if earlier:
        done = {row["name"] for row in earlier}
        sources = [s for s in sources if str(s) not in done]
    blip = c.load_model(model, device, dtype, threads, fast, task="itc")
    interrupted = False
    if text:
        names, errors = list(text), [None] * len(text)
        try:
            vectors = blip.embed_texts(text)
        except Exception as exc:  # a TextError names the bad text
            raise c.fail(str(exc)) from exc
    else:
        batches: list[tuple[Any, list[str], list[str | None]]] = []  # one append per batch: never torn
        try:
            with c.progress_bar(len(sources), progress) as advance:
                for chunk in c.chunks(sources, batch_size):
                    feats = blip.encode_images(chunk, batch_size=batch_size)
                    errs = [str(feats.errors[i]) if i in feats.errors else None for i in range(len(chunk))]
                    batches.append((blip.embed_images(feats), list(feats.labels), errs))
                    advance(len(chunk))
        except KeyboardInterrupt:
            interrupted = True
        names = [row["name"] for row in earlier] + [n for _, labels, _ in batches for n in labels]
        errors = [None] * len(earlier) + [e for _, _, errs in batches for e in errs]
        parts = [v for v, _, _ in batches]
        if earlier:
            parts.insert(0, np.array([row["vector"] for row in earlier], dtype=np.float32))
        vectors = np.concatenate(parts) if parts else np.zeros((0, blip.embedding_dim), dtype=np.float32)
    failed = 0
    for name, err in zip(names, errors, strict=True):
        if err:
            failed += 1
            c.warn_input(name, err)
    tmp = out.with_name(out.name + ".tmp" + out.suffix)  # a kill while writing leaves the old file whole
    if out.suffix == ".npy":
        np.save(tmp, vectors.astype(np.float32))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "name": pa.array(names, pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(vectors.astype(np.float32).ravel()), vectors.shape[1]
                ),
                "error": pa.array(errors, pa.string()),
            }
        )
        pq.write_table(table, tmp)
    tmp.replace(out)
    typer.echo(f"wrote {len(names)} vectors of dimension {vectors.shape[1]} to {out}", err=True)
    if interrupted:
        typer.secho(f"interrupted: {len(names)} vectors kept in {out}; --resume continues", fg="yellow",
                    err=True)
        raise typer.Exit(c.EXIT_INTERRUPTED)
    if failed:
        typer.secho(f"{failed} of {len(names)} inputs failed", fg="yellow", err=True)
    raise typer.Exit(c.EXIT_PARTIAL if failed else c.EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command()(caption)
    app.command()(ask)
    app.command()(match)
    app.command()(embed)
