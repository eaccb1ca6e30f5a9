"""Pack the built-in model's training inputs for a GPU machine that has no network and takes 64 MiB a call.

Writes .gpu/part1 (initial weights, int8; validation, DAQUAR and easy-vqa images) and .gpu/part2
(Flickr8k train images). Images are re-encoded as WebP at 224x224 (the size the model sees); datasets
are written in formats assistant.datasets reads. Run from the repository root.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from assistant.datasets import load_caption_dataset, load_vqa_dataset
from assistant.training.init_weights import builtin_tokenizer, initial_builtin_model
from assistant.training.pretrain_data import _easy_vqa

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
OUT = Path(".gpu")
SIZE, QUALITY = 224, 70


# Only pretrained weights travel; BLIP's new parts start random on the GPU machine as they would here.
PRETRAINED = ("text_encoder.", "vision_model.trunk.")


def quantize_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    seen, out = set(), {}
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen or not name.startswith(PRETRAINED) or "crossattention" in name:
            continue
        seen.add(t.data_ptr())
        t = t.detach().float() if t.is_floating_point() else t
        if t.is_floating_point() and t.dim() >= 2 and t.numel() >= 4096:
            flat = t.reshape(t.shape[0], -1)
            scale = flat.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
            out[name + "::q"] = torch.round(flat / scale).to(torch.int8).reshape(t.shape)
            out[name + "::s"] = scale.squeeze(1).half()
        else:
            out[name] = t.contiguous()
    return out


def write_blob(folder: Path, name: str, paths: list[str]) -> dict[str, str]:
    """Concatenate WebP encodings of ``paths`` into one file; return original path -> packed name."""
    folder.mkdir(parents=True, exist_ok=True)
    index, mapping, blob = [], {}, io.BytesIO()
    for i, p in enumerate(paths):
        img = Image.open(p).convert("RGB")
        if img.size != (SIZE, SIZE):
            img = img.resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "WEBP", quality=QUALITY)
        packed = f"{name}/{i:06d}.webp"
        index.append([packed, blob.tell(), buf.tell()])
        blob.write(buf.getvalue())
        mapping[p] = packed
    (folder / f"{name}.bin").write_bytes(blob.getvalue())
    (folder / f"{name}.json").write_text(json.dumps(index))
    return mapping


def main() -> None:
    p1, p2 = OUT / "part1", OUT / "part2"
    model = initial_builtin_model()
    p1.mkdir(parents=True, exist_ok=True)
    save_file(quantize_state(model), str(p1 / "init_q.safetensors"))
    model.config.save_pretrained(p1 / "init_config")
    builtin_tokenizer().save_pretrained(p1 / "init_config")

    karpathy = DATA / "flickr8k" / "dataset_flickr8k.json"
    train = load_caption_dataset(karpathy, split="train", check_images=False)
    val = load_caption_dataset(karpathy, split="val", check_images=False)
    daquar = load_vqa_dataset(DATA / "daquar" / "daquar_train_questions.json", split="train", on_bad="skip")
    easy = _easy_vqa("train")

    m_train = write_blob(p2, "flickr_train", [r.image for r in train])
    m_val = write_blob(p1, "flickr_val", [r.image for r in val])
    m_daq = write_blob(p1, "daquar", sorted({r.image for r in daquar}))
    m_easy = write_blob(p1, "easyvqa", sorted({p for p, _, _ in easy}))

    def karpathy_rows(records, mapping, split):
        return [
            {"filename": mapping[r.image], "split": split, "sentences": [{"raw": c} for c in r.captions]}
            for r in records
        ]

    (p1 / "captions.json.gz").write_bytes(
        gzip.compress(
            json.dumps(
                {"images": karpathy_rows(train, m_train, "train") + karpathy_rows(val, m_val, "val")}
            ).encode()
        )
    )
    (p1 / "daquar.jsonl.gz").write_bytes(
        gzip.compress(
            "".join(
                json.dumps(
                    {
                        "image": m_daq[r.image],
                        "question": r.question,
                        "answers": r.answers,
                        "answer": r.answer,
                    }
                )
                + "\n"
                for r in daquar
            ).encode()
        )
    )
    (p1 / "easyvqa.jsonl.gz").write_bytes(
        gzip.compress(
            "".join(
                json.dumps({"image": m_easy[p], "question": q, "answers": [a]}) + "\n" for p, q, a in easy
            ).encode()
        )
    )
    for part in (p1, p2):
        size = sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
        print(part, f"{size / 2**20:.1f} MiB")
    print("init", np.round((p1 / "init_q.safetensors").stat().st_size / 2**20, 1), "MiB")


if __name__ == "__main__":
    main()
