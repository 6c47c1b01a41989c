"""A synchronous job worker (the shape of a Celery, RQ or Django-management worker).

    CUSTOMERIO_SITE_ID=... CUSTOMERIO_TRACK_API_KEY=... python -m examples.sync_worker

One blocking ``CustomerIO`` per process, created at import and shared by every job
and thread; jobs that must not be acknowledged before Customer.io accepted their
event use ``track_and_wait`` and let retryable errors propagate (so the job queue
retries them), fire-and-forget jobs use ``track``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from cio_async import ClientConfig, CustomerIO, CustomerIOError

cio = CustomerIO(config=ClientConfig.from_env())


@dataclass(frozen=True)
class Job:
    """One unit of work, as a task queue would deliver it."""

    user_id: str
    kind: str  # "signup" or "order_paid"
    order_id: int | None = None


def handle(job: Job) -> None:
    """Run one job; raises when it should be retried later."""
    if job.kind == "signup":
        cio.identify(job.user_id, {"plan": "free"})
        cio.track(job.user_id, "signed_up")  # fire and forget
    elif job.kind == "order_paid":
        try:
            cio.track_and_wait(job.user_id, "order_paid", {"order_id": job.order_id})
        except CustomerIOError as exc:
            if exc.retryable:
                raise  # the job queue retries it later
            print(f"order {job.order_id}: not retryable, dropped: {exc}")
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")


def run(jobs: Iterable[Job], threads: int = 4) -> list[tuple[Job, BaseException]]:
    """Run ``jobs`` on ``threads`` worker threads; returns the jobs that raised."""
    todo: queue.Queue[Job | None] = queue.Queue()
    failed: list[tuple[Job, BaseException]] = []

    def worker() -> None:
        while (job := todo.get()) is not None:
            try:
                handle(job)
            except Exception as exc:  # noqa: BLE001 - every failed job is reported
                failed.append((job, exc))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for job in jobs:
        todo.put(job)
    for _ in pool:
        todo.put(None)
    for t in pool:
        t.join()
    return failed


if __name__ == "__main__":
    problems = run([Job(str(i), "signup") for i in range(10)] + [Job("1", "order_paid", 7)])
    cio.flush(timeout=10)
    print(f"delivered {cio.stats().delivered}, failed jobs {len(problems)}")
    cio.close(timeout=10)  # a worker's shutdown: flush within the deadline, then stop
