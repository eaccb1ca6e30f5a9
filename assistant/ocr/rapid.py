"""RapidOCR (PaddleOCR's models on onnxruntime): installs from the package registry with its models inside
the wheel, so it reads with no network and no system program. Loaded on first use (about 1 s) and kept."""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

from assistant.ocr.engine import Line, OcrError

log = logging.getLogger(__name__)


class RapidOcrEngine:
    name = "rapidocr"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._ocr: Any = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        for module in ("rapidocr", "onnxruntime"):
            if importlib.util.find_spec(module) is None:
                return f"the Python package {module} is not installed"
        return None

    def _engine(self) -> Any:
        if self._ocr is None:
            from rapidocr import RapidOCR

            # No text-direction classifier: screen text is upright, and it costs a model run per line.
            self._ocr = RapidOCR(params={
                "Global.log_level": "warning",
                "Global.use_cls": False,
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        return self._ocr

    def read_lines(self, image: Any) -> list[Line]:
        problem = self.problem()
        if problem:
            raise OcrError(f"RapidOCR cannot run: {problem}.")
        with self._lock:  # one onnxruntime session pair, not re-entrant
            try:
                result = self._engine()(image.convert("RGB"))
            except Exception as exc:
                log.exception("rapidocr failed")
                raise OcrError(f"RapidOCR failed: {exc}.") from exc
        boxes = getattr(result, "boxes", None)
        if boxes is None:
            return []
        out = []
        for box, text, score in zip(boxes, result.txts, result.scores, strict=False):
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            left, top = int(min(xs)), int(min(ys))
            out.append(Line(str(text).strip(), left, top, int(max(xs)) - left, int(max(ys)) - top,
                            float(score)))
        return [line for line in out if line.text]
