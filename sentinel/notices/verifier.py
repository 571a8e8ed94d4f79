"""Re-verification on a timer in the collector: every `verify_seconds` the notified problems are checked against
their sources (sentinel/notices/loop.py verify), so an item turns fixed soon after the run, scan or round that
showed it gone, and overdue (escalating) soon after its deadline, with no one asking.

Several collector processes on one database each verify; verification is idempotent (a problem escalates once:
the second process finds it escalated, and a rare simultaneous escalation gives two events with one fingerprint,
which the publishers de-duplicate)."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Optional

from ..store.db import Database
from ..zombie import ZombieSettings
from . import loop

log = logging.getLogger("sentinel.notices")


class Verifier:
    def __init__(self, db: Database, every_seconds: float, zombie: ZombieSettings) -> None:
        self.db, self.every, self.zombie = db, every_seconds, zombie
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.every <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="notice-verifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def run_once(self) -> dict[str, int]:
        with self.db.session(write=True) as s:
            return loop.verify(s, datetime.now(timezone.utc), self.zombie)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                counts = self.run_once()
                if counts["escalated"]:
                    log.warning("notice verification: %s", counts)
            except Exception:  # a failed round (database away) is retried at the next one, never ends the loop
                log.exception("notice verification failed")
