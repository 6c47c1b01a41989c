"""A worker that streams events until SIGTERM, then flushes and exits."""

from __future__ import annotations

import asyncio
import sys

from cio_async import ClientClosedError, install_signal_handlers
from tests.apps._common import make_client, report


async def main() -> None:
    url, timeout = sys.argv[1], float(sys.argv[2])
    dropped: list[str] = []
    client = make_client(url, dropped)
    await client.start()
    closed = install_signal_handlers(client, timeout=timeout)
    ids: list[str] = []
    print("READY", flush=True)
    i = 0
    while not closed.is_set():
        try:
            ids.append(client.track_nowait(f"w{i % 10}", "work", {"i": i}))
        except ClientClosedError:
            break  # the signal handler started closing: stop producing
        i += 1
        if i % 50 == 0:
            await asyncio.sleep(0.001)  # a worker does other things too
    await closed.wait()
    report(client, dropped, ids=ids)


if __name__ == "__main__":
    asyncio.run(main())
