"""Prometheus metrics of one server (``GET /metrics``), with ``prometheus-client``.

Gauges read from the engine at scrape time (queue depth, active requests, rows in flight), the engine's
token counter and a tokens-per-second gauge over the last 10 s computed from it (tokens count as they are
generated, not when their request ends), counters of requests and tokens, and histograms of request
latency, time to first token and time per output token. Each app has its own registry, so several apps in one process (tests, Ray
replicas) do not collide.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from focus_integrations.server.engines import EngineStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, float("inf"))
_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, float("inf"))


class _TokenRate:
    """Tokens per second over about the last ``window_s`` seconds, from the engine's running token count.

    Samples of the count are taken whenever metrics are scraped or a request ends, so tokens of answers
    still being decoded count as they are generated, not when their request finishes.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def rate(self, total: int) -> float:
        """Record ``total`` (tokens generated so far) now; the rate since the oldest sample in the window."""
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, total))
            # Keep one sample at or before the window's start as the baseline.
            while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
                self._samples.popleft()
            then, before = self._samples[0]
            if now - then < 0.5:  # too short a span to say anything
                return 0.0
            return max(0, total - before) / (now - then)


class _EngineCollector(Collector):
    def __init__(self, stats: Callable[[], EngineStats], rate: _TokenRate) -> None:
        self._stats = stats
        self._rate = rate

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._stats()
        yield GaugeMetricFamily("focus_queue_depth", "Requests accepted and waiting to decode", stats.queued)
        yield GaugeMetricFamily("focus_requests_active", "Requests decoding now", stats.active)
        yield GaugeMetricFamily(
            "focus_rows_in_flight",
            "Prompt copies (N+1 per FOCUS request) being decoded",
            stats.rows_in_flight,
        )
        yield CounterMetricFamily(
            "focus_engine_tokens_generated",
            "Tokens the engine has generated (cancelled and unfinished answers included)",
            stats.tokens_generated,
        )
        yield GaugeMetricFamily(
            "focus_tokens_per_second",
            "Tokens generated per second over the last 10 s",
            self._rate.rate(stats.tokens_generated),
        )


class ServerMetrics:
    def __init__(self, stats: Callable[[], EngineStats]) -> None:
        self._stats = stats
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
        self.rate.rate(self._stats().tokens_generated)  # a sample, so the window has a start
        self._latency_sum = 0.9 * self._latency_sum + (now - started)
        self._latency_count = 0.9 * self._latency_count + 1

    def typical_latency_s(self) -> float:
        """Exponentially weighted mean request latency (for Retry-After); 1 s before any request."""
        return self._latency_sum / self._latency_count if self._latency_count else 1.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
