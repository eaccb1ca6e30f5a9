"""Prometheus metrics of one server, in a registry of its own (two apps in one process never clash)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "blipkit_http_requests_total", "HTTP requests by route template, method and status.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "blipkit_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "blipkit_batch_size", "Images or texts per model call, by task.",
            ["task"], buckets=_BATCH_BUCKETS, registry=self.registry,
        )
        self.batch_requests = Histogram(
            "blipkit_batch_requests", "Requests served by one model call, by task.",
            ["task"], buckets=_BATCH_BUCKETS, registry=self.registry,
        )
        self.inference = Histogram(
            "blipkit_inference_duration_seconds", "Time of one batched model call, by task.",
            ["task"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue_depth = Gauge(
            "blipkit_queue_depth", "Requests accepted by the batcher and not finished yet.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "blipkit_queue_rejected_total", "Requests refused with 503 because the queue was full.",
            registry=self.registry,
        )
        self.ready = Gauge("blipkit_model_ready", "1 once the model is loaded.", registry=self.registry)

    def observe_batch(self, task: str, size: int, requests: int, seconds: float) -> None:
        self.batch_size.labels(task).observe(size)
        self.batch_requests.labels(task).observe(requests)
        self.inference.labels(task).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route *template* (``/v1/images/{image_id}/thumbnail``,
    never the raw path), so a client cannot blow up the number of series."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            self.metrics.requests.labels(template, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
