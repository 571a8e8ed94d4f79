"""The collector's audit log (who did what to what, from where, and how it ended).

Successful changes are recorded in the same transaction as the change, so the log never claims
something that was rolled back. Refusals are recorded in a transaction of their own, since the
refused work is rolled back. Accepted agent reports are recorded in the `reports` ledger (with
source address and time) rather than here, to keep the ingest path to one transaction.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import insert

from ..store.db import Database
from ..store.models import AuditEntry

log = logging.getLogger("sentinel.collector.audit")

_table = AuditEntry.__table__


def record(conn, *, actor: str, action: str, target: str = "", source_ip: Optional[str] = None,
           outcome: str = "ok", status_code: Optional[int] = None, detail: str = "") -> None:
    conn.execute(insert(_table).values(
        at=datetime.now(timezone.utc), actor=actor[:200], action=action[:64], target=target[:500],
        source_ip=source_ip, outcome=outcome, status_code=status_code, detail=detail[:4000]))


def record_refusal(db: Database, *, actor: str, action: str, target: str = "", source_ip: Optional[str] = None,
                   status_code: int, detail: str, outcome: Optional[str] = None) -> None:
    """Log a refused request in its own transaction. A failure to write is logged, not raised: the
    caller is already answering with the refusal."""
    outcome = outcome or ("denied" if status_code in (401, 403) else "rejected")
    try:
        with db.write() as conn:
            record(conn, actor=actor, action=action, target=target, source_ip=source_ip, outcome=outcome,
                   status_code=status_code, detail=detail)
    except Exception:  # the database may be the very thing failing
        log.exception("could not write audit entry: %s %s %s -> %s %s", actor, action, target, status_code, detail)
