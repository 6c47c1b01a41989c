"""The relay: read a Redis stream in a consumer group and deliver to Customer.io.

Each relay hands what it reads to an ``AsyncCustomerIO``'s batching sender
(``client.submit``: batching, retries, 207/400/413 handling and the shared rate budget
are the client's), and settles each entry by its outcome:

- delivered: ``XACK`` + ``XDEL`` (at least once: a relay that dies between delivery and
  acknowledgement leaves the entry pending, and it is delivered again with the same
  event id, which Customer.io ignores for events);
- rejected by Customer.io (or failed with an error that cannot clear): moved to the
  dead-letter stream with the reason;
- failed past the client's retry budget (an outage): left pending, tried again after
  ``claim_idle``, and dead-lettered with the last error after ``max_deliveries``;
- dropped at shutdown: left pending, for another relay to reclaim;
- refused for credentials: left pending, and the relay stops with the error (every
  other entry would fail the same way).

A janitor reclaims entries idle longer than ``claim_idle`` in any consumer
(``XAUTOCLAIM``; a dead relay's); an entry delivered ``max_deliveries`` times without
being settled (it keeps killing relays) goes to the dead-letter stream.

Reading stops while ``max_in_flight`` entries are unsettled, so a relay never holds
more than that in memory; producers meet the stream's bound instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aredis

from .._client import AsyncCustomerIO
from .._errors import (
    AuthenticationError,
    ConfigurationError,
    CustomerIOError,
    DeliveryAbandonedError,
    OperationRejectedError,
    PermissionDeniedError,
)
from .._model import Operation
from ._conn import UNREACHABLE, connect
from ._stream import Entry, StreamConfig, StreamConsumer

log = logging.getLogger("cio_async")


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique per process, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayOptions:
    """How a relay reads and settles.

    Args:
        consumer: this relay's name in the group (default ``<host>-<pid>``).
        read_count: entries per ``XREADGROUP``.
        block: seconds an ``XREADGROUP`` waits for new entries (kept under the Redis
            client's socket timeout: redis-py #3138).
        max_in_flight: unsettled entries at most (reading pauses beyond it).
        claim_idle: seconds an entry must sit unacknowledged before another relay
            takes it over; set it above the longest a delivery can take (the client's
            retry budget).
        claim_every: seconds between reclaim sweeps.
        max_deliveries: deliveries after which an unsettled entry is dead-lettered.
        stats_interval: seconds between progress log lines (0: none).
    """

    consumer: str = field(default_factory=default_consumer_name)
    read_count: int = 500
    block: float = 1.0
    max_in_flight: int = 10_000
    claim_idle: float = 60.0
    claim_every: float = 5.0
    max_deliveries: int = 5
    stats_interval: float = 10.0

    def __post_init__(self) -> None:
        if self.read_count < 1 or self.max_in_flight < self.read_count:
            raise ConfigurationError("read_count must be >= 1 and <= max_in_flight")
        if not 0 < self.block <= 10:
            raise ConfigurationError("block must be in (0, 10] seconds")
        if self.claim_idle <= 0 or self.claim_every <= 0 or self.max_deliveries < 1:
            raise ConfigurationError("claim_idle, claim_every and max_deliveries must be > 0")


@dataclass(slots=True)
class RelayStats:
    """Counters of one relay (``RedisStreamRelay.stats``)."""

    read: int = 0
    reclaimed: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    left_pending: int = 0
    #: The last backlog seen: undelivered in the stream, pending, not yet read.
    length: int = 0
    pending: int = 0
    lag: int | None = None


class RedisStreamRelay:
    """Deliver a Redis stream's operations to Customer.io through ``client``.

    ``await relay.run()`` until ``relay.stop()`` (or a signal handler calling it);
    it then stops reading, waits up to ``drain_timeout`` for what it took, leaves the
    rest pending for other relays, and returns. The client is the caller's: use one
    without identify dedup (the producers already deduplicated).
    """

    def __init__(
        self,
        client: AsyncCustomerIO,
        redis: aredis.Redis | str,
        *,
        config: StreamConfig | None = None,
        options: RelayOptions | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        self._client = client
        self._redis, self._owned = connect(redis)
        self.config = config or StreamConfig()
        self.options = options or RelayOptions()
        self.drain_timeout = drain_timeout
        self._consumer = StreamConsumer(self._redis, self.config, self.options.consumer)
        self.stats = RelayStats()
        self._stopping = asyncio.Event()
        #: Set when ``run`` stops its settler and reporter (see there).
        self._halted = False
        self._settled = asyncio.Event()
        self._room = asyncio.Event()
        self._in_flight = 0
        #: Ids of the entries in flight (taken, not yet settled).
        self._held: set[bytes] = set()
        self._to_ack: list[bytes] = []
        self._to_dead: list[tuple[Entry, str]] = []
        self._fatal: BaseException | None = None
        self._last_error: dict[bytes, str] = {}

    def __repr__(self) -> str:
        cfg = self.config
        return f"<RedisStreamRelay {cfg.stream}/{cfg.group}/{self.options.consumer}>"

    @property
    def in_flight(self) -> int:
        """Entries taken and not yet settled."""
        return self._in_flight

    def stop(self) -> None:
        """Ask ``run`` to stop (safe from a signal handler on the loop)."""
        self._stopping.set()

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Relay until ``stop()``; raises the error that made it stop otherwise
        (refused credentials). Redis unreachable at the start (restarting, still
        replaying its AOF, not up yet) is waited out, as it is while running."""
        try:
            ready = await self._ensure_group()
        except BaseException:
            await self._close_owned()
            raise
        if not ready:
            await self._close_owned()
            return  # stopped before Redis answered: nothing was taken
        await self._client.start()
        tasks = [
            asyncio.create_task(self._reader(), name="cio_async-relay-reader"),
            asyncio.create_task(self._janitor(), name="cio_async-relay-janitor"),
            asyncio.create_task(self._settler(), name="cio_async-relay-settler"),
        ]
        if self.options.stats_interval > 0:
            tasks.append(asyncio.create_task(self._reporter(), name="cio_async-relay-stats"))
        for t in tasks:
            t.add_done_callback(self._task_done)
        try:
            await self._stopping.wait()
        finally:
            # Stop taking new work, deliver what was taken (bounded), settle it.
            for t in tasks[:2]:
                t.cancel()
            await asyncio.wait(tasks[:2], timeout=5)
            # Send what the client holds now rather than after its linger.
            deadline = time.monotonic() + self.drain_timeout
            await self._client.flush(self.drain_timeout)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained(), max(0.0, deadline - time.monotonic()))
            # The settler and reporter check this flag too: redis-py can turn the
            # cancellation into a connection error, which their handlers swallow.
            self._halted = True
            for t in tasks[2:]:
                t.cancel()
            _done, stuck = await asyncio.wait(tasks[2:], timeout=5)
            for t in stuck:
                log.warning("cio_async relay: %s did not stop; abandoned", t.get_name())
            if not await self._flush_settlements():
                log.warning(
                    "cio_async relay: %d settled entries could not be acknowledged; "
                    "they stay pending and will be delivered again",
                    len(self._to_ack) + len(self._to_dead),
                )
            self.stats.left_pending += self._in_flight
            log.info("cio_async relay %s stopped: %s", self.options.consumer, self._line())
            await self._close_owned()
        if self._fatal is not None:
            raise self._fatal

    async def _close_owned(self) -> None:
        # The connection the relay made from a URL is its own to close (one it was
        # given belongs to the caller).
        if self._owned:
            await self._redis.aclose()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._fatal is None:
            log.error("cio_async relay task %s failed; stopping", task.get_name(), exc_info=exc)
            self._fatal = exc
            self._stopping.set()

    async def _drained(self) -> None:
        while self._in_flight:
            self._settled.clear()
            await self._settled.wait()

    async def _ensure_group(self) -> bool:
        """Create the consumer group, retrying while Redis is unreachable; False when
        ``stop()`` came first."""
        backoff = 0.1
        while True:
            try:
                await self._consumer.ensure_group()
                return True
            except UNREACHABLE as exc:
                log.warning("cio_async relay: Redis unreachable at start (%r); retrying", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            if self._stopping.is_set():
                return False
            backoff = min(backoff * 2, 5.0)

    async def _reader(self) -> None:
        opts = self.options
        block_ms = max(1, round(opts.block * 1000))
        backoff = 0.1
        # Not ``while True``: redis-py can turn a cancellation that lands inside a
        # command into a connection error, which the handler below would swallow.
        while not self._stopping.is_set():
            room = opts.max_in_flight - self._in_flight
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                entries = await self._consumer.read(min(room, opts.read_count), block_ms)
            except UNREACHABLE as exc:
                log.warning("cio_async relay: Redis unreachable (%r); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            self.stats.read += len(entries)
            await self._submit(entries)

    async def _janitor(self) -> None:
        opts = self.options
        idle_ms = round(opts.claim_idle * 1000)
        swept = True
        while not self._stopping.is_set():  # (see _reader)
            if not swept:
                await asyncio.sleep(opts.claim_every)
            swept = False
            room = opts.max_in_flight - self._in_flight
            if room <= 0:
                continue
            try:
                entries = await self._consumer.claim(idle_ms, min(room, opts.read_count))
            except UNREACHABLE as exc:
                log.warning("cio_async relay: reclaim failed, Redis unreachable (%r)", exc)
                continue
            # Our own entries still waiting in the client's queue come back too (their
            # idle time is reset, which is all the claim does to them): not resubmitted.
            entries = [e for e in entries if e.id not in self._held]
            if not entries:
                continue
            swept = True  # there may be more: sweep again at once (a dead relay's backlog)
            self.stats.reclaimed += len(entries)
            log.info("cio_async relay: reclaimed %d idle entries", len(entries))
            poison = [e for e in entries if e.deliveries > opts.max_deliveries]
            for e in poison:
                reason = self._last_error.pop(e.id, "unsettled")
                self._dead(e, f"failed: delivered {e.deliveries - 1} times ({reason})")
            await self._submit([e for e in entries if e.deliveries <= opts.max_deliveries])

    async def _submit(self, entries: Sequence[Entry]) -> None:
        client = self._client
        for entry in entries:
            if entry.payload is None:
                self._ack(entry.id)  # deleted meanwhile: nothing to deliver
                continue
            try:
                op = Operation.from_payload(entry.payload)
            except (ValueError, TypeError, AttributeError) as exc:
                self._dead(entry, f"malformed: {exc!r}")
                continue
            self._in_flight += 1
            self._held.add(entry.id)
            fut = await client.submit(op, urgent=False)
            fut.add_done_callback(functools.partial(self._outcome, entry))

    def _outcome(self, entry: Entry, fut: asyncio.Future[None]) -> None:
        self._in_flight -= 1
        self._room.set()
        exc = fut.exception() if not fut.cancelled() else DeliveryAbandonedError("cancelled")
        # Settled entries stay held until their XACK (or dead letter) reaches Redis, so
        # the janitor never reclaims and resends one it is about to acknowledge.
        if exc is None:
            self._ack(entry.id)
            self._settled.set()
            return
        if isinstance(exc, OperationRejectedError):
            self._dead(entry, f"rejected: {exc}")
            self._settled.set()
            return
        if (
            isinstance(exc, CustomerIOError)
            and not exc.retryable
            and not isinstance(
                exc, (DeliveryAbandonedError, AuthenticationError, PermissionDeniedError)
            )
        ):
            self._dead(entry, f"failed: {exc}")
            self._settled.set()
            return
        self._held.discard(entry.id)  # left pending: reclaimable after claim_idle
        if isinstance(exc, DeliveryAbandonedError):
            self.stats.left_pending += 1  # shutdown: another relay reclaims it
        elif isinstance(exc, (AuthenticationError, PermissionDeniedError)):
            self.stats.left_pending += 1
            if self._fatal is None:
                self._fatal = exc
                log.error("cio_async relay: credentials refused (%s); stopping", exc)
                self._stopping.set()
        elif isinstance(exc, CustomerIOError):
            # Failed past the client's retry budget (an outage): left pending, so it is
            # tried again after claim_idle, and dead-lettered after max_deliveries.
            self._last_error[entry.id] = str(exc)
            self.stats.left_pending += 1
        else:
            self._last_error[entry.id] = repr(exc)
            self.stats.left_pending += 1
        self._settled.set()

    def _ack(self, eid: bytes) -> None:
        self._last_error.pop(eid, None)
        self._to_ack.append(eid)
        self._settled.set()

    def _dead(self, entry: Entry, reason: str) -> None:
        log.warning("cio_async relay: dead-lettering %s: %s", entry.id.decode(), reason)
        self._to_dead.append((entry, reason))
        self._settled.set()

    async def _settler(self) -> None:
        while not self._halted:
            if not self._to_ack and not self._to_dead:
                self._settled.clear()
                await self._settled.wait()
            ok = await self._flush_settlements()
            # Let acknowledgements gather into one MULTI rather than one per entry
            # (and back off while Redis is unreachable).
            await asyncio.sleep(0.01 if ok else 0.5)

    async def _flush_settlements(self) -> bool:
        """Acknowledge and dead-letter what settled; False if Redis was unreachable.
        Whatever did not reach Redis (unreachable, or cancelled on the way) is kept
        for the next call; if this relay dies first, those entries are delivered
        again (duplicates by event id only). A repeated XACK is harmless."""
        acks, self._to_ack = self._to_ack, []
        dead, self._to_dead = self._to_dead, []
        try:
            if acks:
                await self._consumer.ack(acks)
                self.stats.delivered += len(acks)
                self._held.difference_update(acks)
                acks = []
            if dead:
                await self._consumer.dead_letter(dead)
                self.stats.dead_lettered += len(dead)
                self._held.difference_update(entry.id for entry, _ in dead)
                dead = []
        except UNREACHABLE as exc:
            log.warning("cio_async relay: cannot acknowledge, Redis unreachable (%r)", exc)
            return False
        finally:
            self._to_ack[:0] = acks
            self._to_dead[:0] = dead
        return True

    async def _reporter(self) -> None:
        interval = self.options.stats_interval
        last, t_last = self.stats.delivered, time.monotonic()
        while not self._halted:
            await asyncio.sleep(interval)
            with contextlib.suppress(*UNREACHABLE):
                length, pending, lag = await self._consumer.backlog()
                self.stats.length, self.stats.pending, self.stats.lag = length, pending, lag
            now = time.monotonic()
            rate = (self.stats.delivered - last) / max(now - t_last, 1e-9)
            last, t_last = self.stats.delivered, now
            log.info(
                "cio_async relay %s: %.0f ops/s, %s", self.options.consumer, rate, self._line()
            )

    def _line(self) -> str:
        s = self.stats
        return (
            f"delivered={s.delivered} dead_lettered={s.dead_lettered} read={s.read} "
            f"reclaimed={s.reclaimed} in_flight={self._in_flight} "
            f"left_pending={s.left_pending} stream_length={s.length} "
            f"pending={s.pending} lag={s.lag}"
        )


__all__ = ["RedisStreamRelay", "RelayOptions", "RelayStats", "default_consumer_name"]
