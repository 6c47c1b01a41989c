"""Drop episodes: a burst of drops is logged as two lines, not one per operation.

When operations start being dropped for a reason, one warning says so; when no drop
has happened for ``DROP_EPISODE_GAP`` seconds (or at shutdown), one more line gives
the episode's count. ``on_drop`` still sees every operation; only the log is folded.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("cio_async")

#: A drop episode ends after this many seconds without a drop (then its count is logged).
DROP_EPISODE_GAP = 1.0


class DropEpisodes:
    """Counts drops per reason and logs the start and the end of each episode."""

    __slots__ = ("_counts", "_last", "_loop", "_timer")

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop whose clock times episodes (before it, an episode ends at ``end``)."""
        self._loop = loop

    def dropped(self, reason: str, count: int) -> None:
        """``count`` operations were dropped for ``reason``."""
        if reason not in self._counts:
            self._counts[reason] = 0
            log.warning(
                "cio_async is dropping operations undelivered (%s); "
                "on_drop gets each, and the count is logged when it stops",
                reason,
            )
            if self._timer is None and self._loop is not None:
                self._timer = self._loop.call_later(DROP_EPISODE_GAP, self._check)
        self._counts[reason] += count
        if self._loop is not None:
            self._last = self._loop.time()

    def _check(self) -> None:
        assert self._loop is not None
        quiet = self._loop.time() - self._last
        if quiet >= DROP_EPISODE_GAP:
            self._timer = None
            self.end()
        else:
            self._timer = self._loop.call_later(DROP_EPISODE_GAP - quiet, self._check)

    def end(self) -> None:
        """End every open episode now, logging its count (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for reason, count in self._counts.items():
            log.warning("cio_async dropped %d operation(s) undelivered (%s)", count, reason)
        self._counts.clear()
