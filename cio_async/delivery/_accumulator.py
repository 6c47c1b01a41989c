"""The accumulator: admitted payloads waiting to become batches. Data only.

It owns admission of ready bytes (``offer``), the queue bounds and the ``when_full``
policy, the linger, sequence numbers and the "a batch is ready" decision, and hands
batches out with ``take``. It does no I/O and runs no task: it tells its owner
(the sender) through callbacks that a batch may be ready (``wake``), that room
appeared (``space``) and that items were dropped at admission (``dropped``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from threading import get_ident
from typing import Final

from .._config import BatchPolicy
from ._backend import Batch, QueueBackend, Waited

#: ``offer`` results (``ADMITTED`` is the only falsy one: ``if not offer(p)`` is the
#: cheapest test on the hot path).
ADMITTED: Final = 0
DECLINED: Final = 1
ADMITTED_YIELD: Final = 2


#: ``Accumulator._thread`` while admission is shut: no thread has this ident.
_NO_THREAD: Final = -1


class _DroppedOnArrival:
    """``admit``'s answer when ``drop_newest`` dropped the payload. Awaiting it does
    nothing, so a caller that only awaits a pending commit needs no check for it."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


#: ``Accumulator.admit`` returns this (not a commit) for a payload it dropped.
DROPPED_ON_ARRIVAL: Final = _DroppedOnArrival()


class Accumulator:
    """Admitted payloads on their way into batches (see the module docstring).

    ``events``/``nbytes`` count what is queued; ``head_seq`` is the sequence number of
    the oldest queued item (items are numbered in admission order), so ``head_seq +
    events`` is the number ever queued, and ``flush()`` can wait for "everything
    admitted so far" without storing anything per item.
    """

    # Slots: attribute reads and writes on the admission path are then plain slot
    # loads (an instance dict this wide stops specialising to the cheap form).
    __slots__ = (
        "_append",
        "_backend_full",
        "_batch_bytes",
        "_batch_events",
        "_bound",
        "_byte_mark",
        "_deferred",
        "_dropped",
        "_flush_target",
        "_linger",
        "_linger_due",
        "_lingering",
        "_mark",
        "_max_bytes",
        "_max_events",
        "_space",
        "_thread",
        "_timer",
        "_urgent",
        "_waited",
        "_wake",
        "_when_full",
        "_woken",
        "_yield_at",
        "backend",
        "closing",
        "dropped_on_arrival",
        "events",
        "head_seq",
        "nbytes",
    )

    def __init__(
        self,
        backend: QueueBackend,
        policy: BatchPolicy,
        *,
        wake: Callable[[], None],
        space: Callable[[], None],
        dropped: Callable[[list[bytes], str], None],
    ) -> None:
        self.backend = backend
        self._append = backend.append
        self._wake = wake
        self._space = space
        self._dropped = dropped
        self.events = 0
        self.nbytes = 0
        self.head_seq = 0
        #: Admissions dropped on arrival (``drop_newest``): admitted, never queued.
        self.dropped_on_arrival = 0
        #: Set by ``open``, cleared by ``close`` and ``suspend``: ``offer`` admits
        #: only on the loop's thread. (Not ``_get_running_loop()``, which makes a
        #: ``getpid`` system call on every call; a fork rebuilds the client anyway.)
        self._thread = _NO_THREAD
        self._bound: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self._max_events = policy.max_queue_events
        self._max_bytes = policy.max_queue_bytes
        self._batch_events = policy.max_batch_events
        self._batch_bytes = policy.max_batch_bytes
        self._linger = policy.linger
        self._when_full = policy.when_full
        self._deferred = backend.deferred_commit
        #: A backend with bounds of its own (a spool's ``max_bytes``, a full disk)
        #: has ``full(size)``; admission then applies ``when_full`` for it too.
        self._backend_full: Callable[[int], bool] | None = getattr(backend, "full", None)
        self._timer: asyncio.TimerHandle | None = None
        self._linger_due = False
        #: A linger timer is armed, or has fired and its batch is not taken yet.
        self._lingering = False
        self._urgent = 0
        #: ``Waited`` items queued (awaited operations; most batches have none).
        self._waited = 0
        self._flush_target = 0
        #: ``head_seq + events`` at which admission next asks its caller to yield.
        self._yield_at = self._batch_events
        #: True while the sender is known to be awake: admissions test a plain
        #: attribute rather than call the wake callback each time.
        self._woken = False
        #: ``offer`` admits without a further check while the queue stays below both
        #: marks (see ``_rearm``); reaching one takes the checked path.
        self._mark = 0
        self._byte_mark = 0

    # -- lifecycle ---------------------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start admitting on ``loop``; the backend announces what it already holds."""
        self._bound = loop
        if not self._deferred:
            self._thread = get_ident()
        self._rearm()
        self.backend.start(self._arrived)

    def close(self) -> None:
        """Stop admitting (``offer`` declines from now on)."""
        self.closing = True
        self._thread = _NO_THREAD
        self._lingering = True  # no new timers
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def suspend(self) -> None:
        """The loop went away without a close (``asyncio.run`` ended and cancelled the
        sender): ``offer`` declines from now on, so admissions take the general path,
        which says the client is bound to a loop that is gone."""
        self._thread = _NO_THREAD

    def _arrived(self, count: int, nbytes: int) -> None:
        self.events += count
        self.nbytes += nbytes
        self._queued()
        self._rearm()

    # -- admission ---------------------------------------------------------------------

    def offer(self, payload: bytes) -> int:
        """Admit ``payload`` at once if nothing stands in the way: open, called on the
        loop's thread, room in the queue, a backend whose appends complete at once. Returns
        ``DECLINED`` (the caller takes ``admit``, which applies the ``when_full``
        policy), ``ADMITTED``, or ``ADMITTED_YIELD`` once per batch's worth of
        admissions (the caller should yield to the loop so a producer awaiting in a
        tight loop never starves the sender).

        Every admission of a busy client comes through here, so the common case is
        two comparisons against marks that ``_rearm`` keeps below every point where
        something must happen (a full queue, a full batch to wake the sender for, a
        linger timer to arm, a yield); only crossing one runs ``_offer_checked``."""
        if self._thread != get_ident():
            return DECLINED
        events = self.events + 1
        nbytes = self.nbytes + len(payload)
        if events >= self._mark or nbytes >= self._byte_mark:
            return self._offer_checked(payload, events, nbytes)
        # Read, then called: a method call on an instance attribute does not
        # specialise, an attribute read does.
        append = self._append
        append(payload)
        self.events = events
        self.nbytes = nbytes
        return ADMITTED

    def _offer_checked(self, payload: bytes, events: int, nbytes: int) -> int:
        if events > self._max_events or nbytes > self._max_bytes:
            return DECLINED
        self._append(payload)
        self.events = events
        self.nbytes = nbytes
        self._queued()
        result = ADMITTED_YIELD if self._yield_now() else ADMITTED
        self._rearm()  # once, for the admission and the yield together
        return result

    def _rearm(self) -> None:
        """Set the marks below which ``offer`` needs no check: under the queue's
        bounds; under a full batch while the sender sleeps (it must be woken); at
        once while a short queue has no linger timer (the next admission arms it);
        under the next yield. Called whenever one of those changes."""
        mark = self._max_events + 1
        byte_mark = self._max_bytes + 1
        if not self._woken:
            mark = min(mark, self._batch_events)
            byte_mark = min(byte_mark, self._batch_bytes)
        if not self._lingering and (
            self.events < self._batch_events and self.nbytes < self._batch_bytes
        ):
            mark = 0  # the next admission arms the linger timer
        self._mark = min(mark, self._yield_at - self.head_seq)
        self._byte_mark = byte_mark

    def full(self, size: int) -> bool:
        """True when a payload of ``size`` bytes does not fit now."""
        return (
            self.events >= self._max_events
            or self.nbytes + size > self._max_bytes
            or (self._backend_full is not None and self._backend_full(size))
        )

    def admit(self, payload: bytes) -> Awaitable[None] | None:
        """Admit ``payload`` under the ``when_full`` policy (the caller already waited
        for room under ``block``). A ``Waited`` payload's future is settled by the
        sender. Returns the backend's pending commit, if any, or ``DROPPED_ON_ARRIVAL``
        when ``drop_newest`` dropped it."""
        size = len(payload)
        if self.full(size):
            if self._when_full == "drop_oldest":
                evicted: list[bytes] = []
                while self.events and self.full(size):
                    old = self.backend.pop_oldest()
                    if old is None:
                        break
                    self.events -= 1
                    self.nbytes -= len(old)
                    self.head_seq += 1
                    if type(old) is Waited:
                        self._waited -= 1
                        self._urgent -= old.urgent
                    evicted.append(old)
                self._dropped(evicted, "queue_full")
                self._space()
            elif self._when_full == "drop_newest":
                self.dropped_on_arrival += 1
                self._dropped([payload], "queue_full")
                return DROPPED_ON_ARRIVAL
        commit = self._append(payload)
        self.events += 1
        self.nbytes += size
        if type(payload) is Waited:
            self._waited += 1
        if type(payload) is Waited and payload.urgent:
            self._urgent += 1
            self._woken = True
            self._wake()
        else:
            self._queued()
        self._rearm()
        return commit

    def _queued(self) -> None:
        if self.events >= self._batch_events or self.nbytes >= self._batch_bytes:
            if not self._woken:
                self._woken = True
                self._wake()
        elif not self._lingering and self._bound is not None:
            self._lingering = True
            self._timer = self._bound.call_later(self._linger, self._linger_elapsed)

    def yield_due(self) -> bool:
        """True once per batch's worth of admissions (see ``offer``)."""
        if not self._yield_now():
            return False
        self._rearm()
        return True

    def _yield_now(self) -> bool:
        # ``yield_due`` without re-arming the marks (the caller does, once).
        if self.head_seq + self.events < self._yield_at:
            return False
        self._yield_at = self.head_seq + self.events + self._batch_events
        return True

    def _linger_elapsed(self) -> None:
        self._timer = None
        if not self.events:
            self._lingering = self.closing  # nothing to send: the next admission re-arms
            self._rearm()
            return
        self._linger_due = True
        self._woken = True
        self._wake()

    # -- the sender's side ------------------------------------------------------------

    def flush_to(self) -> int:
        """Make everything queued so far ready now; return its end sequence number."""
        target = self.head_seq + self.events
        if target > self._flush_target:
            self._flush_target = target
        return target

    def ready(self) -> bool:
        """True when a batch should go now: full, lingered, awaited, flushed, closing."""
        if not self.events:
            return False
        return (
            self._linger_due
            or self._urgent > 0
            or self.closing
            or self.head_seq < self._flush_target
            or self.events >= self._batch_events
            or self.nbytes >= self._batch_bytes
        )

    def sleeping(self) -> None:
        """The sender goes to sleep: the next full batch must wake it."""
        self._woken = False
        self._rearm()

    def take(self) -> tuple[int, Batch, bool]:
        """Take the next batch (up to the policy's batch bounds); return its first
        item's sequence number, the batch, and whether it holds awaited operations."""
        first = self.head_seq
        batch = self.backend.take(self._batch_events, self._batch_bytes)
        n = len(batch.items)
        if not n:
            return first, batch, False
        waited = False
        if self._waited:
            w = sum(1 for i in batch.items if type(i) is Waited)
            self._waited -= w
            waited = w > 0
        self.events -= n
        self.nbytes -= batch.nbytes
        self.head_seq += n
        if self._urgent:
            self._urgent -= sum(1 for i in batch.items if type(i) is Waited and i.urgent)
        # What is left (short of a full batch) gets its own linger interval rather
        # than going out at once as a sliver; flush, waiters and size still win.
        self._linger_due = False
        if not self.events:
            self._lingering = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._timer is None and self._bound is not None and not self.closing:
            self._lingering = True
            self._timer = self._bound.call_later(self._linger, self._linger_elapsed)
        self._rearm()
        self._space()
        return first, batch, waited

    def drain(self) -> list[bytes]:
        """Remove everything queued (shutdown, a dead sender, rejected credentials)."""
        items = self.backend.drain()
        self.head_seq += self.events
        self.events = 0
        self.nbytes = 0
        self._urgent = 0
        self._waited = 0
        self._rearm()
        self._space()
        return items


__all__ = ["ADMITTED", "ADMITTED_YIELD", "DECLINED", "DROPPED_ON_ARRIVAL", "Accumulator"]
