"""Scale-out on Redis (the optional extra ``cio_async[redis]``: redis-py with hiredis).

For a fleet of processes against one Customer.io workspace:

- ``RedisRateBudget``: one rate budget per region, workspace and API shared by every
  process (GCRA in a Lua script on the server's clock; a 429 pauses them all), with a
  local fallback at budget / N while Redis is unreachable;
- ``RedisDedupCache``: identify deduplication shared by every process, behind a
  small local cache, failing open;
- ``RedisStreamTarget`` / ``RedisStreamRelay``: application processes
  (``AsyncCustomerIO(stream=RedisStreamTarget(url))``) append their batches to a
  Redis stream; ``cio-async relay`` processes (one consumer group) deliver them
  through the same batching sender, at least once.

``import cio_async`` never imports this package (nor redis).
"""

from ._dedup import RedisDedupCache
from ._gcra import RedisRateBudget, RedisRateLimiter
from ._producer import RedisStreamTarget
from ._relay import RedisStreamRelay, RelayOptions, RelayStats, default_consumer_name
from ._stream import Entry, StreamConfig, StreamConsumer, StreamFullError, StreamWriter

__all__ = [
    "Entry",
    "RedisDedupCache",
    "RedisRateBudget",
    "RedisRateLimiter",
    "RedisStreamRelay",
    "RedisStreamTarget",
    "RelayOptions",
    "RelayStats",
    "StreamConfig",
    "StreamConsumer",
    "StreamFullError",
    "StreamWriter",
    "default_consumer_name",
]
