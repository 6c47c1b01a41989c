"""Feed cio_async's hooks into OpenTelemetry metrics (``pip install opentelemetry-api``;
configure an SDK ``MeterProvider`` and exporter as usual).

    cio = AsyncCustomerIO(site_id, key, hooks=[OpenTelemetryHooks()])
"""

from __future__ import annotations

from opentelemetry import metrics

from cio_async import Hooks, Operation


class OpenTelemetryHooks(Hooks):
    """Request duration, retries, drops and batch sizes as OTel instruments."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("cio_async")
        self.duration = meter.create_histogram(
            "cio.request.duration", unit="s", description="Customer.io request latency"
        )
        self.retries = meter.create_counter("cio.retries", description="Retried requests")
        self.drops = meter.create_counter("cio.dropped", description="Dropped operations")
        self.batch_events = meter.create_histogram(
            "cio.batch.events", description="Operations per Track v2 batch"
        )

    def on_request_end(
        self,
        operation: str,
        status: int | None,
        seconds: float,
        error: BaseException | None,
        attempt: int,
    ) -> None:
        self.duration.record(seconds, {"operation": operation, "status": str(status or "error")})

    def on_retry(self, operation: str, attempt: int, delay: float, error: BaseException) -> None:
        self.retries.add(1, {"operation": operation})

    def on_drop(self, operation: Operation, reason: str) -> None:
        self.drops.add(1, {"reason": reason})

    def on_batch_sent(self, events: int, size: int, status: int, seconds: float) -> None:
        self.batch_events.record(events)
