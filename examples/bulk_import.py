"""Bulk-load people and their events from a CSV file, from your own code.

    CUSTOMERIO_SITE_ID=... CUSTOMERIO_TRACK_API_KEY=... python -m examples.bulk_import people.csv

(The ``cio-async import`` command does this for NDJSON/CSV with resumable checkpoints;
this is the same idea in a few lines, for when the rows come from your own database.)
Every row is submitted without waiting for small batches (``urgent=False``), the
queue applies backpressure when Customer.io is slower than the file, and each row's
outcome is collected: nothing is lost without a line saying so.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from pathlib import Path

from cio_async import AsyncCustomerIO, BatchPolicy, Person, ValidationError


async def import_people(path: Path, cio: AsyncCustomerIO) -> dict[str, int]:
    """Identify one person per CSV row (``id`` column; the others are attributes) and
    track ``imported`` for each; returns counts of delivered, rejected and invalid rows."""
    pending: list[tuple[int, asyncio.Future[None]]] = []
    counts = {"delivered": 0, "rejected": 0, "invalid": 0}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            person_id = row.pop("id", "")
            try:
                op = Person(person_id).identify({k: v for k, v in row.items() if v})
                event = Person(person_id).event("imported", {"source": path.name})
            except ValidationError as exc:
                counts["invalid"] += 1
                print(f"line {line}: {exc}", file=sys.stderr)
                continue
            pending.append((line, await cio.submit(op, urgent=False)))
            pending.append((line, await cio.submit(event, urgent=False)))
    await cio.flush()
    for line, fut in pending:
        if fut.exception() is None:
            counts["delivered"] += 1
        else:
            counts["rejected"] += 1
            print(f"line {line}: {fut.exception()}", file=sys.stderr)
    return counts


async def main(path: Path) -> dict[str, int]:
    """Import ``path`` with a client configured from ``CUSTOMERIO_*``."""
    batch = BatchPolicy(max_batch_events=1000, max_in_flight=8)
    async with AsyncCustomerIO.from_env(batch=batch) as cio:
        return await import_people(path, cio)


if __name__ == "__main__":
    print(asyncio.run(main(Path(sys.argv[1]))))
