"""Prometheus metrics for GET /metrics: traffic, errors, latency, throughput, queue.

Each app owns its own `CollectorRegistry`, so several servers in one process (the tests, a gateway
in front of a local server) never share or clash on counters. Latency is measured where the user
feels it: time to first token from the request's arrival to the first text sent, and inter-token
latency between two pieces of text of one sample.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from codelm.engine.scheduler import Event

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_WINDOW_S = 10.0  # tokens/s is averaged over the samples finished in the last 10 seconds


class Metrics:
    """The server's counters; `gauges` maps gauge names to callables read at scrape time."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, gauges: dict[str, Callable[[], float]] | None = None) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "codelm_requests",
            "Generation requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "codelm_errors", "Error responses by HTTP status and code", ["status", "code"], registry=r
        )
        self.cancelled = Counter(
            "codelm_requests_cancelled", "Requests stopped because the client disconnected", registry=r
        )
        self.ttft = Histogram(
            "codelm_time_to_first_token_seconds",
            "Request arrival to first text",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "codelm_inter_token_latency_seconds",
            "Time between two pieces of streamed text of one sample",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("codelm_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("codelm_generation_tokens", "Tokens generated", registry=r)
        self._recent: deque[tuple[float, int]] = deque()
        tps = Gauge(
            "codelm_generation_tokens_per_second", f"Tokens/s over the last {_WINDOW_S:.0f} s", registry=r
        )
        tps.set_function(self.tokens_per_second)
        for name, fn in (gauges or {}).items():
            Gauge(f"codelm_{name}", name.replace("_", " "), registry=r).set_function(fn)

    def error(self, status: int, code: str | None) -> None:
        self.errors.labels(str(status), code or "none").inc()

    def tokens_per_second(self) -> float:
        cutoff = time.monotonic() - _WINDOW_S
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()
        return sum(n for _, n in self._recent) / _WINDOW_S

    def track(self, endpoint: str) -> Tracker:
        return Tracker(self, endpoint)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Tracker:
    """Latency and token accounting of one request, fed with its events."""

    def __init__(self, metrics: Metrics, endpoint: str) -> None:
        self.metrics, self.endpoint = metrics, endpoint
        self.start = time.monotonic()
        self._last: dict[int, float] = {}
        self._first = True
        self._outcome: str | None = None

    def event(self, ev: Event) -> None:
        now = time.monotonic()
        if ev.text:
            if self._first:
                self.metrics.ttft.observe(now - self.start)
                self._first = False
            if ev.index in self._last:
                self.metrics.itl.observe(now - self._last[ev.index])
            self._last[ev.index] = now
        if ev.finish_reason and ev.completion_tokens:
            self.metrics.generation_tokens.inc(ev.completion_tokens)
            self.metrics._recent.append((now, ev.completion_tokens))

    def done(self, outcome: str, prompt_tokens: int = 0) -> None:
        """ok, rejected (bad request, busy), error (generation failed) or cancelled (client left).

        Only the first call counts."""
        if self._outcome is None:
            self._outcome = outcome
            self.metrics.requests.labels(self.endpoint, outcome).inc()
            self.metrics.prompt_tokens.inc(prompt_tokens)
            if outcome == "cancelled":
                self.metrics.cancelled.inc()
