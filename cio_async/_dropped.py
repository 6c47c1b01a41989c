"""``DROPPED``: what a queued call returns instead of its result when the
``drop_newest`` policy dropped the operation at the call."""

from __future__ import annotations

from typing import Final


class Dropped(str):
    """The type of ``DROPPED`` (one instance; compare with ``is``).

    An empty, falsy ``str``, so ``track()``'s return type stays ``str`` and
    ``if not event_id:`` catches a drop as well as ``event_id is DROPPED`` does.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "cio_async.DROPPED"

    def __reduce__(self) -> str:
        return "DROPPED"  # unpickles as the one instance


#: Returned instead of an event id (``track``, ``page``, ``screen`` and their
#: ``*_nowait`` forms) or of True (``identify``) when ``BatchPolicy(when_full=
#: "drop_newest")`` dropped the operation at the call because the queue was full. The
#: operation also went to ``on_drop`` with reason ``queue_full``.
DROPPED: Final[Dropped] = Dropped()

__all__ = ["DROPPED", "Dropped"]
