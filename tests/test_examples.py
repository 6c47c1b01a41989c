"""The worked examples in examples/ run against the stand-in and report real numbers."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from cio_async.testing import StandIn
from examples.otel_hooks import OpenTelemetryHooks
from examples.prometheus_hooks import PrometheusHooks

from .conftest import ClientFactory


async def traffic(make_client: ClientFactory, server: StandIn, hooks: object) -> None:
    server.fail_next(503, path="/api/v2/batch")
    c = make_client(hooks=[hooks])
    async with c:
        for i in range(12):
            c.track_nowait(str(i), "e")
        await c.flush()
        await c.v1.identify("1", {"a": 1})


async def test_prometheus_example(make_client: ClientFactory, server: StandIn) -> None:
    registry = CollectorRegistry()
    await traffic(make_client, server, PrometheusHooks(registry))
    text = generate_latest(registry).decode()
    assert 'cio_request_seconds_count{operation="batch",status="503"} 1.0' in text
    assert 'cio_request_seconds_count{operation="batch",status="200"} 1.0' in text
    assert 'cio_request_seconds_count{operation="identify",status="200"} 1.0' in text
    assert 'cio_retries_total{operation="batch"} 1.0' in text
    assert "cio_batch_events_sum 24.0" in text  # 12 events, sent twice (503, then 200)


async def test_opentelemetry_example(make_client: ClientFactory, server: StandIn) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        await traffic(make_client, server, OpenTelemetryHooks(provider.get_meter("test")))
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    durations = {
        (p.attributes["operation"], p.attributes["status"]): p.count
        for p in metrics["cio.request.duration"].data.data_points
    }
    assert durations == {("batch", "503"): 1, ("batch", "200"): 1, ("identify", "200"): 1}
    (retries,) = metrics["cio.retries"].data.data_points
    assert retries.value == 1
