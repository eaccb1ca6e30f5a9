"""BLIP pre-training (ITC + ITM with hard negatives + LM, plus VQA), the recipe of the built-in model.

Short on purpose: data are tensors (built by ``pretrain_data.py``, see ``tensors.py``), losses live in
``objectives.py``, state in ``checkpointing.py``. The loop runs the same on a CPU and a GPU; it saves
every ``save_every`` steps and resumes from the last save.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from assistant.training import objectives as obj
from assistant.training.checkpointing import load_state, save_state
from assistant.training.config import PretrainConfig
from assistant.training.init_weights import builtin_image_processor, builtin_tokenizer, initial_builtin_model
from assistant.training.pretrain_data import TrainingData, build_data
from assistant.training.rewards import CiderD
from assistant.training.tensors import augment, normalize
from assistant.vision.models import parts
from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel

log = logging.getLogger(__name__)

TRUNK_CACHE_FILE = "trunk_cache.safetensors"


def _param_groups(model: BuiltinBlipModel, config: PretrainConfig) -> list[dict]:
    t = config.train
    trunk = model.vision_model.trunk
    for p in trunk.parameters():
        p.requires_grad = False
    if t.cnn_trainable_blocks > 0:
        for module in [*trunk._blocks[-t.cnn_trainable_blocks :], trunk._conv_head, trunk._bn1]:
            for p in module.parameters():
                p.requires_grad = True
    classifier = getattr(model.vision_model, "classifier", None)
    if classifier is not None:  # the CNN's ImageNet head: fixed, like the trunk it reads
        classifier.requires_grad_(False)
    tags = {id(p) for n, p in model.vision_model.named_parameters() if n.startswith("tag_")}
    if t.freeze_word_embeddings:
        model.text_encoder.embeddings.word_embeddings.weight.requires_grad = False
    pretrained_text = {id(p) for n, p in model.text_encoder.named_parameters() if "crossattention" not in n}
    pretrained_text |= {
        id(p) for n, p in model.text_decoder.bert.named_parameters() if "crossattention" not in n
    }
    cnn = {id(p) for p in trunk.parameters()}
    groups: dict[str, list] = {"text": [], "text_nd": [], "new": [], "new_nd": [], "cnn": [], "tags": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        no_decay = p.dim() < 2 or "LayerNorm" in name or "norm" in name or "embedding" in name
        if id(p) in cnn:
            groups["cnn"].append(p)
        elif id(p) in tags:
            groups["tags"].append(p)
        elif id(p) in pretrained_text:
            groups["text_nd" if no_decay else "text"].append(p)
        else:
            groups["new_nd" if no_decay else "new"].append(p)
    lr = {"text": t.lr, "text_nd": t.lr, "new": t.lr_new, "new_nd": t.lr_new, "cnn": t.lr_cnn,
          "tags": t.lr_tags or t.lr_new}
    return [
        {
            "params": ps,
            "lr": lr[k],
            "base_lr": lr[k],
            "name": k,
            "weight_decay": 0.0 if k.endswith("_nd") or k in ("cnn", "tags") else t.weight_decay,
        }
        for k, ps in groups.items()
        if ps
    ]


def _references(image_rows: torch.Tensor, texts: list[str]) -> dict[int, list[str]]:
    refs: dict[int, list[str]] = {}
    for row, text in zip(image_rows.tolist(), texts, strict=True):
        refs.setdefault(row, []).append(text)
    return refs


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Pretrainer:
    def __init__(self, config: PretrainConfig, data: TrainingData | None = None) -> None:
        self.config = config
        self.out = Path(config.output)
        self.device = _device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        model_config = BuiltinBlipConfig(**config.model)
        if config.init == "pretrained":
            self.model = initial_builtin_model(model_config)
            self.tokenizer = builtin_tokenizer()
        else:
            # float32 master weights whatever the folder stores (the shipped weights are float16)
            self.model = BuiltinBlipModel.from_pretrained(config.init, dtype=torch.float32,
                                                          use_safetensors=True)
            self.tokenizer = builtin_tokenizer(Path(config.init))
            model_config = self.model.config
        self.model_config = model_config
        self.image_processor = builtin_image_processor(model_config)
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, config), betas=(0.9, 0.98))
        self.data = data or build_data(config, self.tokenizer, model_config.image_size)
        if self.device.type == "cuda":  # a few GB of uint8 images: keep them next to the model
            self.data.pixels = self.data.pixels.to(self.device)
        amp = config.train.amp
        use_bf16 = (amp == "bf16") or (amp == "auto" and self.device.type == "cuda")
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
        self.trunk_trainable = config.train.cnn_trainable_blocks > 0
        # A frozen CNN sees every image the same way every epoch: run it once, keep its output.
        self.trunk_cache = None if self.trunk_trainable else self._cache_trunk()
        self.cider = self.val_cider = None  # SCST's reward, and its validation score
        if config.train.loss_scst > 0:
            references = _references(self.data.cap_image, self.data.cap_texts)
            self.cider = CiderD(references)
            self.scst_rows = torch.tensor(sorted(references), dtype=torch.long)
            if len(self.data.val_image):
                self.val_cider = CiderD(_references(self.data.val_image, self.data.val_texts))
        self.clock = time.monotonic  # seconds; the time budget's clock
        self.step = 0
        self.best: float | None = None
        self.history: list[dict] = []

    # --- one step -----------------------------------------------------------------------------
    def _pixels(self, rows: torch.Tensor, train: bool) -> torch.Tensor:
        px = self.data.pixels[rows.to(self.data.pixels.device)].to(self.device, non_blocking=True)
        size = self.model_config.image_size
        if train and self.config.train.augment:
            px = augment(px, size, scale=self.config.train.augment_scale)
        return normalize(px, self.model_config.image_mean, self.model_config.image_std)

    def _trunk_fingerprint(self) -> str:
        """What the frozen CNN's output depends on: its weights and the decoded images."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.model.vision_model.trunk.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        h.update(memoryview(self.data.pixels.cpu().contiguous().view(-1).numpy()))
        return h.hexdigest()

    @torch.no_grad()
    def _cache_trunk(self, batch: int = 64) -> torch.Tensor:
        # The CNN pass over every image costs minutes on a CPU: a run that restarts (a resume, or a
        # recipe continued from its own checkpoint) reuses the saved features when nothing they depend
        # on has changed.
        path = self.out / TRUNK_CACHE_FILE
        fingerprint = self._trunk_fingerprint()
        if path.exists():
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("fingerprint") == fingerprint:
                    log.info("CNN features from %s", path)
                    return f.get_tensor("features").to(self.device)
        trunk = self.model.vision_model.trunk.eval().to(memory_format=torch.channels_last)
        n = len(self.data.pixels)
        out = None
        for start in tqdm(range(0, n, batch), desc="CNN features", leave=False, mininterval=10):
            rows = torch.arange(start, min(start + batch, n))
            pixels = self._pixels(rows, train=False).contiguous(memory_format=torch.channels_last)
            feats = trunk(pixels).to(torch.float16)
            if out is None:
                out = torch.empty((n, *feats.shape[1:]), dtype=torch.float16, device=feats.device)
            out[start : start + len(rows)] = feats
        assert out is not None
        trunk.to(memory_format=torch.contiguous_format)  # saved weights stay in the usual layout
        self.out.mkdir(parents=True, exist_ok=True)
        save_file({"features": out.contiguous().cpu()}, str(path), metadata={"fingerprint": fingerprint})
        return out

    def _image_embeds(self, rows: torch.Tensor, train: bool) -> torch.Tensor:
        if self.trunk_cache is not None:
            feats = self.trunk_cache[rows.to(self.trunk_cache.device)].to(self.device, torch.float32)
            return self.model.vision_model(trunk_features=feats).last_hidden_state
        pixels = self._pixels(rows, train)
        return self.model.vision_model(pixel_values=pixels).last_hidden_state

    def train_step(self) -> dict[str, float]:
        t, d, model = self.config.train, self.data, self.model
        model.train()
        model.vision_model.trunk.eval()  # BatchNorm statistics stay ImageNet's: batches are small
        metrics: dict[str, float] = {}
        loss = torch.zeros((), device=self.device)
        # An objective weighted 0 is not computed at all: a stage that trains only some of them (an SCST
        # stage, say) pays for those alone.
        retrieval = (t.loss_itc > 0 or t.loss_itm > 0) and self.step % t.retrieval_every == 0
        with self.autocast:
            if len(d.cap_image) and (t.loss_lm > 0 or retrieval):
                idx = torch.randint(len(d.cap_image), (t.batch_size,))
                rows = d.cap_image[idx]
                ids, mask = d.cap_tokens.take(idx)
                ids, mask = ids.to(self.device), mask.to(self.device)
                embeds = self._image_embeds(rows, train=True)
                if t.loss_lm > 0:
                    lm = obj.lm_loss(model, embeds, ids, mask, t.label_smoothing)
                    loss = loss + t.loss_lm * lm
                    metrics["lm"] = lm.item()
                if retrieval:
                    image_ids = rows.to(self.device)
                    # ITM mines its hard negatives from the ITC similarities, so ITC runs for either.
                    itc, sim = obj.itc_loss(
                        parts.image_feature(model, embeds),
                        parts.text_feature(model, ids, mask),
                        image_ids,
                        model.itc_temperature,
                    )
                    loss = loss + t.loss_itc * itc
                    metrics["itc"] = itc.item()
                    if t.loss_itm > 0:
                        k = min(t.itm_batch_size or len(idx), len(idx))
                        itm, itm_acc = obj.itm_loss(
                            model, embeds, ids, mask, image_ids, sim.detach(), k, t.itm_random_negatives
                        )
                        loss = loss + t.loss_itm * itm
                        metrics.update(itm=itm.item(), itm_acc=itm_acc.item())
            if self.cider is not None:
                pick = self.scst_rows[torch.randperm(len(self.scst_rows))[: t.scst_images]]
                keys = pick.tolist()
                scst, reward = obj.scst_loss(
                    model,
                    self._image_embeds(pick, train=True),
                    lambda texts, owners: self.cider.scores(texts, [keys[o] for o in owners]),
                    self._decode,
                    t.scst_samples,
                    t.scst_max_tokens,
                    t.scst_top_p,
                    t.scst_temperature,
                )
                loss = loss + t.loss_scst * scst
                metrics.update(scst=scst.item(), reward=reward.item())
            if len(d.vqa_image) and t.loss_vqa > 0:
                idx = torch.randint(len(d.vqa_image), (t.vqa_batch_size,))
                q_ids, q_mask = (x.to(self.device) for x in d.vqa_questions.take(idx))
                a_ids, a_mask = (x.to(self.device) for x in d.vqa_answers.take(idx))
                embeds = self._image_embeds(d.vqa_image[idx], train=True)
                vqa = obj.vqa_loss(model, embeds, q_ids, q_mask, a_ids, a_mask)
                loss = loss + t.loss_vqa * vqa
                metrics["vqa"] = vqa.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        factor = _lr_factor(self.step, t.steps, t.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        self.optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        metrics["loss"] = loss.item()
        return metrics

    def _decode(self, sequences: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)]

    @torch.no_grad()
    def _val_cider(self, batch: int = 64) -> float:
        """CIDEr-D (0-100) of greedy captions of the validation images (the toolkit's CIDEr: the
        frequencies are the validation references')."""
        assert self.val_cider is not None
        text = self.model.config.text_config
        rows = torch.unique(self.data.val_image)
        total = 0.0
        for start in range(0, len(rows), batch):
            pick = rows[start : start + batch]
            embeds = self._image_embeds(pick, train=False)
            seqs = self.model.text_decoder.generate(
                input_ids=torch.full((len(pick), 1), text.bos_token_id, dtype=torch.long, device=self.device),
                encoder_hidden_states=embeds,
                encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=self.device),
                do_sample=False,
                num_beams=1,
                max_new_tokens=self.config.train.scst_max_tokens,
                eos_token_id=text.sep_token_id,
                pad_token_id=text.pad_token_id,
            )
            total += sum(self.val_cider.scores(self._decode(seqs), pick.tolist()))
        return total / len(rows) * 100.0  # as `blip-assistant model eval caption` prints it

    # --- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, batch: int = 128) -> dict[str, float]:
        """Validation LM loss (no smoothing) and ITC recall@1 on the validation captions."""
        d, model = self.data, self.model
        if not len(d.val_image):
            return {}
        model.eval()
        losses, img_feats, txt_feats = [], {}, []
        with self.autocast:
            for start in range(0, len(d.val_image), batch):
                idx = torch.arange(start, min(start + batch, len(d.val_image)))
                rows = d.val_image[idx]
                ids, mask = (x.to(self.device) for x in d.val_tokens.take(idx))
                embeds = self._image_embeds(rows, train=False)
                losses.append(obj.lm_loss(model, embeds, ids, mask, 0.0).item() * len(idx))
                feats = parts.image_feature(model, embeds)
                for r, f in zip(rows.tolist(), feats, strict=True):
                    img_feats[r] = f
                txt_feats.append(parts.text_feature(model, ids, mask))
        images = sorted(img_feats)
        image_matrix = torch.stack([img_feats[r] for r in images])
        texts = torch.cat(txt_feats)
        sim = image_matrix @ texts.t()
        where = {r: i for i, r in enumerate(images)}
        truth = torch.tensor([where[r] for r in d.val_image.tolist()], device=sim.device)
        t2i = (sim.argmax(dim=0) == truth).float().mean().item() * 100
        i2t = (
            truth[sim.argmax(dim=1)] == torch.arange(len(images), device=sim.device)
        ).float().mean().item() * 100
        metrics = {"val_lm": sum(losses) / len(d.val_image), "val_r1_t2i": t2i, "val_r1_i2t": i2t}
        if self.val_cider is not None:
            with self.autocast:
                metrics["val_cider"] = self._val_cider()
        return metrics

    # --- saving -------------------------------------------------------------------------------
    def save_model(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)

    def _score(self, metrics: dict[str, float]) -> float:
        # Lower is better: the caption loss, minus a credit for retrieval (1 R@1 point = 0.01 nats). SCST
        # trades caption loss for CIDEr on purpose, so with it the caption term is CIDEr's (1 point = 0.01).
        retrieval = 0.01 * (metrics["val_r1_t2i"] + metrics["val_r1_i2t"]) / 2
        if "val_cider" in metrics:
            return -0.01 * metrics["val_cider"] - retrieval
        return metrics["val_lm"] - retrieval

    def run(self, resume: bool = True) -> Path:
        t = self.config.train
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1, default=str))
        spent = 0.0  # seconds of training so far, over every session of this run
        if resume and (meta := load_state(self.out, self.model, self.optimizer)):
            self.step, self.best = meta["step"], meta.get("best")
            t.steps = meta.get("steps", t.steps)
            self.history = meta.get("history", [])
            spent = meta.get("spent_s", 0.0)
            log.info("resumed at step %d", self.step)
        session_started = self.clock()
        started = session_started - spent
        bar = tqdm(total=t.steps, initial=self.step, desc="pretrain", unit="step", dynamic_ncols=True)
        running: dict[str, float] = {}
        # Steps differ in cost when ITC/ITM skip some: time whole cycles of `retrieval_every` steps.
        timed = t.retrieval_every * -(-10 // t.retrieval_every)
        window = (self.step, self.clock())  # (step, clock) where the current step-time window began
        while self.step < t.steps:
            metrics = self.train_step()
            self.step += 1
            if self.step == 3 and not spent:
                window = (self.step, self.clock())  # the first steps warm up: leave them out
            first_sizing = self.step == 3 + timed and not spent
            if t.time_budget_s and (first_sizing or self.step % t.eval_every == 1):
                # Size the run, and its cosine schedule, to the time budget; then again after each
                # validation, from the latest steps' pace (validation included), so that a machine that
                # slows down mid-run still finishes within the budget.
                if self.step > window[0]:
                    per_step = (self.clock() - window[1]) / (self.step - window[0])
                    left = t.time_budget_s - (self.clock() - started)
                    t.steps = max(self.step + 1, self.step + int(left / per_step))
                    bar.total = t.steps
                    log.info("%.2f s/step: %d steps fit the %.0f s budget", per_step, t.steps,
                             t.time_budget_s)
                window = (self.step, self.clock())
            if t.time_budget_s and self.step < t.steps and self.clock() - started >= t.time_budget_s:
                # The pace fell further than the last sizing foresaw: this step is the last one, so that
                # the run still ends (validated and saved) within its budget, and a resume finds it done.
                log.warning("time budget spent at step %d of %d: ending the run here", self.step, t.steps)
                t.steps = bar.total = self.step
            bar.update(1)
            for k, v in metrics.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            if self.step % t.log_every == 0:
                bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in running.items() if k in ("loss", "itc", "lm", "vqa", "reward")}
                )
                self.history.append({"step": self.step, **{k: round(v, 4) for k, v in running.items()}})
            out_of_time = t.time_limit_s is not None and self.clock() - session_started > t.time_limit_s
            if self.step % t.eval_every == 0 or self.step == t.steps or out_of_time:
                metrics = self.validate()
                if metrics:
                    metrics["step"] = self.step
                    self.history.append(metrics)
                    log.info("step %d: %s", self.step, metrics)
                    bar.write(f"step {self.step}: " + " ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
                    score = self._score(metrics)
                    if self.best is None or score < self.best:
                        self.best = score
                        self.save_model(self.out / "best")
            if t.save_every and (self.step % t.save_every == 0 or self.step == t.steps or out_of_time):
                save_state(
                    self.out,
                    self.model,
                    self.optimizer,
                    self.step,
                    {"best": self.best, "history": self.history, "steps": t.steps,
                     "spent_s": self.clock() - started},
                )
            if out_of_time:
                log.warning("time limit reached at step %d", self.step)
                break
        bar.close()
        self.save_model(self.out / "last")
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
        return self.out / ("best" if (self.out / "best").exists() else "last")
