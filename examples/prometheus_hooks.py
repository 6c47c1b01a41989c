"""Feed cio_async's hooks into Prometheus (``pip install prometheus-client``).

hooks = PrometheusHooks()            # or PrometheusHooks(registry=my_registry)
cio = AsyncCustomerIO(site_id, key, hooks=[hooks])
# expose prometheus_client.generate_latest() on /metrics as usual
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from cio_async import Hooks, Operation


class PrometheusHooks(Hooks):
    """Request latency by operation and status, retries, drops and batch sizes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        self.requests = Histogram(
            "cio_request_seconds", "Customer.io request latency", ["operation", "status"], **kw
        )
        self.retries = Counter("cio_retries_total", "Retried requests", ["operation"], **kw)
        self.drops = Counter(
            "cio_dropped_total", "Operations dropped undelivered", ["reason"], **kw
        )
        self.batch_events = Histogram(
            "cio_batch_events",
            "Operations per Track v2 batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500),
            **kw,
        )

    def on_request_end(
        self,
        operation: str,
        status: int | None,
        seconds: float,
        error: BaseException | None,
        attempt: int,
    ) -> None:
        self.requests.labels(operation, str(status or "error")).observe(seconds)

    def on_retry(self, operation: str, attempt: int, delay: float, error: BaseException) -> None:
        self.retries.labels(operation).inc()

    def on_drop(self, operation: Operation, reason: str) -> None:
        self.drops.labels(reason).inc()

    def on_batch_sent(self, events: int, size: int, status: int, seconds: float) -> None:
        self.batch_events.observe(events)
