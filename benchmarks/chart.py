"""Render the peer comparison of the committed snapshot as a picture.

``python -m benchmarks.chart`` reads ``benchmarks/RESULTS.md`` (the snapshot written
by ``scripts/bench --save``, which also calls this) and writes
``docs/assets/benchmarks.png``: events/s of the 1,000,000-event stream per client on a
log scale, and the latency an aiohttp handler sees per client. The numbers drawn are
parsed from the snapshot's tables and stored in the PNG's ``cio-async-data`` text
chunk, so a test can check that the committed picture matches the committed snapshot.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
CHART = ROOT / "docs" / "assets" / "benchmarks.png"
METADATA_KEY = "cio-async-data"
RTT_MS = 50


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after ``heading``."""
    start = markdown.index(heading)
    rows: list[list[str]] = []
    for line in markdown[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows or line.startswith("## "):
            break
    return rows[2:]  # skip the header and the |---| line


def _number(cell: str) -> float | None:
    m = re.match(r"([\d,]+(?:\.\d+)?)", cell)
    return float(m.group(1).replace(",", "")) if m else None


def snapshot_data(markdown: str) -> dict[str, Any]:
    """What the chart shows, read from RESULTS.md: ``stream`` maps each client to
    events/s at 50 ms RTT; ``handler`` maps each handler variant to p50/p99 ms."""
    stream = {}
    for row in _table(markdown, f"## 3. A stream of track events (RTT {RTT_MS} ms)"):
        value = _number(row[1])
        if value is not None:
            stream[row[0]] = value
    handler = {}
    for row in _table(markdown, "## 5. An aiohttp handler that tracks an event per request"):
        p50, p99 = _number(row[1]), _number(row[2])
        if p50 is not None and p99 is not None:
            handler[row[0]] = {"p50": p50, "p99": p99}
    date = re.search(r"^\| date \| (.+?) \|$", markdown, flags=re.M)
    return {"date": date.group(1) if date else "", "stream": stream, "handler": handler}


def render(data: dict[str, Any], path: Path) -> None:
    """Draw ``data`` (from ``snapshot_data``) into a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8.5), layout="constrained")
    names = list(data["stream"])[::-1]
    values = [data["stream"][n] for n in names]
    colors = ["#2b7bba" if n == "cio_async" else "#9aa5b1" for n in names]
    top.barh(names, values, color=colors)
    top.set_xscale("log")
    top.set_xlabel("events/s accepted by the server (log scale; more is better)")
    top.set_title(f"1,000,000 track events, {RTT_MS} ms round trip")
    for y, v in enumerate(values):
        top.text(v * 1.1, y, f"{v:,.0f}" if v >= 100 else f"{v:g}", va="center", fontsize=8)
    top.set_xlim(right=max(values) * 8)

    labels = list(data["handler"])[::-1]
    p50 = [data["handler"][n]["p50"] for n in labels]
    p99 = [data["handler"][n]["p99"] for n in labels]
    ys = range(len(labels))
    bottom.barh([y + 0.2 for y in ys], p99, height=0.4, color="#e39b4c", label="p99")
    bottom.barh([y - 0.2 for y in ys], p50, height=0.4, color="#2b7bba", label="p50")
    bottom.set_yticks(list(ys), labels)
    bottom.set_xscale("log")
    bottom.set_xlabel("handler latency, ms (log scale; less is better)")
    bottom.set_title("An aiohttp handler tracking one event per request")
    bottom.legend(loc="upper right")
    for y, (a, b) in enumerate(zip(p50, p99, strict=True)):
        bottom.text(b * 1.1, y + 0.2, f"{b:g}", va="center", fontsize=8)
        bottom.text(a * 1.1, y - 0.2, f"{a:g}", va="center", fontsize=8)
    bottom.set_xlim(right=max(p99) * 8)
    fig.suptitle(f"cio_async and its peers (benchmarks/RESULTS.md, {data['date']})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={METADATA_KEY: json.dumps(data, sort_keys=True)})
    plt.close(fig)


def chart_data(path: Path) -> dict[str, Any]:
    """The numbers a PNG written by ``render`` was drawn from."""
    from PIL import Image

    with Image.open(path) as image:
        text: dict[str, str] = getattr(image, "text", {})
        return dict(json.loads(text[METADATA_KEY]))


def render_snapshot(results: Path = RESULTS, path: Path = CHART) -> Path:
    """Render the chart of the committed snapshot."""
    render(snapshot_data(results.read_text()), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=CHART)
    args = parser.parse_args()
    print(f"wrote {render_snapshot(args.results, args.out)}")


if __name__ == "__main__":
    main()
