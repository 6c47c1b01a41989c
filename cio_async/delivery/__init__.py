"""The delivery core: admission, batching, sending and settlement of queued operations.

Layout (one owner per concern; no module writes another's state)::

    encoder (_encoder)   validate + encode an event (per-person / per-name caches)
        |  offer(bytes)                   one admission path for every backend
        v
    Accumulator          data only, no I/O, no tasks: bounds, when_full, linger,
        |                sequence numbers, "a batch is ready", take()
        |  QueueBackend  where the items wait (memory by default)
        v
    Sender               all I/O: the sender task, batch tasks, retries (one rule,
        |                time-bounded), fast recovery after outages, adaptive
        |                concurrency, 400/413 splitting, settlement, flush/close
        v
    BatchEndpoint        the wire format: body, path and auth, per-item errors

Implementing a queue backend (a durable spool, a Redis stream) needs only
``QueueBackend`` (see its docstrings), never the sender:

- ``deferred_commit``: True if ``append`` may return an awaitable (a group commit).
  Then the fast ``offer`` declines and every admission goes through ``Sender.admit``,
  where an ``await``-ing caller waits for the commit (``*_nowait`` calls do not).
- ``start(arrived)``: called once on the loop before anything else. Announce items
  the backend will hand out that this process did not ``append`` (left
  unacknowledged by a dead process: replayed first; or read from a shared stream by
  a relay) with ``arrived(count, nbytes)``, now or later, on the loop thread.
- ``append(payload) -> Awaitable | None``: the hot path; buffer and return.
- ``take(max_events, max_bytes) -> Batch(items, nbytes, ids)``: the oldest items;
  ``ids`` (any opaque values, or None) address them in ``ack``/``give_back``. Items
  appended in this process must come back as the same objects (``Waited`` items
  carry futures).
- ``ack(ids)``: delivered, or rejected and reported: forget them for good.
- ``give_back(ids)``: not delivered by this process (shutdown): keep them for a
  later one. ``drain()`` does the same for everything still queued and returns it
  (the items also go to ``on_drop``). ``pop_oldest()`` removes and forgets one
  (``when_full="drop_oldest"``). ``aclose()`` releases resources.

The accumulator keeps the event and byte counts (a backend need not), so memory's
``append`` is ``list.append``. ``Sender(endpoint, policy, recorder, on_failure=...,
on_drop=..., backend=..., pool_size=...)`` builds its ``Accumulator`` over the
backend; ``BatchEndpoint`` (``TrackBatchEndpoint(transport)`` for Track v2) lets the
Pipelines API reuse the sender with its own body, path, auth and error parsing.
"""

from ._accumulator import ADMITTED, ADMITTED_YIELD, DECLINED, Accumulator
from ._backend import Arrived, Batch, MemoryBackend, QueueBackend, Waited
from ._concurrency import Concurrency
from ._encoder import EncodeAdmit, encode_event, event_encoder, no_fast_path
from ._endpoint import BatchEndpoint, TrackBatchEndpoint, join_items, track_batch_errors
from ._sender import FlushResult, Sender

__all__ = [
    "ADMITTED",
    "ADMITTED_YIELD",
    "DECLINED",
    "Accumulator",
    "Arrived",
    "Batch",
    "BatchEndpoint",
    "Concurrency",
    "EncodeAdmit",
    "FlushResult",
    "MemoryBackend",
    "QueueBackend",
    "Sender",
    "TrackBatchEndpoint",
    "Waited",
    "encode_event",
    "event_encoder",
    "join_items",
    "no_fast_path",
    "track_batch_errors",
]
