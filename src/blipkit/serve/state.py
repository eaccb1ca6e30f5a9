"""What one running server holds: its settings, model, batcher, index and metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from blipkit.blip import Blip
from blipkit.serve.batcher import BatcherClosed, MicroBatcher, QueueFull
from blipkit.serve.metrics import Metrics
from blipkit.serve.problems import ApiError
from blipkit.serve.settings import ServeSettings


@dataclass
class ServerState:
    settings: ServeSettings
    metrics: Metrics = field(default_factory=Metrics)
    blip: Blip | None = None
    batcher: MicroBatcher | None = None
    search: Any = None  # a blipkit.serve.search.SearchBackend once the index is open
    tasks: frozenset[str] = frozenset()  # the batcher's tasks (caption, ask, ..., tag, moderate)
    load_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.blip is not None and self.batcher is not None and self.load_error is None

    def require_ready(self) -> tuple[Blip, MicroBatcher]:
        if self.load_error is not None:
            raise ApiError(503, "not_ready", f"the model failed to load: {self.load_error}")
        if self.blip is None or self.batcher is None:
            raise ApiError(503, "not_ready", "the model is still loading", {"Retry-After": "5"})
        if self.batcher.closing:
            raise ApiError(503, "shutting_down", "the server is shutting down",
                           {"Retry-After": "5", "Connection": "close"})
        return self.blip, self.batcher

    async def run(self, task: str, key: Any, payload: Any, weight: int) -> Any:
        """Queue one request's work and wait for its result; a full queue or a closing server is a 503."""
        _, batcher = self.require_ready()
        if task not in self.tasks:
            hint = " (start it with --policy FILE)" if task == "moderate" else ""
            raise ApiError(501, "unsupported_task", f"this server cannot {task}{hint}")
        try:
            return await batcher.submit(task, key, payload, weight)
        except QueueFull as exc:
            self.metrics.rejected.inc()
            raise ApiError(503, "queue_full", f"the server is busy: {exc}",
                           {"Retry-After": str(self._retry_after())}) from None
        except BatcherClosed as exc:
            raise ApiError(503, "shutting_down", str(exc),
                           {"Retry-After": "5", "Connection": "close"}) from None

    def _retry_after(self) -> int:
        """Seconds until the queue has room: a whole number, at least one (what Retry-After allows)."""
        batcher = self.batcher
        if batcher is None:
            return 1
        hist = self.metrics.inference.collect()[0].samples
        total = sum(s.value for s in hist if s.name.endswith("_sum"))
        count = sum(s.value for s in hist if s.name.endswith("_count"))
        per_batch = total / count if count else 0.1
        return max(1, math.ceil(per_batch * batcher.depth / batcher.max_batch))


def server_state(request: Request) -> ServerState:
    return request.app.state.blipkit  # type: ignore[no-any-return]
