"""One benchmark measurement in a process of its own: load one model one way, time its tasks, print JSON.

A fresh process per (model, path) makes its peak resident memory (``ru_maxrss``) that path's alone.
Paths: ``transformers`` (plain transformers code in float32, as the model cards show), ``float32``
(``vision.load(path, fast=False)``), ``fast`` (``vision.load(path, fast=True)``) and
``fast:image=..,text=..`` (a fast-path variant, for the ablation table).

Usage: python -m benchmarks.worker SPEC.json OUT.json
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CAPTION_TOKENS = 20  # min = max: random weights would otherwise stop at a random [SEP]
VQA_TOKENS = 10
TASKS = {
    "caption": ("caption_greedy", "caption_beam3"),
    "itm": ("itc_image", "itc_text", "itm"),
    "vqa": ("vqa",),
    "builtin": ("caption_greedy", "caption_beam3", "itc_image", "itc_text", "itm", "vqa"),
}
TEXT_TASKS = ("itc_text",)  # items are texts, not images


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: on Linux a child's ru_maxrss starts
    at its parent's resident size at fork, which would charge the orchestrator's memory to the worker."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_plan(path: str) -> dict[str, Any]:
    """``fast:image=bf16,text=int8,head=keep,sdpa=0,cross=shared,loader=apply`` -> keyword arguments
    (FastPlan's, plus ``loader``)."""
    plan: dict[str, Any] = {}
    for item in filter(None, path.partition(":")[2].split(",")):
        key, _, value = item.partition("=")
        plan[key] = value not in ("0", "false", "no") if key == "sdpa" else value
    return plan


class Recorder:
    """Wraps a function to keep what it returned (the generated tokens, for the agreement checks)."""

    def __init__(self, fn: Callable[..., Any], pick: Callable[[Any], Any] = lambda out: out) -> None:
        self.fn, self.pick, self.outputs = fn, pick, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.fn(*args, **kwargs)
        self.outputs.append(self.pick(out))
        return out


# --- plain transformers ------------------------------------------------------------------------------
class TransformersPath:
    """The model cards' code: a BlipProcessor and the model's own ``generate``/``forward``, float32."""

    def __init__(self, kind: str, folder: Path) -> None:
        import transformers
        from transformers import BlipProcessor

        name = {
            "caption": "BlipForConditionalGeneration",
            "itm": "BlipForImageTextRetrieval",
            "vqa": "BlipForQuestionAnswering",
        }[kind]
        self.processor = BlipProcessor.from_pretrained(folder)
        self.model = getattr(transformers, name).from_pretrained(folder).eval()

    @staticmethod
    def _images(paths: list[str]) -> list[Any]:
        from PIL import Image

        return [Image.open(p).convert("RGB") for p in paths]

    def caption(self, paths: list[str], beams: int) -> dict[str, Any]:
        inputs = self.processor(images=self._images(paths), return_tensors="pt")
        out = self.model.generate(
            **inputs, num_beams=beams, min_new_tokens=CAPTION_TOKENS, max_new_tokens=CAPTION_TOKENS
        )
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return {"tokens": out.tolist(), "texts": [t.strip() for t in texts]}

    def itc_image(self, paths: list[str]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        inputs = self.processor(images=self._images(paths), return_tensors="pt")
        with torch.no_grad():
            states = self.model.vision_model(pixel_values=inputs["pixel_values"])[0]
            vecs = F.normalize(self.model.vision_proj(states[:, 0, :]), dim=-1)
        return {"vectors": vecs.tolist()}

    def itc_text(self, texts: list[str]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        inputs = self.processor(text=texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            states = self.model.text_encoder(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            )[0]
            vecs = F.normalize(self.model.text_proj(states[:, 0, :]), dim=-1)
        return {"vectors": vecs.tolist()}

    def itm(self, paths: list[str], texts: list[str]) -> dict[str, Any]:
        import torch

        inputs = self.processor(images=self._images(paths), text=texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            scores = self.model(**inputs, use_itm_head=True).itm_score
        return {"scores": torch.softmax(scores, dim=-1)[:, 1].tolist()}

    def vqa(self, paths: list[str], questions: list[str]) -> dict[str, Any]:
        inputs = self.processor(images=self._images(paths), text=questions, padding=True, return_tensors="pt")
        out = self.model.generate(**inputs, num_beams=1, min_new_tokens=VQA_TOKENS, max_new_tokens=VQA_TOKENS)
        return {"texts": [t.strip() for t in self.processor.batch_decode(out, skip_special_tokens=True)]}


class PlainBuiltinPath(TransformersPath):
    """The built-in model has no transformers class of its own: drive its sub-modules with plain
    transformers calls (the same calls BLIP's classes make), float32, no the engine runtime."""

    def __init__(self, kind: str, folder: Path) -> None:
        import torch
        from transformers import BertTokenizerFast
        from transformers.models.blip import BlipImageProcessorPil

        from assistant.vision.models.builtin import BuiltinBlipModel

        self.tokenizer = BertTokenizerFast.from_pretrained(folder)
        self.image_processor = BlipImageProcessorPil.from_pretrained(folder)
        # float32, as the model card's code runs it: the shipped weights are stored in float16
        self.model = BuiltinBlipModel.from_pretrained(folder, dtype=torch.float32).eval()
        self.text = self.model.config.text_config

    def _embeds(self, paths: list[str]) -> Any:
        pixels = self.image_processor(images=self._images(paths), return_tensors="pt")["pixel_values"]
        return self.model.vision_model(pixel_values=pixels)[0]

    def _generate(self, states: Any, mask: Any, beams: int, tokens: int) -> Any:
        import torch

        start = torch.full((states.shape[0], 1), self.text.bos_token_id, dtype=torch.long)
        return self.model.text_decoder.generate(
            input_ids=start,
            encoder_hidden_states=states,
            encoder_attention_mask=mask,
            eos_token_id=self.text.sep_token_id,
            pad_token_id=self.text.pad_token_id,
            num_beams=beams,
            min_new_tokens=tokens,
            max_new_tokens=tokens,
            do_sample=False,
        )

    def _texts(self, texts: list[str]) -> Any:
        return self.tokenizer(texts, padding=True, return_tensors="pt")

    def caption(self, paths: list[str], beams: int) -> dict[str, Any]:
        import torch

        with torch.no_grad():
            states = self._embeds(paths)
            out = self._generate(
                states, torch.ones(states.shape[:-1], dtype=torch.long), beams, CAPTION_TOKENS
            )
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return {"tokens": out.tolist(), "texts": [t.strip() for t in texts]}

    def itc_image(self, paths: list[str]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            vecs = F.normalize(self.model.vision_proj(self._embeds(paths)[:, 0, :]), dim=-1)
        return {"vectors": vecs.tolist()}

    def itc_text(self, texts: list[str]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        enc = self._texts(texts)
        with torch.no_grad():
            states = self.model.text_encoder(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            )[0]
            vecs = F.normalize(self.model.text_proj(states[:, 0, :]), dim=-1)
        return {"vectors": vecs.tolist()}

    def _grounded(self, enc: Any, states: Any) -> Any:
        """The image-grounded text encoder's hidden states (ITM and the VQA question both use it)."""
        import torch

        return self.model.text_encoder(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            encoder_hidden_states=states,
            encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long),
        )[0]

    def itm(self, paths: list[str], texts: list[str]) -> dict[str, Any]:
        import torch

        enc = self._texts(texts)
        with torch.no_grad():
            states = self._embeds(paths)
            hidden = self._grounded(enc, states)
            scores = self.model.itm_head(hidden[:, 0, :])
        return {"scores": torch.softmax(scores, dim=-1)[:, 1].tolist()}

    def vqa(self, paths: list[str], questions: list[str]) -> dict[str, Any]:
        import torch

        enc = self._texts(questions)
        with torch.no_grad():
            states = self._embeds(paths)
            q = self._grounded(enc, states)
            out = self._generate(q, enc["attention_mask"], 1, VQA_TOKENS)
        return {"texts": [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]}


# --- the engine --------------------------------------------------------------------------------------------
class BlipkitPath:
    """``assistant.vision.load`` (float32 or fast) and the public ``Blip`` methods."""

    def __init__(self, folder: Path, path: str) -> None:
        from assistant import vision
        from assistant.vision.tasks import ask, caption

        if path.startswith("fast:"):
            self.blip = _load_fast_variant(folder, parse_plan(path))
        else:
            self.blip = vision.load(str(folder), fast=path == "fast")
        # record the token sequences the tasks generate, for the agreement checks (costs nothing)
        # (captions decode through generate_scored: its first value is the token sequences)
        recorder = Recorder(caption.generate_scored, lambda out: out[0])
        self.caption_generate = caption.generate_scored = recorder
        ask.generate = Recorder(ask.generate)

    def _settings(self, decoding: str, tokens: int) -> Any:
        from assistant.vision.tasks.generation import GenerationSettings

        return GenerationSettings(
            decoding=decoding,
            num_beams=3,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            no_repeat_ngram_size=0,
        )

    def caption(self, paths: list[str], beams: int) -> dict[str, Any]:
        self.caption_generate.outputs.clear()
        settings = self._settings("beam" if beams > 1 else "greedy", CAPTION_TOKENS)
        results = self.blip.caption(paths, settings=settings, batch_size=len(paths))
        tokens = [row for out in self.caption_generate.outputs for row in out.tolist()]
        self.caption_generate.outputs.clear()
        return {"tokens": tokens, "texts": [r.caption for r in results]}

    def itc_image(self, paths: list[str]) -> dict[str, Any]:
        return {"vectors": self.blip.embed_images(paths, batch_size=len(paths)).tolist()}

    def itc_text(self, texts: list[str]) -> dict[str, Any]:
        return {"vectors": self.blip.embed_texts(texts, batch_size=len(texts)).tolist()}

    def itm(self, paths: list[str], texts: list[str]) -> dict[str, Any]:
        feats = self.blip.encode_images(paths, batch_size=len(paths))
        return {"scores": self.blip.match_pairs(feats, texts, batch_size=len(paths)).tolist()}

    def vqa(self, paths: list[str], questions: list[str]) -> dict[str, Any]:
        results = self.blip.ask(
            paths, questions, settings=self._settings("greedy", VQA_TOKENS), batch_size=len(paths)
        )
        return {"texts": [r.answer for r in results]}

    def teacher_forced(self, paths: list[str], reference: list[list[int]]) -> float:
        """Share of positions where this path's next-token argmax, fed the reference's greedy tokens,
        is the reference's token: agreement per step, without one early flip spoiling the rest."""
        import torch

        from assistant.vision.runtime.encoding import encode_images

        ckpt = self.blip.checkpoint
        with torch.inference_mode():
            states = encode_images(ckpt, paths, batch_size=len(paths)).embeds
            ids = torch.tensor(reference)
            logits = ckpt.model.text_decoder(
                input_ids=ids,
                encoder_hidden_states=states,
                encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long),
            ).logits
        return float((logits[:, :-1].argmax(-1) == ids[:, 1:]).float().mean())


def _load_fast_variant(folder: Path, plan: dict[str, Any]) -> Any:
    """A Blip on a fast-path variant (ablation), loaded as vision.load(fast=True) loads the default one."""
    import torch
    from transformers import BertTokenizerFast
    from transformers.models.blip import BlipImageProcessorPil

    from assistant.vision.blip import Blip
    from assistant.vision.runtime.checkpoint import ARCHITECTURES, Checkpoint, read_architecture
    from assistant.vision.runtime.fast import FastPlan, apply_fast, default_plan, load_fast, usable

    architecture = read_architecture(folder)
    cls, tasks = ARCHITECTURES[architecture]
    loader = plan.pop("loader", "stream")
    wanted = FastPlan(**{**default_plan().describe(), **plan})
    if loader == "apply":  # float32 first, then converted in place: what the streaming loader avoids
        model, used = apply_fast(cls.from_pretrained(folder).eval(), wanted), usable(wanted)
    else:
        model, used = load_fast(cls, folder, wanted)
    return Blip(
        Checkpoint(
            name=str(folder),
            path=folder,
            model=model.eval(),
            tokenizer=BertTokenizerFast.from_pretrained(folder),
            image_processor=BlipImageProcessorPil.from_pretrained(folder),
            tasks=tasks,
            device=torch.device("cpu"),
            dtype=torch.float32,
            architecture=architecture,
            extras={"fast": used.describe()},
        )
    )


# --- the measurement ---------------------------------------------------------------------------------------
def task_call(runner: Any, task: str, inputs: dict[str, list[str]]) -> Callable[[], dict[str, Any]]:
    images, texts, questions = inputs["images"], inputs["texts"], inputs["questions"]
    return {
        "caption_greedy": lambda: runner.caption(images, 1),
        "caption_beam3": lambda: runner.caption(images, 3),
        "itc_image": lambda: runner.itc_image(images),
        "itc_text": lambda: runner.itc_text(texts),
        "itm": lambda: runner.itm(images, texts),
        "vqa": lambda: runner.vqa(images, questions),
    }[task]


def count_flops(call: Callable[[], Any]) -> int:
    """FLOPs of one call, counted by torch's FlopCounterMode (with formulas for the fast kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    from assistant.vision.runtime.fast import flop_formulas

    with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as counter:
        call()
    return int(counter.get_total_flops())


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Load, then per task: one warm-up call and ``repeats`` timed calls. Peak memory is read before the
    extra passes (FLOP counting, agreement on more images) so that it is the timed work's alone."""
    import torch

    torch.set_num_threads(int(spec.get("threads", 1)))
    kind, path, folder = spec["kind"], spec["path"], Path(spec["model"])
    started = time.perf_counter()
    if path == "transformers":
        runner: Any = PlainBuiltinPath(kind, folder) if kind == "builtin" else TransformersPath(kind, folder)
    else:
        runner = BlipkitPath(folder, path)
    blip = getattr(runner, "blip", None)
    report: dict[str, Any] = {
        "kind": kind,
        "path": path,
        "load_s": time.perf_counter() - started,
        "rss_after_load_mb": rss_mb(),
        "plan": blip.checkpoint.extras.get("fast") if blip is not None else None,
        "tasks": {},
    }
    inputs = spec["inputs"]
    tasks = spec.get("tasks") or TASKS[kind]
    for task in tasks:
        call = task_call(runner, task, inputs)
        entry: dict[str, Any] = {"items": len(inputs["texts" if task in TEXT_TASKS else "images"])}
        call()  # warm-up: first calls pay for kernel selection and allocation
        seconds = []
        for _ in range(int(spec.get("repeats", 1))):
            t0 = time.perf_counter()
            out = call()
            seconds.append(time.perf_counter() - t0)
        entry["seconds"], entry["outputs"] = seconds, out
        report["tasks"][task] = entry
    report["peak_rss_mb"] = peak_rss_mb()
    if spec.get("flops"):
        for task in tasks:
            report["tasks"][task]["flops"] = count_flops(task_call(runner, task, inputs))
    agreement = spec.get("agreement")
    if agreement and "caption_greedy" in tasks and (path == "transformers" or agreement.get("reference")):
        report["agreement"] = agreement_pass(runner, agreement, len(inputs["images"]))
    return report


def agreement_pass(runner: Any, agreement: dict[str, Any], batch: int) -> dict[str, Any]:
    """Greedy tokens on more images (untimed): the reference's, or this path's plus its teacher-forced
    agreement with the reference's tokens."""
    images, reference = agreement["images"], agreement.get("reference")
    tokens: list[list[int]] = []
    forced: list[float] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        tokens += runner.caption(chunk, 1)["tokens"]
        if reference and isinstance(runner, BlipkitPath):
            weight = len(chunk) / len(images)
            forced.append(weight * runner.teacher_forced(chunk, reference[start : start + batch]))
    out: dict[str, Any] = {"images": len(images), "tokens": tokens}
    if forced:
        out["teacher_forced"] = sum(forced)
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps(measure(spec)))
    return 0


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    sys.exit(main(sys.argv[1:]))
