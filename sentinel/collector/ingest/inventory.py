"""Ingest of the rare, small envelopes: inventory and utilisation, verified like host reports and written
in one transaction each (the Ingestor's `_handle_other`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Connection, insert, update

from ...store import envelopes, zombie
from ...store.models import Agent, Host, InventorySnapshot, Report, UtilisationSample
from ..wire import InventoryBody, UtilisationBody
from .verify import Checked, aware
from .write import column_width

T_AGENT, T_HOST, T_REPORT = Agent.__table__, Host.__table__, Report.__table__
T_INVENTORY, T_SAMPLE = InventorySnapshot.__table__, UtilisationSample.__table__
_HOST = T_HOST.c
# The inventory's facts kept on the host row, cut to the columns' widths.
_FACTS = tuple((name, column_width(_HOST[name])) for name in ("arch", "os_id", "os_version", "os_name"))


def store(conn: Connection, c: Checked, source_ip: Optional[str], now: datetime) -> tuple[int, dict[str, Any]]:
    if c.envelope.kind == "inventory":
        _store_inventory(conn, c, now)
    else:
        _store_utilisation(conn, c)
    outcome: dict[str, Any] = {"report_id": c.envelope.report_id, "run_id": None, "new_failures": [], "fixed": []}
    conn.execute(insert(T_REPORT), {
        "report_id": c.envelope.report_id, "kind": c.envelope.kind, "agent_id": c.agent.id,
        "host_id": c.agent.host_id, "department_id": c.agent.department_id, "digest": c.digest,
        "sent_at": c.envelope.sent_at, "received_at": now, "source_ip": source_ip, "signature": c.signature,
        "envelope": envelopes.pack(c.raw), "outcome": outcome})
    conn.execute(update(T_AGENT).where(T_AGENT.c.id == c.agent.id).values(last_seen=now, last_ip=source_ip))
    return 202, outcome


def _store_inventory(conn: Connection, c: Checked, now: datetime) -> None:
    inv: InventoryBody = c.model
    conn.execute(insert(T_INVENTORY).values(
        host_id=c.agent.host_id, department_id=c.agent.department_id, report_id=c.envelope.report_id,
        at=aware(c.envelope.sent_at), arch=inv.arch, cpu_model=inv.cpu_model, cpu_count=inv.cpu_count,
        memory_bytes=inv.memory_bytes, packages_count=inv.packages_count, data=c.body))
    facts = {"arch": inv.arch, "os_id": inv.os.os_id, "os_version": inv.os.os_version, "os_name": inv.os.os_name}
    values: dict[str, Any] = {name: facts[name][:width] for name, width in _FACTS}
    values |= {"inventory": c.body, "last_seen": now}
    if inv.addresses is not None:
        values["addresses"] = inv.addresses
    conn.execute(update(T_HOST).where(T_HOST.c.id == c.agent.host_id).values(**values))


def _store_utilisation(conn: Connection, c: Checked) -> None:
    util: UtilisationBody = c.model
    conn.execute(insert(T_SAMPLE), [
        {"host_id": c.agent.host_id, "department_id": c.agent.department_id, "report_id": c.envelope.report_id,
         "at": s.at, "cpu_percent": s.cpu_percent, "memory_percent": s.memory_percent,
         "net_bytes_sent": s.net_bytes_sent, "net_bytes_recv": s.net_bytes_recv, "logins": s.logins}
        for s in util.samples])
    # the days' roll-up that zombie-system detection reads (sentinel/store/zombie.py), in the same transaction
    zombie.add_samples(conn, c.agent.host_id, c.agent.department_id, util.samples)
