"""The benchmark chart shows the committed snapshot's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import chart


def test_committed_chart_matches_the_snapshot() -> None:
    expected = chart.snapshot_data(chart.RESULTS.read_text())
    assert chart.chart_data(chart.CHART) == expected


def test_snapshot_data_reads_the_tables() -> None:
    data = chart.snapshot_data(chart.RESULTS.read_text())
    assert "cio_async" in data["stream"] and "aiohttp+orjson loop (ceiling)" in data["stream"]
    assert all(v > 0 for v in data["stream"].values())
    assert {"p50", "p99"} == set(data["handler"]["cio_async: await cio.track()"])


def test_render_stores_what_it_drew(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    text = chart.RESULTS.read_text()
    drawn = chart.snapshot_data(text)["stream"]["cio_async"]
    text = text.replace(f"| cio_async | {drawn:,.0f}", "| cio_async | 999,999", 1)
    data = chart.snapshot_data(text)
    assert data["stream"]["cio_async"] == 999_999
    out = tmp_path / "c.png"
    chart.render(data, out)
    assert chart.chart_data(out) == data
    assert chart.chart_data(out) != chart.chart_data(chart.CHART)
