"""Group commit: jobs submitted from many threads are prepared, then written a batch per transaction.

The submitting threads take turns: one that finds no preparer while jobs wait unprepared prepares them
all (`prepare`: the CPU-bound checks; a job it settles, e.g. refused, is answered there); one that finds
no writer while prepared jobs wait takes those that `pick` admits into one batch and writes them; the
others wait. No thread of its own, so nothing to start or stop.

By default nothing overlaps: CPU-bound threads of one process fight over the GIL, and a writer that gives
the GIL up around every row (sqlite3) waits behind them for its turn again each time, which made every
report cost about twice the CPU (bench/ingest_bench.py). Parallelism then comes from processes
(`sentinel collector --workers N`). With `overlap` (PostgreSQL, where the writer mostly waits on the
server over a few round trips) the next jobs are prepared while a batch is written. One transaction and
one commit for many reports means fewer commits (each an fsync on PostgreSQL, and a lock hand-over), and
the chain lock is taken once per batch instead of per report.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Optional, TypeVar

J = TypeVar("J")


class Job(Generic[J]):
    __slots__ = ("item", "prepared", "done", "result", "error")

    def __init__(self, item: J) -> None:
        self.item = item
        self.prepared = False
        self.done = False
        self.result: Any = None
        self.error: Optional[BaseException] = None


def _nothing_to_prepare(jobs: list[Job]) -> None:
    return None


class GroupCommit(Generic[J]):
    def __init__(self, write: Callable[[list[Job]], None], pick: Callable[[list[Job]], list[Job]],
                 prepare: Callable[[list[Job]], None] = _nothing_to_prepare, *, overlap: bool = False) -> None:
        """`prepare(jobs)` may replace a job's `item` (what `pick` and `write` then see) or settle the job
        (set its result or error and `done`); an exception it raises becomes the error of every job it
        did not settle. `write(batch)` sets each job's result or error; an exception it raises is given to
        every job of the batch not yet done. `pick(ready)` chooses the next batch from the prepared jobs
        (oldest first). With `overlap`, one thread may prepare while another writes: worth it where the
        writer mostly waits on a server (PostgreSQL: a few round trips per batch), not where it gives the
        GIL up around every row (SQLite)."""
        self._write = write
        self._pick = pick
        self._prepare = prepare
        self._overlap = overlap
        self._cv = threading.Condition()
        self._waiting: list[Job] = []
        self._preparing = False
        self._writing = False

    def submit(self, item: J) -> Any:
        """Block until `item` is written (or settled by `prepare`); return its result or raise its error."""
        job = Job(item)
        with self._cv:
            self._waiting.append(job)
            while not job.done:
                free = self._overlap or not (self._preparing or self._writing)
                if free and not self._preparing and any(not j.prepared for j in self._waiting):
                    self._prepare_round()
                elif free and not self._writing and any(j.prepared for j in self._waiting):
                    self._write_round()
                else:
                    self._cv.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _prepare_round(self) -> None:
        """Prepare the waiting jobs not yet prepared (called and returning with the lock held)."""
        self._preparing = True
        fresh = [j for j in self._waiting if not j.prepared]
        self._unlocked(lambda: self._prepare(fresh), fresh)
        for j in fresh:
            j.prepared = True
        self._waiting = [j for j in self._waiting if not j.done]
        self._preparing = False
        self._cv.notify_all()

    def _write_round(self) -> None:
        """Write the next batch of prepared jobs (called and returning with the lock held)."""
        self._writing = True
        batch = self._pick([j for j in self._waiting if j.prepared])
        taken = set(map(id, batch))
        self._waiting = [j for j in self._waiting if id(j) not in taken]
        self._unlocked(lambda: self._write(batch), batch)
        for j in batch:
            j.done = True
        self._writing = False
        self._cv.notify_all()

    def _unlocked(self, work: Callable[[], None], jobs: list[Job]) -> None:
        """Run `work` with the lock released; an exception it raises becomes the error of every job of `jobs`
        it did not settle (their own threads raise it). Called and returning with the lock held."""
        self._cv.release()
        try:
            work()
        except BaseException as exc:
            for j in jobs:
                if not j.done:
                    j.error, j.done = exc, True
        finally:
            self._cv.acquire()
