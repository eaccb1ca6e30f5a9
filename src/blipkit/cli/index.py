"""Commands of the index area: ``index add|prune|stats``, ``search``, ``tag``, ``moderate`` and ``alt-text``.

Heavy imports (torch, LanceDB) happen inside the commands so that ``blipkit --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from blipkit import defaults
from blipkit.cli import common as c

DbOption = typer.Option(..., "--db", help="The index: a folder (created by `index add`).")


def _generation(decoding: str, num_beams: int, max_new_tokens: int):
    from blipkit.tasks.generation import GenerationSettings

    try:
        return GenerationSettings(decoding=decoding, num_beams=num_beams,  # type: ignore[arg-type]
                                  max_new_tokens=max_new_tokens)
    except ValueError as exc:
        raise c.fail(str(exc)) from exc


def _open(blip: Any, db: Path, create: bool):
    from blipkit.errors import BlipkitError
    from blipkit.index import open_for

    try:
        return open_for(blip, str(db), create=create)
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, default=str))
        return
    for key, value in data.items():
        if isinstance(value, list | dict) and not value:
            continue
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        typer.echo(f"{key}: {shown}")


# --- index ------------------------------------------------------------------------------------------
index_app = typer.Typer(help="Build and maintain a persistent image index (LanceDB, on disk).",
                        no_args_is_help=True)


@index_app.command("add")
def index_add(
    paths: list[str] = typer.Argument(..., help="Folders (recursive), globs, image files or @list.txt."),
    db: Path = DbOption, model: str = c.IndexModelOption, device: str = c.DeviceOption,
    dtype: str = c.DtypeOption, threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption, batch_size: int = c.BatchOption,
    commit_every: int = typer.Option(defaults.INDEX_COMMIT_EVERY, "--commit-every", min=1,
                                     help="Images per atomic write: the most a crash can cost."),
    decoding: str = c.DecodingOption, num_beams: int = c.NumBeamsOption,
    max_new_tokens: int = c.MaxNewTokensOption,
    n_tags: int = typer.Option(defaults.INDEX_TAGS, "--tags", min=0, help="Tags stored per image."),
    as_json: bool = c.JsonOption, progress: bool = c.ProgressOption,
) -> None:
    """Index images: caption, ITC embedding, size and tags of each new or changed file.

    Re-running skips files whose path, size and mtime are unchanged, reuses the results of files whose
    content is already indexed, and resumes a run that was interrupted. Exit code 2 if some images failed.
    """
    from blipkit.index import add_images

    settings = _generation(decoding, num_beams, max_new_tokens)
    blip = c.load_model(c.index_model(db, model), device, dtype, threads, fast, task="itc")
    for task in ("caption",):
        if task not in blip.tasks:
            raise c.fail(f"{blip.checkpoint.name} cannot {task}; an index needs a model with caption and "
                         "ITC heads (e.g. builtin)")
    index = _open(blip, db, create=True)
    from tqdm import tqdm

    bar = tqdm(total=0, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        report = add_images(index, blip, paths, settings=settings, batch_size=batch_size,
                            commit_every=commit_every, n_tags=n_tags, progress=bar.update,
                            on_total=lambda n: setattr(bar, "total", n) or bar.refresh())
    finally:
        bar.close()
    for path, error in report.errors:
        typer.secho(error if error.startswith(path) else f"{path}: {error}", fg="yellow", err=True)
    for item in report.not_found:
        typer.secho(f"{item}: not a local file (skipped)", fg="yellow", err=True)
    data = report.to_dict()
    data.pop("errors")
    data["images"] = index.count()
    _print(data, as_json)
    raise typer.Exit(c.EXIT_PARTIAL if report.failed or report.not_found else c.EXIT_OK)


@index_app.command("prune")
def index_prune(
    db: Path = DbOption,
    under: list[str] = typer.Option(None, "--under", help="Only check files under these folders."),
    as_json: bool = c.JsonOption,
) -> None:
    """Remove the rows of files that no longer exist."""
    from blipkit.errors import BlipkitError
    from blipkit.index import ImageIndex, prune

    try:
        index = ImageIndex.open(db)
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc
    gone = prune(index, under=under or None)
    _print({"removed": len(gone), "paths": gone, "images": index.count()}, as_json)


@index_app.command("stats")
def index_stats(db: Path = DbOption, as_json: bool = c.JsonOption) -> None:
    """What an index holds: counts, sizes, its model and its secondary indexes."""
    from blipkit.errors import BlipkitError
    from blipkit.index import ImageIndex

    try:
        stats = ImageIndex.open(db).stats()
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc
    if not as_json:
        stats.pop("fingerprint")
    _print(stats, as_json)


# --- search -----------------------------------------------------------------------------------------
def search(
    query: str = typer.Argument(None, help='What to look for, e.g. "a dog on a beach".'),
    db: Path = DbOption,
    k: int = typer.Option(defaults.SEARCH_K, "-k", "--k", min=1, help="How many results."),
    image: str = typer.Option(None, "--image", help="Query by example image (with or without text)."),
    rerank: bool = typer.Option(False, "--rerank", help="Re-order the best candidates by ITM."),
    rerank_top: int = typer.Option(defaults.RERANK_CANDIDATES, "--rerank-top", min=1,
                                   help="Candidates --rerank re-scores."),
    hybrid: bool = typer.Option(True, "--hybrid/--no-hybrid", help="Fuse full-text matches on captions."),
    text_weight: float = typer.Option(
        defaults.HYBRID_TEXT_WEIGHT, "--text-weight", min=0.0,
        help="Weight of the full-text ranking in the fusion; the vector ranking's is 1 (docs/search.md)."),
    path_prefix: str = typer.Option(None, "--path-prefix", help="Only files under this path prefix."),
    min_width: int = typer.Option(None, "--min-width"), max_width: int = typer.Option(None, "--max-width"),
    min_height: int = typer.Option(None, "--min-height"),
    max_height: int = typer.Option(None, "--max-height"),
    tag: list[str] = typer.Option(None, "--tag", help="Only images with this stored tag (repeatable: all)."),
    model: str = c.IndexModelOption, device: str = c.DeviceOption, dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption, as_json: bool = c.JsonOption, out: Path = c.OutOption,
) -> None:
    """Search an index by text and/or example image: ITC nearest neighbours, fused with full-text
    matches on the stored captions, optionally re-ranked by ITM."""
    from blipkit.errors import BlipkitError
    from blipkit.index import SearchFilters
    from blipkit.index import search as run_search

    c.check_out(out)
    if query is None and image is None:
        raise c.fail("give a text query, --image EXAMPLE, or both")
    blip = c.load_model(c.index_model(db, model), device, dtype, threads, fast, task="itc")
    index = _open(blip, db, create=False)
    filters = SearchFilters(path_prefix, min_width, max_width, min_height, max_height, tuple(tag or ()))
    try:
        hits = run_search(index, blip, query, image=image, k=k, hybrid=hybrid, text_weight=text_weight,
                          rerank=rerank, rerank_candidates=rerank_top, filters=filters)
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc
    writer = c.ResultWriter(out, as_json,
                            lambda r: f"{r['rank']:>3}  {r['score']:.4f}  {r['path']}\t{r['caption']}")
    for hit in hits:
        row = hit.to_dict()
        row["image"] = row["path"]  # the key ResultWriter reports errors by
        writer.write(row)
    if not hits:
        typer.secho("no results", fg="yellow", err=True)
    raise typer.Exit(writer.close())


# --- tag --------------------------------------------------------------------------------------------
def tag(
    paths: list[str] = typer.Argument(..., help="Images, folders (recursive), globs, URLs or @list.txt."),
    labels: Path = typer.Option(None, "--labels", help="Vocabulary: one label per line (default: built-in)."),
    k: int = typer.Option(None, "-k", "--k", min=1, help=f"Top tags per image (default {defaults.TAG_TOP_K}, "
                          "or all above --threshold)."),
    threshold: float = typer.Option(None, "--threshold", help="Only tags scoring at least this."),
    itm: bool = typer.Option(False, "--itm", help="Re-score the best ITC tags with the ITM head."),
    prompt: str = typer.Option(defaults.TAG_PROMPT, "--prompt", help="Prompt template with {label}."),
    model: str = c.ModelOption, device: str = c.DeviceOption, dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption, batch_size: int = c.BatchOption, as_json: bool = c.JsonOption,
    out: Path = c.OutOption, progress: bool = c.ProgressOption,
) -> None:
    """Zero-shot tags with scores (ITC softmax over the vocabulary, or ITM probabilities with --itm)."""
    from blipkit.errors import BlipkitError
    from blipkit.io import expand_sources
    from blipkit.tasks import tags as tags_task

    c.check_out(out)
    try:
        vocab = tags_task.read_labels(labels)
        label_prompts = tags_task.prompts(vocab, prompt)
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc
    sources = expand_sources(paths)
    if not sources:
        raise c.fail("no images found in " + " ".join(paths))
    blip = c.load_model(model, device, dtype, threads, fast, task="itm" if itm else "itc")
    vectors = tags_task.text_matrix(blip.checkpoint, label_prompts)
    top = k if k is not None else (None if threshold is not None else defaults.TAG_TOP_K)
    writer = c.ResultWriter(out, as_json, lambda r: f"{r['image']}\t" + ", ".join(
        f"{name} ({score:.2f})" for name, score in r["tags"]))
    with c.progress_bar(len(sources), progress) as advance:
        for chunk in c.chunks(sources, batch_size):
            features = blip.encode_images(chunk, batch_size=batch_size)
            for result in tags_task.tag_features(blip.checkpoint, features, vocab, k=top, threshold=threshold,
                                                 itm=itm, template=prompt, label_vectors=vectors):
                row = result.to_dict()
                row["tags"] = [[name, round(score, 6)] for name, score in result.tags]
                writer.write(row)
            advance(len(chunk))
    raise typer.Exit(writer.close())


# --- moderate ---------------------------------------------------------------------------------------
class _DefaultCheckGroup(TyperGroup):
    """``blipkit moderate PATH...`` runs ``moderate check PATH...``; ``moderate calibrate`` is the other
    sub-command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


moderate_app = typer.Typer(
    cls=_DefaultCheckGroup, no_args_is_help=True,
    help="Flag images by a policy of zero-shot categories (`moderate PATH... --policy P`), or calibrate "
         "a policy's thresholds on labelled images (`moderate calibrate`).",
)
PolicyOption = typer.Option(..., "--policy", help="Policy YAML: categories with positive/negative prompts.")


def _policy(path: Path):
    from blipkit.errors import BlipkitError
    from blipkit.tasks.moderation import Policy

    try:
        return Policy.load(path)
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc


@moderate_app.command("check")
def moderate_check(
    paths: list[str] = typer.Argument(..., help="Images, folders (recursive), globs, URLs or @list.txt."),
    policy: Path = PolicyOption,
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Caption each image to explain."),
    model: str = c.ModelOption, device: str = c.DeviceOption, dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption, batch_size: int = c.BatchOption, as_json: bool = c.JsonOption,
    out: Path = c.OutOption, progress: bool = c.ProgressOption,
) -> None:
    """Score images against every category of the policy; report the flagged ones with the caption."""
    from blipkit.io import expand_sources
    from blipkit.tasks.moderation import moderate_features

    c.check_out(out)
    pol = _policy(policy)
    sources = expand_sources(paths)
    if not sources:
        raise c.fail("no images found in " + " ".join(paths))
    blip = c.load_model(model, device, dtype, threads, fast, task="itm" if pol.method == "itm" else "itc")

    def human(r: dict[str, Any]) -> str:
        flagged = ", ".join(f"{n} ({r['scores'][n]:.2f})" for n in r["flagged"]) or "ok"
        return f"{r['image']}\t{flagged}" + (f"\t{r['caption']}" if r.get("caption") else "")

    writer = c.ResultWriter(out, as_json, human)
    with c.progress_bar(len(sources), progress) as advance:
        for chunk in c.chunks(sources, batch_size):
            features = blip.encode_images(chunk, batch_size=batch_size)
            for result in moderate_features(blip.checkpoint, features, pol, explain=explain):
                writer.write(result.to_dict())
            advance(len(chunk))
    raise typer.Exit(writer.close())


@moderate_app.command("calibrate")
def moderate_calibrate(
    policy: Path = PolicyOption,
    labelled: Path = typer.Option(..., "--labelled", help='JSONL: {"image": PATH, "categories": [...]}.'),
    target_precision: float = typer.Option(defaults.CALIBRATION_TARGET_PRECISION, "--target-precision",
                                           min=0.0, max=1.0),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the calibrated policy (YAML)."),
    model: str = c.ModelOption, device: str = c.DeviceOption, dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption, batch_size: int = c.BatchOption, as_json: bool = c.JsonOption,
) -> None:
    """Pick each category's threshold from labelled images: the most recall at the target precision."""
    from blipkit.errors import BlipkitError
    from blipkit.tasks.moderation import calibrate, category_scores, read_labelled

    pol = _policy(policy)
    c.check_writable(out)  # written once every labelled image is scored
    try:
        rows = read_labelled(labelled)
    except BlipkitError as exc:
        raise c.fail(str(exc)) from exc
    unknown = sorted({name for _, cats in rows for name in cats} - {cat.name for cat in pol.categories})
    if unknown:
        typer.secho(f"labels not in the policy (ignored): {', '.join(unknown)}", fg="yellow", err=True)
    blip = c.load_model(model, device, dtype, threads, fast, task="itm" if pol.method == "itm" else "itc")
    scores: list[dict[str, float]] = []
    labels: list[set[str]] = []
    for chunk in c.chunks(rows, batch_size):
        features = blip.encode_images([image for image, _ in chunk], batch_size=batch_size)
        for (image, cats), s, i in zip(chunk, category_scores(blip.checkpoint, features, pol),
                                       range(len(chunk)), strict=True):
            if i in features.errors:
                c.warn_input(image, f"{features.errors[i]} (left out)")
                continue
            scores.append(s)
            labels.append(cats)
    if not scores:
        raise c.fail("none of the labelled images could be read")
    calibrated = calibrate(pol, scores, labels, target_precision)
    out.parent.mkdir(parents=True, exist_ok=True)
    calibrated.save(out)
    for cat in calibrated.categories:
        info = cat.calibration or {}
        row = {"category": cat.name, "threshold": cat.threshold, **info}
        if as_json:
            typer.echo(json.dumps(row))
        else:
            met = "" if info.get("target_met") else "  (target precision NOT reached)"
            typer.echo(f"{cat.name}\tthreshold {cat.threshold:.4f}\tprecision {info.get('precision')}\t"
                       f"recall {info.get('recall')}\tpositives {info.get('support')}{met}")
    typer.echo(f"wrote {out}", err=True)


# --- alt-text ---------------------------------------------------------------------------------------
def alt_text(
    documents: list[Path] = typer.Argument(..., help="HTML (.html, .htm) or Markdown (.md) files."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the result here (one document only)."),
    in_place: bool = typer.Option(False, "--in-place", "-i", help="Rewrite the documents in place."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing alt text too."),
    root: Path = typer.Option(None, "--root", help="Site root for /absolute image paths (default: the "
                              "document's folder)."),
    decoding: str = c.DecodingOption, num_beams: int = c.NumBeamsOption,
    max_new_tokens: int = c.MaxNewTokensOption,
    model: str = c.ModelOption, device: str = c.DeviceOption, dtype: str = c.DtypeOption,
    threads: int = c.ThreadsOption,
    fast: bool | None = c.FastOption, batch_size: int = c.BatchOption, as_json: bool = c.JsonOption,
) -> None:
    """Fill missing or empty alt text of local and inline (data:) images with captions, changing nothing
    else.

    Without --out or --in-place the new document goes to stdout. What happened to each image (filled,
    kept, remote, not-image, missing, failed) is reported on stderr, or as JSON lines on stdout with --json
    (which then needs --out or --in-place).
    """
    from blipkit import alttext

    if out is not None and in_place:
        raise c.fail("give --out or --in-place, not both")
    if out is not None and len(documents) != 1:
        raise c.fail("--out takes one document; use --in-place for several")
    if len(documents) > 1 and not in_place:
        raise c.fail("several documents need --in-place")
    if as_json and out is None and not in_place:
        raise c.fail("--json prints the report on stdout: give --out or --in-place for the document")
    kinds = {}
    for doc in documents:
        try:
            kinds[doc] = alttext.document_kind(doc)
        except ValueError as exc:
            raise c.fail(str(exc)) from exc
        if not doc.is_file():
            raise c.fail(f"{doc}: no such file")
    settings = _generation(decoding, num_beams, max_new_tokens)
    state: dict[str, Any] = {}

    def describe(images: list[Path | bytes]) -> dict[Path | bytes, str | Exception]:
        if "blip" not in state:
            state["blip"] = c.load_model(model, device, dtype, threads, fast, task="caption")
        inputs = [str(x) if isinstance(x, Path) else x for x in images]  # bytes: an inline image
        results = state["blip"].caption(inputs, settings=settings, batch_size=batch_size)
        return {x: (r.caption if r.ok else Exception(r.error)) for x, r in zip(images, results, strict=True)}

    problems = 0
    for doc in documents:
        raw = doc.read_bytes()
        text = raw.decode("utf-8", "surrogateescape")  # undecodable bytes survive the round trip
        new_text, report = alttext.fill_alt_text(text, kinds[doc], describe, doc_dir=doc.parent.resolve(),
                                                 root=root.resolve() if root else None, overwrite=overwrite,
                                                 document=str(doc))
        problems += report.count("failed") + report.count("missing")
        for row in report.rows:
            if as_json:
                typer.echo(json.dumps(row, ensure_ascii=False))
            else:
                detail = row.get("alt") or row.get("reason") or row.get("error") or row.get("path") or ""
                where = f"{doc}:{row.get('line', '?')}"
                typer.echo(f"{where}: {row['action']}: {row.get('src', '')} {detail}".rstrip(), err=True)
        data = new_text.encode("utf-8", "surrogateescape")
        if in_place:
            if data != raw:
                _replace_file(doc, data)
        elif out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    raise typer.Exit(c.EXIT_PARTIAL if problems else c.EXIT_OK)


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, keeping its permissions."""
    import tempfile

    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def register(app: typer.Typer) -> None:
    """Register this area's commands on the main app."""
    app.add_typer(index_app, name="index")
    app.command()(search)
    app.command()(tag)
    app.add_typer(moderate_app, name="moderate")
    app.command("alt-text")(alt_text)
