"""A worker thread with a bounded queue that keeps the newest jobs (no ROS).

Subscription callbacks never wait for refinement: they ``submit`` and return. When the queue is
full the oldest job is dropped and handed to ``on_drop`` (the node counts it). A job that raises is
handed to ``on_error`` with the exception; the worker goes on with the next job. ``stop`` sets
``stopping`` (an Event a long job may watch to end early), discards the queue and joins the thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

JobT = TypeVar("JobT")


class LatestQueueWorker(Generic[JobT]):
    """Runs ``process(job)`` on a background thread for the newest ``maxsize`` submitted jobs."""

    def __init__(
        self,
        process: Callable[[JobT], None],
        maxsize: int = 1,
        on_drop: Callable[[JobT], None] | None = None,
        on_error: Callable[[JobT, BaseException], None] | None = None,
        name: str = "gcf-worker",
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._process, self._on_drop, self._on_error = process, on_drop, on_error
        self._maxsize = maxsize
        self._jobs: deque[JobT] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.stopping = threading.Event()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: JobT, replaces: Callable[[JobT], bool] | None = None) -> None:
        """Queue ``job``; queued jobs for which ``replaces(queued)`` is true are discarded
        silently (superseded), then the oldest ones are dropped while the queue is too long."""
        dropped = []
        with self._cond:
            if replaces is not None:
                self._jobs = deque(j for j in self._jobs if not replaces(j))
            self._jobs.append(job)
            while len(self._jobs) > self._maxsize:
                dropped.append(self._jobs.popleft())
            self._cond.notify()
        for job_dropped in dropped:
            if self._on_drop is not None:
                self._on_drop(job_dropped)

    def queued(self) -> int:
        with self._cond:
            return len(self._jobs)

    def any_queued(self, predicate: Callable[[JobT], bool]) -> bool:
        with self._cond:
            return any(predicate(j) for j in self._jobs)

    def idle(self) -> bool:
        with self._cond:
            return not self._jobs and not self._busy

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the current job (which may watch ``stopping``); whether the thread ended
        within ``timeout`` s."""
        self.stopping.set()
        with self._cond:
            self._stop = True
            self._jobs.clear()
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._jobs.popleft()
                self._busy = True
            try:
                self._process(job)
            except Exception as err:  # one bad job must not end the worker
                if self._on_error is not None:
                    self._on_error(job, err)
            finally:
                with self._cond:
                    self._busy = False
