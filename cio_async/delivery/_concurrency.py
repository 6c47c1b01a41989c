"""How many batches may be in flight: a fixed number, or an adaptive limit.

The adaptive limit follows AIMD with a latency check (after Vector's adaptive request
concurrency and Netflix's concurrency-limits): while the limit is in use and round
trips stay near the fastest seen, it grows by one per limit's worth of successes
(about one per round trip); a 429, a 5xx, a network error or a timeout halves it, and
a round trip well above the baseline shrinks it a little. A request that opened a
new connection (``fresh``) pays for its TCP and TLS handshakes, about three round
trips: that is the pool growing, not the server slowing, so its time is not judged.
It stays within
``[1, maximum]`` (the connection pool, or ``BatchPolicy.max_in_flight``).
"""

from __future__ import annotations

#: A round trip this many times the baseline, plus ``_SLACK`` seconds (scheduling
#: jitter on a busy event loop is not congestion), counts as rising latency.
_SLOW = 2.0
_SLACK = 0.02
#: The baseline forgets old minima slowly, so a path that got slower for good is
#: re-learned rather than held against the limit for ever.
_BASELINE_DRIFT = 0.01


class Concurrency:
    """The limit on batches in flight (``limit``, read by the sender each time)."""

    __slots__ = ("_baseline", "_max", "_value", "adaptive", "limit")

    def __init__(self, initial: int, maximum: int, adaptive: bool = True) -> None:
        self._max = max(1, maximum)
        self._value = float(min(max(1, initial), self._max))
        self.adaptive = adaptive
        self._baseline = 0.0
        #: The current limit (a whole number of batches).
        self.limit = int(self._value)

    @classmethod
    def fixed(cls, limit: int) -> Concurrency:
        """A limit that never changes."""
        return cls(limit, limit, adaptive=False)

    def succeeded(self, rtt: float, in_flight: int, fresh: bool = False) -> None:
        """A request was answered in ``rtt`` seconds with ``in_flight`` batches out;
        ``fresh`` when it had to open a new connection (its time is not judged)."""
        if not self.adaptive:
            return
        slow = False  # a fresh connection's handshakes are not latency: not judged
        if not fresh:
            base = self._baseline
            if base == 0.0 or rtt < base:
                self._baseline = base = rtt
            else:
                self._baseline = base + (rtt - base) * _BASELINE_DRIFT
            slow = rtt > base * _SLOW + _SLACK
        if slow:
            self._value = max(1.0, self._value * 0.9)
        elif in_flight >= self.limit:
            # Grow only when the limit is what holds the sender back.
            self._value = min(float(self._max), self._value + 1.0 / self._value)
        self.limit = int(self._value)

    def congested(self) -> None:
        """A 429, 5xx, network error or timeout: back off multiplicatively."""
        if not self.adaptive:
            return
        self._value = max(1.0, self._value / 2)
        self.limit = int(self._value)


__all__ = ["Concurrency"]
