"""``cio-async spool drain DIR``: deliver what dead processes left, then exit."""

from __future__ import annotations

import time
from typing import TextIO

from .._client import AsyncCustomerIO
from .._config import ClientConfig, SpoolConfig
from ._backend import SpoolBackend


async def drain(directory: str, timeout: float, out: TextIO) -> int:
    """Adopt every orphaned spool file in ``directory`` and deliver it. Returns the
    exit status: 0 when everything was delivered, 1 otherwise."""
    backend = SpoolBackend(SpoolConfig(directory))
    config = ClientConfig.from_env()
    deadline = time.monotonic() + timeout
    async with AsyncCustomerIO(config=config, queue=backend) as cio:
        await cio.start()
        await backend.opened()
        while backend.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await cio.flush(timeout=left)
            if backend.pending and not await backend.next_page():
                break
        stats = cio.stats()
    spool = backend.stats()
    failed = stats.failed_total
    left_over = spool.spooled
    out.write(
        f"replayed {spool.replayed:,} operation(s) from {spool.adopted_files} file(s): "
        f"{stats.delivered:,} delivered, {failed:,} failed, {left_over:,} left\n"
    )
    return 0 if not failed and not left_over else 1
