"""Group commit: jobs submitted from many threads are written a batch per transaction.

A submitting thread that finds no batch being written becomes the writer: it takes the waiting jobs
(its own among them) that `pick` admits into one batch, writes them, and wakes the others; a thread
whose job was left for a later batch writes that one. No thread of its own, so nothing to start or
stop. One transaction and one commit for many reports means fewer commits (each an fsync on
PostgreSQL, and a lock hand-over), and the chain lock is taken once per batch instead of per report.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Generic, Optional, TypeVar

J = TypeVar("J")


class Job(Generic[J]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: J) -> None:
        self.item = item
        self.done = False
        self.result: Any = None
        self.error: Optional[BaseException] = None


class GroupCommit(Generic[J]):
    def __init__(self, write: Callable[[list[Job]], None], pick: Callable[[list[Job]], list[Job]]) -> None:
        """`write(batch)` sets each job's result or error; an exception it raises is given to every job of the
        batch not yet done. `pick(waiting)` chooses the next batch from the waiting jobs (oldest first)."""
        self._write = write
        self._pick = pick
        self._cv = threading.Condition()
        self._waiting: list[Job] = []
        self._writing = False

    def submit(self, item: J) -> Any:
        """Block until `item` is written; return its result or raise its error."""
        job = Job(item)
        with self._cv:
            self._waiting.append(job)
            while not job.done:
                if self._writing:
                    self._cv.wait()
                    continue
                batch = self._pick(self._waiting)
                taken = set(map(id, batch))
                self._waiting = [j for j in self._waiting if id(j) not in taken]
                self._writing = True
                self._cv.release()
                try:
                    self._write(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the jobs' own threads
                    for j in batch:
                        if not j.done:
                            j.error, j.done = exc, True
                finally:
                    self._cv.acquire()
                    for j in batch:
                        j.done = True
                    self._writing = False
                    self._cv.notify_all()
        if job.error is not None:
            raise job.error
        return job.result
