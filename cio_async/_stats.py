"""Self-measurement: counters, fixed-bucket latency histograms, and user hooks.

Recording is a few attribute increments and one ``bisect``: constant memory, cheap
enough for the hot path. ``Recorder.snapshot()`` builds the typed ``Stats``.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._model import Operation

log = logging.getLogger("cio_async")

# Bucket upper bounds in seconds: 20 per decade from 10 µs to 1000 s (~12% wide), so
# a percentile read from the buckets is within about 12% of the true value.
_BOUNDS: tuple[float, ...] = tuple(10 ** (-5 + i / 20) for i in range(0, 8 * 20 + 1))


class Histogram:
    """A fixed-bucket histogram of seconds: constant memory, O(log buckets) record."""

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(_BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1), as the upper bound of its bucket (capped at max)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                bound = _BOUNDS[i] if i < len(_BOUNDS) else self.max
                return min(bound, self.max)
        return self.max


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Latency of one operation kind, in seconds."""

    count: int
    errors: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class Stats:
    """A point-in-time snapshot of what the client did (``client.stats()``).

    Accounting: ``admitted == delivered + failed_total + dropped_total + pending``.
    ``batches_sent`` counts batch requests Customer.io answered (any status, retries
    included); ``batch_events_*``/``batch_bytes_*`` describe those requests.
    ``refused`` counts calls turned away at admission (``QueueFullError``): they were
    never admitted, and the caller got the error.
    """

    admitted: int
    delivered: int
    failed: Mapping[str, int]
    dropped: Mapping[str, int]
    deduplicated: int
    refused: int
    retried: int
    requests: int
    batches_sent: int
    batch_events_mean: float
    batch_bytes_mean: float
    batch_events_max: int
    batch_bytes_max: int
    queue_depth: int
    queue_bytes: int
    in_flight_batches: int
    #: How many batches may be in flight now (adaptive unless fixed by the policy).
    concurrency_limit: int
    in_flight_requests: int
    connections_opened: int
    paused_seconds: float
    dedup_entries: int
    background_errors: int
    latency: Mapping[str, LatencyStats] = field(default_factory=dict)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def pending(self) -> int:
        """Admitted operations not yet delivered, failed or dropped."""
        return self.admitted - self.delivered - self.failed_total - self.dropped_total


class Hooks:
    """Subclass and override what you need; pass instances as ``hooks=[...]``.

    Hooks run inline on the event loop: keep them cheap (increment a Prometheus
    counter, add an OpenTelemetry event). An exception in a hook is logged and
    ignored; it never affects delivery.
    """

    def on_request_start(self, operation: str) -> None:
        """An HTTP request (attempt) is about to be sent."""

    def on_request_end(
        self,
        operation: str,
        status: int | None,
        seconds: float,
        error: BaseException | None,
        attempt: int,
    ) -> None:
        """An HTTP attempt finished (``status`` None on a network error)."""

    def on_retry(self, operation: str, attempt: int, delay: float, error: BaseException) -> None:
        """A failed attempt will be retried after ``delay`` seconds."""

    def on_drop(self, operation: Operation, reason: str) -> None:
        """An operation was dropped undelivered (queue full, shutdown, ...)."""

    def on_batch_sent(self, events: int, size: int, status: int, seconds: float) -> None:
        """A Track v2 batch was answered."""


class Recorder:
    """Counters and histograms behind ``client.stats()``, plus hook fan-out."""

    def __init__(self, hooks: Iterable[Hooks] = (), slow_threshold: float | None = None) -> None:
        self.hooks: tuple[Hooks, ...] = tuple(hooks)
        self.slow_threshold = slow_threshold
        #: Admissions that never reached the queue (dropped on arrival); the pipeline
        #: adds the queue's own count to give ``Stats.admitted``.
        self.admitted = 0
        self.delivered = 0
        self.failed: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.deduplicated = 0
        self.refused = 0
        self.background_errors = 0
        self.retried = 0
        self.requests = 0
        self.batches_sent = 0
        self.batch_events_total = 0
        self.batch_bytes_total = 0
        self.batch_events_max = 0
        self.batch_bytes_max = 0
        self.paused_seconds = 0.0
        self._latency: dict[str, Histogram] = {}
        self._errors: Counter[str] = Counter()

    def _call_hooks(self, name: str, *args: Any) -> None:
        for h in self.hooks:
            try:
                getattr(h, name)(*args)
            except Exception:
                log.exception("cio_async hook %s.%s raised; ignored", type(h).__name__, name)

    def request_start(self, op: str) -> None:
        if self.hooks:
            self._call_hooks("on_request_start", op)

    def request_end(
        self,
        op: str,
        status: int | None,
        seconds: float,
        error: BaseException | None,
        attempt: int,
    ) -> None:
        self.requests += 1
        hist = self._latency.get(op)
        if hist is None:
            hist = self._latency[op] = Histogram()
        hist.record(seconds)
        if error is not None:
            self._errors[op] += 1
        if self.slow_threshold is not None and seconds >= self.slow_threshold:
            log.warning("slow Customer.io call: %s took %.3fs (status %s)", op, seconds, status)
        if self.hooks:
            self._call_hooks("on_request_end", op, status, seconds, error, attempt)

    def retry(self, op: str, attempt: int, delay: float, error: BaseException) -> None:
        self.retried += 1
        if self.hooks:
            self._call_hooks("on_retry", op, attempt, delay, error)

    def drop(self, operation: Operation, reason: str) -> None:
        self.dropped[reason] += 1
        if self.hooks:
            self._call_hooks("on_drop", operation, reason)

    def batch_sent(self, events: int, size: int, status: int, seconds: float) -> None:
        self.batches_sent += 1
        self.batch_events_total += events
        self.batch_bytes_total += size
        if events > self.batch_events_max:
            self.batch_events_max = events
        if size > self.batch_bytes_max:
            self.batch_bytes_max = size
        if self.hooks:
            self._call_hooks("on_batch_sent", events, size, status, seconds)

    def snapshot(self, admitted: int, **live: Any) -> Stats:
        latency = {
            op: LatencyStats(
                count=h.count,
                errors=self._errors[op],
                mean=h.total / h.count if h.count else 0.0,
                p50=h.percentile(0.50),
                p95=h.percentile(0.95),
                p99=h.percentile(0.99),
                max=h.max,
            )
            for op, h in self._latency.items()
        }
        n = self.batches_sent
        return Stats(
            admitted=admitted,
            delivered=self.delivered,
            failed=dict(self.failed),
            dropped=dict(self.dropped),
            deduplicated=self.deduplicated,
            refused=self.refused,
            retried=self.retried,
            requests=self.requests,
            batches_sent=n,
            batch_events_mean=self.batch_events_total / n if n else 0.0,
            batch_bytes_mean=self.batch_bytes_total / n if n else 0.0,
            batch_events_max=self.batch_events_max,
            batch_bytes_max=self.batch_bytes_max,
            paused_seconds=self.paused_seconds,
            latency=latency,
            **live,
        )


OnError = Callable[[BaseException, "Operation | None"], Any]
OnDrop = Callable[["Operation", str], Any]
