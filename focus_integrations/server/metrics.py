"""Prometheus metrics of one server (``GET /metrics``), with ``prometheus-client``.

Gauges read from the engine at scrape time (queue depth, active requests, rows in flight), a recent
tokens-per-second gauge, counters of requests and tokens, and histograms of request latency, time to first
token and time per output token. Each app has its own registry, so several apps in one process (tests, Ray
replicas) do not collide.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from focus_integrations.server.engines import EngineStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, float("inf"))
_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, float("inf"))


class _TokenRate:
    """Output tokens per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, tokens: int) -> None:
        with self._lock:
            self._events.append((time.monotonic(), tokens))

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._events and self._events[0][0] < now - self.window_s:
                self._events.popleft()
            return sum(n for _, n in self._events) / self.window_s


class _EngineCollector(Collector):
    def __init__(self, stats: Callable[[], EngineStats], rate: _TokenRate) -> None:
        self._stats = stats
        self._rate = rate

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        yield GaugeMetricFamily("focus_queue_depth", "Requests accepted and waiting to decode", stats.queued)
        yield GaugeMetricFamily("focus_requests_active", "Requests decoding now", stats.active)
        yield GaugeMetricFamily(
            "focus_rows_in_flight",
            "Prompt copies (N+1 per FOCUS request) being decoded",
            stats.rows_in_flight,
        )
        yield GaugeMetricFamily(
            "focus_tokens_per_second", "Output tokens per second over the last 10 s", self._rate.rate()
        )


class ServerMetrics:
    def __init__(self, stats: Callable[[], EngineStats]) -> None:
        self.registry = CollectorRegistry()
        self.rate = _TokenRate()
        self.registry.register(_EngineCollector(stats, self.rate))
        self.requests = Counter(
            "focus_requests",
            "Requests answered, by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "focus_rejected_requests",
            "Requests refused before decoding, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "focus_prompt_tokens", "Prompt tokens of answered requests", registry=self.registry
        )
        self.output_tokens = Counter("focus_output_tokens", "Tokens generated", registry=self.registry)
        self.latency = Histogram(
            "focus_request_latency_seconds",
            "Time from request to last token",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "focus_time_to_first_token_seconds",
            "Time from request to first token",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.per_token = Histogram(
            "focus_time_per_output_token_seconds",
            "Decode time per output token after the first",
            ["endpoint"],
            buckets=_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self._latency_sum = 0.0
        self._latency_count = 0

    def observe(
        self,
        endpoint: str,
        *,
        started: float,
        first_token: float | None,
        prompt_tokens: int,
        output_tokens: int,
    ) -> None:
        now = time.monotonic()
        self.latency.labels(endpoint).observe(now - started)
        if first_token is not None:
            self.first_token.labels(endpoint).observe(first_token - started)
            if output_tokens > 1:
                self.per_token.labels(endpoint).observe((now - first_token) / (output_tokens - 1))
        self.prompt_tokens.inc(prompt_tokens)
        self.output_tokens.inc(output_tokens)
        self.rate.add(output_tokens)
        self._latency_sum = 0.9 * self._latency_sum + (now - started)
        self._latency_count = 0.9 * self._latency_count + 1

    def typical_latency_s(self) -> float:
        """Exponentially weighted mean request latency (for Retry-After); 1 s before any request."""
        return self._latency_sum / self._latency_count if self._latency_count else 1.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
