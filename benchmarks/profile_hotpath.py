"""Profile cio_async's hot path: ``python -m benchmarks.profile_hotpath [--events N]``.

First the building blocks of one admission timed alone (timeit); then two profiles,
printed as the top functions by own time with microseconds per call
and per event (cProfile; its own overhead inflates every number by a similar
factor, so read the ranking and the shares, not the absolute values):

- ``admission``: ``track_nowait`` in a loop, nothing sent (as in ``micro.py``);
- ``stream``: ``await track`` for N events end to end against the stand-in process
  (lean mode, RTT 0), so the sender, batching and aiohttp show up too.

``--pyinstrument`` prints a pyinstrument call tree of the stream instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
from typing import Any

from ._util import StandInProcess
from .micro import _client, _closed, _datas
from .peers import EVENT_NAME, USERS, CioAsync, _quiet


def _top(prof: cProfile.Profile, events: int, limit: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{file.rsplit('/', 2)[-2:][-1]}:{line}({func})",
                "calls": ncalls,
                "own_s": tottime,
                "cum_s": cumtime,
                "us_per_call": tottime / ncalls * 1e6 if ncalls else 0.0,
                "own_us_per_event": tottime / events * 1e6,
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:limit]


def _print(title: str, rows: list[dict[str, Any]], total_s: float, events: int) -> None:
    print(f"\n== {title}: {events:,} events, {total_s / events * 1e6:.2f} µs/event under cProfile")
    print(f"{'own µs/event':>12} {'µs/call':>8} {'calls':>10}  function")
    for r in rows:
        print(
            f"{r['own_us_per_event']:12.3f} {r['us_per_call']:8.3f} {r['calls']:10,}  "
            f"{r['function']}"
        )


def profile_admission(events: int, limit: int) -> None:
    async def main() -> float:
        cio = _client()
        await cio.start()
        datas = _datas(1000)
        track = cio.track_nowait
        for i in range(2000):
            track(USERS[i % 10_000], EVENT_NAME, datas[i % 1000])
        prof = cProfile.Profile()
        prof.enable()
        for i in range(events):
            track(USERS[i % 10_000], EVENT_NAME, datas[i % 1000])
        prof.disable()
        await _closed(cio)
        total = sum(v[2] for v in pstats.Stats(prof).stats.values())  # type: ignore[attr-defined]
        _print("admission (track_nowait)", _top(prof, events, limit), total, events)
        return total

    asyncio.run(main())


def profile_stream(events: int, limit: int, pyinstrument: bool) -> None:
    with StandInProcess(rtt=0.0) as s:
        s.configure(lean=True)
        peer = CioAsync(s.spec())

        async def main() -> None:
            async with peer.client() as cio:
                await cio.track("warm-up", EVENT_NAME, wait=True)
                for i in range(events):
                    await cio.track(USERS[i % 10_000], EVENT_NAME, {"path": "/pricing", "n": i})
                await cio.flush(timeout=120)

        if pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            asyncio.run(main())
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
            return
        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(main())
        prof.disable()
        total = sum(v[2] for v in pstats.Stats(prof).stats.values())  # type: ignore[attr-defined]
        _print("stream (await track, end to end)", _top(prof, events, limit), total, events)


def components(number: int = 200_000) -> None:
    """The building blocks of one admission, each timed alone with ``timeit`` (no
    profiler overhead): where the microseconds of ``track_nowait`` go."""
    import timeit

    import orjson

    from cio_async import Person
    from cio_async._dedup import fingerprint, person_digest
    from cio_async._encode import dumps, new_ulid
    from cio_async._model import as_person

    data = {"path": "/pricing", "n": 1}
    op = {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "user-1"},
        "name": EVENT_NAME,
        "id": new_ulid(),
        "timestamp": 1_700_000_000,
        "attributes": data,
    }
    person = Person("user-1")
    attrs = {"email": "ada@example.com", "plan": "pro", "seats": 3}
    cases = {
        "new_ulid()": lambda: new_ulid(),
        "orjson.dumps(op)": lambda: orjson.dumps(op),
        "cio_async dumps(op) (orjson + default)": lambda: dumps(op),
        "as_person('user-1')": lambda: as_person("user-1"),
        "Person.event(name, data) (op built + encoded)": lambda: person.event(EVENT_NAME, data),
        "Person.identify(attrs)": lambda: person.identify(attrs),
        "fingerprint(attrs)": lambda: fingerprint(attrs),
        "person_digest(key)": lambda: person_digest("id:user-1"),
    }
    print(f"\n== components (timeit, {number:,} calls each, best of 3)")
    for label, fn in cases.items():
        best = min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6
        print(f"{best:8.3f} µs  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.profile_hotpath")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--only", choices=("components", "admission", "stream"), default=None)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args(argv)
    _quiet()
    if args.only in (None, "components"):
        components()
    if args.only in (None, "admission"):
        profile_admission(args.events, args.top)
    if args.only in (None, "stream"):
        profile_stream(args.events, args.top, args.pyinstrument)
    return 0


if __name__ == "__main__":
    sys.exit(main())
