"""Blocking calls to dependencies (ping, consumer lag) that answer within a deadline.

A readiness probe or a metrics scrape must answer even when Kafka, Redis or the database
hangs. Each named check runs on its own daemon thread and the caller waits only until the
deadline; a call that is still running from an earlier request is joined rather than started
again, so a hung dependency holds one thread per check, never one per request.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

T = TypeVar("T")
_Job = tuple[Callable[[], Any], Future[Any]] | None


class CheckTimeout(TimeoutError):
    pass


class _Worker:
    """One daemon thread running the calls of one check, one at a time."""

    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.in_flight: Future[Any] | None = None
        self.thread = threading.Thread(target=self._run, name=f"check:{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            call, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller, who reports it
                future.set_exception(exc)


class DependencyChecks:
    """Named blocking calls with a deadline; one instance per app (see `create_app`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, _Worker] = {}
        self._closed = False

    def submit(self, name: str, call: Callable[[], T]) -> Future[T]:
        """Start `call` under `name`, or return the call of that name still in flight."""
        with self._lock:
            if self._closed:
                raise RuntimeError("dependency checks are closed")
            worker = self._workers.get(name)
            if worker is None:
                worker = self._workers[name] = _Worker(name)
            if worker.in_flight is not None and not worker.in_flight.done():
                return worker.in_flight
            future: Future[T] = Future()
            worker.in_flight = future
            worker.jobs.put((call, future))
            return future

    def run(
        self, calls: Mapping[str, Callable[[], T]], timeout: float
    ) -> dict[str, T | BaseException]:
        """Run the calls side by side; each answer is its result, its exception, or a
        `CheckTimeout` when it did not finish within `timeout` seconds."""
        futures = {name: self.submit(name, call) for name, call in calls.items()}
        wait(futures.values(), timeout)
        answers: dict[str, T | BaseException] = {}
        for name, future in futures.items():
            if not future.done():
                answers[name] = CheckTimeout(f"no answer within {timeout:g}s")
            elif (exc := future.exception()) is not None:
                answers[name] = exc
            else:
                answers[name] = future.result()
        return answers

    def close(self) -> None:
        """Let idle worker threads end; a thread stuck in a hung call ends with the process."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.jobs.put(None)


def get_checks(request: Request) -> DependencyChecks:
    checks: DependencyChecks = request.app.state.checks
    return checks


Checks = Annotated[DependencyChecks, Depends(get_checks)]
