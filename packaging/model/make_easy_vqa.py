"""Write easy-vqa's train or test split (from the installed `easy-vqa` package) as the assistant's VQA JSONL.

Usage: python packaging/model/make_easy_vqa.py OUT.jsonl [train|test]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import easy_vqa

    out = Path(sys.argv[1])
    split = sys.argv[2] if len(sys.argv) > 2 else "test"
    if split == "train":
        questions, answers, ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        questions, answers, ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for i, (q, a, image_id) in enumerate(zip(questions, answers, ids, strict=True)):
            row = {"image": paths[image_id], "question": q, "answers": [a], "question_id": i, "split": split}
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(questions)} {split} questions to {out}")


if __name__ == "__main__":
    main()
