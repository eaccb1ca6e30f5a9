"""Turn the workers' reports into the results: throughput, ratios, GFLOP/s, memory, agreement, Markdown.

Timings on a shared CPU are noisy, so each round runs every path once, and a path's ratio to plain
transformers is taken within a round (same minute, same neighbours) before the median over rounds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

BASELINE = "transformers"
MODEL_NAMES = {
    "caption": "BLIP-base caption",
    "itm": "BLIP-base ITM/ITC",
    "vqa": "BLIP-base VQA",
    "builtin": "built-in",
}
TASK_NAMES = {
    "caption_greedy": "caption greedy (20 tok)",
    "caption_beam3": "caption beam 3 (20 tok)",
    "itc_image": "ITC image embedding",
    "itc_text": "ITC text embedding",
    "itm": "ITM score",
    "vqa": "VQA (10 tok)",
}
# the issue's targets, at BLIP-base size
TARGETS = {"caption_speedup": 2.5, "itc_image_speedup": 2.0, "peak_rss_mb": 1200.0, "greedy_agreement": 0.95}


def _median(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def _cosines(a: list[list[float]], b: list[list[float]]) -> list[float]:
    out = []
    for u, v in zip(a, b, strict=True):
        nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(x * x for x in v))
        out.append(sum(x * y for x, y in zip(u, v, strict=True)) / (nu * nv) if nu and nv else float("nan"))
    return out


def position_agreement(a: list[list[int]], b: list[list[int]], skip: int = 1) -> float:
    """Share of generated positions (after the ``skip`` start tokens) where two token lists agree."""
    same = total = 0
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x[skip:], y[skip:], strict=False):
            same += p == q
            total += 1
    return same / total if total else float("nan")


def rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, task, path): throughput, ratio to the baseline, GFLOP/s and peak memory."""
    by_key: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    flops: dict[tuple[str, str, str], int] = {}
    rss: dict[tuple[str, str], list[float]] = {}
    order: list[tuple[str, str, str]] = []
    for rep in reports:
        rss.setdefault((rep["kind"], rep["path"]), []).append(rep["peak_rss_mb"])
        for task, entry in rep["tasks"].items():
            key = (rep["kind"], task, rep["path"])
            if key not in by_key:
                order.append(key)
            by_key.setdefault(key, {})[rep["round"]] = entry
            if entry.get("flops"):
                flops[key] = entry["flops"]
    out = []
    for key in order:
        kind, task, path = key
        per_round = {r: e["items"] / min(e["seconds"]) for r, e in by_key[key].items()}
        base = {r: e["items"] / min(e["seconds"]) for r, e in by_key.get((kind, task, BASELINE), {}).items()}
        ratios = [per_round[r] / base[r] for r in per_round if r in base]
        seconds = _median([min(e["seconds"]) for e in by_key[key].values()])
        gflops = flops[key] / seconds / 1e9 if key in flops else float("nan")
        out.append(
            {
                "model": kind,
                "task": task,
                "path": path,
                "items_per_s": _median(list(per_round.values())),
                "speedup": _median(ratios),
                "speedups": ratios,
                "seconds": seconds,
                "gflop": flops.get(key, 0) / 1e9,
                "gflops": gflops,
                "peak_rss_mb": max(rss[(kind, path)]),
                "rounds": len(per_round),
            }
        )
    return out


def agreement(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How closely each path's outputs follow plain transformers' (first round's outputs)."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for rep in sorted(reports, key=lambda r: r["round"]):
        first.setdefault((rep["kind"], rep["path"]), rep)
    out = []
    for (kind, path), rep in first.items():
        base = first.get((kind, BASELINE))
        if path == BASELINE or base is None:
            continue
        row: dict[str, Any] = {"model": kind, "path": path}
        for task, entry in rep["tasks"].items():
            ref = base["tasks"].get(task)
            if ref is None:
                continue
            got, want = entry["outputs"], ref["outputs"]
            if task == "caption_greedy":
                row["greedy_tokens_timed"] = position_agreement(got["tokens"], want["tokens"])
            elif task == "caption_beam3":
                row["beam_captions_equal"] = _share_equal(got["texts"], want["texts"])
            elif task in ("itc_image", "itc_text"):
                row[f"{task}_min_cosine"] = min(_cosines(got["vectors"], want["vectors"]))
            elif task == "itm":
                row["itm_max_abs_diff"] = max(
                    abs(a - b) for a, b in zip(got["scores"], want["scores"], strict=True)
                )
            elif task == "vqa":
                row["vqa_answers_equal"] = _share_equal(got["texts"], want["texts"])
        mine, theirs = rep.get("agreement"), base.get("agreement")
        if mine and theirs and mine.get("tokens") and theirs.get("tokens"):
            row["greedy_tokens"] = position_agreement(mine["tokens"], theirs["tokens"])
            row["greedy_teacher_forced"] = mine.get("teacher_forced", float("nan"))
            row["agreement_images"] = mine["images"]
        elif "greedy_tokens_timed" in row:
            row["greedy_tokens"] = row["greedy_tokens_timed"]
        out.append(row)
    return out


def ablation(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fast-path variants, each against the ``fast`` run next to it (its ``round`` is ``ablation-<i>``)."""
    references = {
        r["kind"]: r["agreement"]["tokens"]
        for r in reports
        if r["path"] == BASELINE and (r.get("agreement") or {}).get("tokens")
    }
    pairs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for rep in reports:
        if isinstance(rep["round"], str) and rep["round"].startswith("ablation-"):
            pairs.setdefault((rep["kind"], rep["round"]), {})[rep["path"]] = rep
    out = []
    for (kind, _), pair in pairs.items():
        fast = pair.get("fast")
        variant = next((p for p in pair if p != "fast"), None)
        if fast is None or variant is None:
            continue
        rep = pair[variant]
        for task, entry in rep["tasks"].items():
            mine = entry["items"] / min(entry["seconds"])
            theirs = fast["tasks"].get(task)
            row: dict[str, Any] = {
                "model": kind,
                "variant": variant,
                "task": task,
                "items_per_s": mine,
                "vs_fast": mine / (theirs["items"] / min(theirs["seconds"])) if theirs else float("nan"),
                "peak_rss_mb": rep["peak_rss_mb"],
                "fast_peak_rss_mb": fast["peak_rss_mb"],
            }
            agreement = rep.get("agreement") or {}
            if task == "caption_greedy" and agreement.get("tokens") and kind in references:
                row["greedy_tokens"] = position_agreement(agreement["tokens"], references[kind])
                row["greedy_teacher_forced"] = agreement.get("teacher_forced", float("nan"))
            out.append(row)
    return out


def _share_equal(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else float("nan")


def targets(table: list[dict[str, Any]], agree: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's acceptance figures for the fast path at BLIP-base size."""

    def row(model: str, task: str) -> dict[str, Any] | None:
        return next((r for r in table if (r["model"], r["task"], r["path"]) == (model, task, "fast")), None)

    found: dict[str, Any] = {}
    for task in ("caption_greedy", "caption_beam3"):
        r = row("caption", task)
        if r:
            found[f"{task}_speedup"] = r["speedup"]
    r = row("itm", "itc_image")
    if r:
        found["itc_image_speedup"] = r["speedup"]
    fast_rss = [r["peak_rss_mb"] for r in table if r["path"] == "fast" and r["model"] != "builtin"]
    if fast_rss:
        found["fast_peak_rss_mb"] = max(fast_rss)
    for a in agree:
        if (a["model"], a["path"]) == ("caption", "fast"):
            found["greedy_agreement"] = a.get("greedy_tokens")
            found["greedy_teacher_forced"] = a.get("greedy_teacher_forced")
    checks = {
        "caption_speedup": min(found.get("caption_greedy_speedup", 0), found.get("caption_beam3_speedup", 0))
        >= TARGETS["caption_speedup"],
        "itc_image_speedup": found.get("itc_image_speedup", 0) >= TARGETS["itc_image_speedup"],
        "peak_rss_mb": found.get("fast_peak_rss_mb", math.inf) <= TARGETS["peak_rss_mb"],
        # per position: the fast path's next token given the same prefix (a flip does not spoil the rest)
        "greedy_agreement": (found.get("greedy_teacher_forced") or 0) >= TARGETS["greedy_agreement"],
    }
    return {"values": found, "met": checks}


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown: the main table, agreement, targets, and the ablation if any."""
    m = result["machine"]
    lines = [
        f"# the engine CPU benchmark ({result['mode']})",
        "",
        f"{m['cpu']}, {m['threads']} thread(s); torch {m['torch']}, transformers {m['transformers']}. "
        f"Measured matmul peak: **{_fmt(result['peak_gflops']['float32'])} GFLOP/s fp32**, "
        f"{_fmt(result['peak_gflops']['bfloat16'])} GFLOP/s bf16. "
        f"{result['inputs']['images']} images per call (batch = all), "
        f"{result['rounds']} interleaved round(s); "
        f"{result['date']}.",
        "",
        "| model | task | path | items/s | × transformers | GFLOP/s | % fp32 peak | peak RSS (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    peak = result["peak_gflops"]["float32"]
    for r in result["table"]:
        lines.append(
            f"| {MODEL_NAMES.get(r['model'], r['model'])} | {TASK_NAMES.get(r['task'], r['task'])} "
            f"| {r['path']} "
            f"| {_fmt(r['items_per_s'], 2)} | {_fmt(r['speedup'], 2)} | {_fmt(r['gflops'])} "
            f"| {_fmt(100 * r['gflops'] / peak if peak else float('nan'), 0)} | {_fmt(r['peak_rss_mb'], 0)} |"
        )
    lines += [
        "",
        "## Agreement with plain transformers (fp32)",
        "",
        "| model | path | greedy tokens (free-running) | greedy next token (teacher-forced) "
        "| beam-3 captions equal | ITC image cos (min) | ITC text cos (min) | ITM max abs diff "
        "| VQA answers equal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in result["agreement"]:
        lines.append(
            f"| {MODEL_NAMES.get(a['model'], a['model'])} | {a['path']} | {_fmt(a.get('greedy_tokens'), 3)} "
            f"| {_fmt(a.get('greedy_teacher_forced'), 3)} | {_fmt(a.get('beam_captions_equal'), 2)} "
            f"| {_fmt(a.get('itc_image_min_cosine'), 4)} | {_fmt(a.get('itc_text_min_cosine'), 4)} "
            f"| {_fmt(a.get('itm_max_abs_diff'), 4)} | {_fmt(a.get('vqa_answers_equal'), 2)} |"
        )
    t = result.get("targets")
    if t and t["values"]:
        v = t["values"]
        lines += ["", "## Targets (fast path, BLIP-base)", ""]
        lines.append(
            f"- caption ≥ {TARGETS['caption_speedup']}× transformers: greedy "
            f"{_fmt(v.get('caption_greedy_speedup'), 2)}×, beam 3 {_fmt(v.get('caption_beam3_speedup'), 2)}× "
            f"— {'met' if t['met']['caption_speedup'] else 'NOT met'}"
        )
        lines.append(
            f"- ITC image embedding ≥ {TARGETS['itc_image_speedup']}×: "
            f"{_fmt(v.get('itc_image_speedup'), 2)}× "
            f"— {'met' if t['met']['itc_image_speedup'] else 'NOT met'}"
        )
        lines.append(
            f"- peak RSS ≤ {TARGETS['peak_rss_mb']:.0f} MB: {_fmt(v.get('fast_peak_rss_mb'), 0)} MB "
            f"— {'met' if t['met']['peak_rss_mb'] else 'NOT met'}"
        )
        lines.append(
            f"- greedy tokens agree with fp32 on ≥ {TARGETS['greedy_agreement']:.0%} of positions: "
            f"{_fmt(v.get('greedy_teacher_forced'), 3)} per position (teacher-forced) "
            f"— {'met' if t['met']['greedy_agreement'] else 'NOT met'}; "
            f"{_fmt(v.get('greedy_agreement'), 3)} of positions in free-running greedy captions"
        )
    if result.get("ablation"):
        lines += [
            "",
            "## Fast-path variants (each timed next to `fast`, same minute)",
            "",
            "| model | variant | task | items/s | × fast | peak RSS (MB) | fast's peak RSS (MB) "
            "| greedy next token (teacher-forced) | greedy tokens (free-running) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for a in result["ablation"]:
            lines.append(
                f"| {MODEL_NAMES.get(a['model'], a['model'])} | `{a['variant']}` "
                f"| {TASK_NAMES.get(a['task'], a['task'])} | {_fmt(a['items_per_s'], 2)} "
                f"| {_fmt(a['vs_fast'], 2)} | {_fmt(a['peak_rss_mb'], 0)} | {_fmt(a['fast_peak_rss_mb'], 0)} "
                f"| {_fmt(a.get('greedy_teacher_forced'), 3)} | {_fmt(a.get('greedy_tokens'), 3)} |"
            )
    if result.get("decode"):
        d = result["decode"]
        lines += [
            "",
            f"Image decoding + preprocessing alone: {_fmt(d['images_per_s'], 1)} images/s "
            f"({d['model']} processor).",
        ]
    return "\n".join(lines) + "\n"
