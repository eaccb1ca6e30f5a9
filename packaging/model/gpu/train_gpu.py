"""GPU side of the built-in model's training run (see make_pack.py for the packing side).

Stages: ``unpack PART`` splits a packed part into files under /tmp/bk; ``train --budget S [--smoke]`` runs
the assistant's own pre-training loop (resources/models/builtin/recipe.yaml) sized to the time budget
and writes the
best weights, as float16 files of at most 15 MiB, to $OUT. Back on the CPU machine, ``assemble RETURNED
MODEL_DIR`` rebuilds a loadable model folder from those files and the initial weights (which ``unpack
.gpu/part1`` makes there too), ready for ``blip-assistant model eval`` and ``install_builtin``.
packaging/model/gpu/README.md
has the whole sequence of device calls.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "src"))
WORK = Path("/tmp/bk")
DATA = WORK / "data"


def unpack(part: Path) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for index in part.glob("*.json"):
        blob = (part / (index.stem + ".bin")).read_bytes()
        for name, offset, size in json.loads(index.read_text()):
            out = DATA / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(blob[offset : offset + size])
    for gz in part.glob("*.gz"):
        (DATA / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    if (part / "init_q.safetensors").exists():
        make_init(part)
    print("unpacked", part, sum(1 for _ in DATA.rglob("*.webp")), "images", flush=True)


def make_init(part: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from assistant.training.init_weights import builtin_image_processor
    from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel

    torch.manual_seed(0)
    config = BuiltinBlipConfig.from_pretrained(part / "init_config")
    model = BuiltinBlipModel(config)
    packed = load_file(str(part / "init_q.safetensors"))
    state = {}
    for key, value in packed.items():
        if key.endswith("::s"):
            continue
        if key.endswith("::q"):
            name = key[:-3]
            scale = packed[name + "::s"].float()
            state[name] = (value.float().reshape(value.shape[0], -1) * scale[:, None]).reshape(value.shape)
        else:
            state[key] = value
    _missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    for enc_layer, dec_layer in zip(
        model.text_encoder.encoder.layer, model.text_decoder.bert.encoder.layer, strict=True
    ):
        dec_layer.attention.load_state_dict(enc_layer.attention.state_dict())
    model.tie_weights()
    model.save_pretrained(WORK / "init")
    from transformers import BertTokenizerFast

    BertTokenizerFast.from_pretrained(part / "init_config").save_pretrained(WORK / "init")
    builtin_image_processor(config).save_pretrained(WORK / "init")


def export(folder: Path, out: Path, limit_mb: int = 15) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    files, current, size = [], {}, 0
    for name in sorted(state):
        if name == "text_encoder.embeddings.word_embeddings.weight":
            continue  # frozen: rebuilt from the same int8 init on the other side
        t = state[name]
        t = t.half() if t.is_floating_point() else t
        if size + t.numel() * t.element_size() > limit_mb * 2**20 and current:
            files.append(current)
            current, size = {}, 0
        current[name] = t.contiguous()
        size += t.numel() * t.element_size()
    files.append(current)
    for i, f in enumerate(files):
        save_file(f, str(out / f"w_{i}.safetensors"))
    del torch


def assemble(returned: Path, target: Path) -> None:
    """A model folder from the trained weights a GPU run sent back plus the initial ones it left out."""
    import torch
    from safetensors.torch import load_file

    from assistant.vision.models.builtin import BuiltinBlipModel

    if not (WORK / "init" / "config.json").is_file():
        raise SystemExit(f"no initial weights at {WORK / 'init'}: run `unpack .gpu/part1` here first")
    model = BuiltinBlipModel.from_pretrained(WORK / "init", dtype=torch.float32, use_safetensors=True)
    trained: dict[str, torch.Tensor] = {}
    for file in sorted(returned.glob("w_*.safetensors")):
        for name, tensor in load_file(str(file)).items():
            trained[name] = tensor.float() if tensor.is_floating_point() else tensor
    if not trained:
        raise SystemExit(f"{returned} holds no w_*.safetensors")
    _missing, unexpected = model.load_state_dict(trained, strict=False)
    if unexpected:
        raise SystemExit(f"weights the model does not have: {unexpected[:5]}")
    left_out = {n for n in model.state_dict() if n not in trained}
    stale = sorted(n for n in left_out if "word_embeddings" not in n and not n.startswith("text_decoder."))
    if stale:  # the decoder's shared tensors come back under the encoder's names
        print(f"note: {len(stale)} tensors keep their initial values, e.g. {stale[:3]}", flush=True)
    model.tie_weights()
    model.save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        (target / name).write_bytes((WORK / "init" / name).read_bytes())
    print("assembled", target, flush=True)


def train(budget: float, smoke: bool, batch: int) -> None:
    import torch

    from assistant.training.config import DataSource, load_config
    from assistant.training.pretrain import Pretrainer

    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    started = time.monotonic()
    config = load_config(ROOT / "resources" / "models" / "builtin" / "recipe.yaml")
    config.output = str(WORK / ("smoke" if smoke else "run"))
    config.init = str(WORK / "init")
    captions = str(DATA / "captions.json")
    config.data.captions = [
        DataSource(path=captions, split="val" if smoke else "train", image_root=str(DATA))
    ]
    config.data.val_captions = DataSource(
        path=captions, split="val", image_root=str(DATA), limit=200 if smoke else None
    )
    config.data.vqa = [
        DataSource(path=str(DATA / "daquar.jsonl"), image_root=str(DATA)),
        DataSource(path=str(DATA / "easyvqa.jsonl"), image_root=str(DATA), limit=12000),
    ]
    t = config.train
    t.decode_workers = 16
    t.save_every = 0
    t.eval_every = 25 if smoke else 250
    t.batch_size, t.vqa_batch_size = batch, batch // 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    trainer = Pretrainer(config)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    print(f"setup {time.monotonic() - started:.1f}s", flush=True)
    # measure the step time, then size the run (and its cosine schedule) to the budget
    for _ in range(5):
        trainer.train_step()
        trainer.step += 1
    sync()
    t0 = time.monotonic()
    for _ in range(15):
        trainer.train_step()
        trainer.step += 1
    sync()
    step_s = (time.monotonic() - t0) / 15
    left = budget - (time.monotonic() - started) - 45  # validation, saving and export
    t.steps = max(trainer.step + 10, int(left / (step_s * 1.04)))
    t.time_limit_s = left
    print(f"step {step_s * 1000:.0f} ms -> {t.steps} steps", flush=True)
    best = trainer.run(resume=False)
    out = Path(os.environ.get("OUT", WORK / "out"))
    out.mkdir(parents=True, exist_ok=True)
    export(best, out)
    (out / "history.json").write_text((Path(config.output) / "history.json").read_text())
    (out / "config.json").write_text((best / "config.json").read_text())
    print(f"done in {time.monotonic() - started:.0f}s; best = {best}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=["unpack", "train", "assemble"])
    parser.add_argument("part", nargs="?", help="unpack: the part folder; assemble: the returned files")
    parser.add_argument("target", nargs="?", help="assemble: the model folder to write")
    parser.add_argument("--budget", type=float, default=60)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if args.stage == "unpack":
        unpack(Path(args.part))
    elif args.stage == "assemble":
        assemble(Path(args.part), Path(args.target))
    else:
        train(args.budget, args.smoke, args.batch)
