"""The history zombie-system detection reads (sentinel/zombie.py judges it): utilisation rolled up per host and UTC
day as samples are ingested, the upkeep facts of each host's latest inventory, and the reviews (审) of each system.

The roll-up is an upsert per (host, day) in the ingest's transaction, so a day's figures are always those of the
samples stored; an envelope resent from the agent's spool is answered idempotently and never stored twice, so it
is never counted twice either. Reading a window costs `window_days` rows per host, whatever the sample interval.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from typing import Any, Optional

from pydantic import ValidationError
from sqlalchemy import Connection, String, and_, case, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite

from ..upkeep_facts import UpkeepIn
from ..zombie import (
    VERDICT_ZH,
    DayUse,
    HostFacts,
    Review,
    SystemVerdict,
    ZombieSettings,
    ZombieVerdict,
    judge_host,
    review_stands,
    roll_up,
    window,
)
from .models import Agent, Department, Host, InventorySnapshot, System, UtilisationDay, ZombieReview

T_DAY = UtilisationDay.__table__


def _day_rows(host_id: int, department_id: int, samples: Iterable[Any]) -> list[dict[str, Any]]:
    acc: dict[date, dict[str, Any]] = {}
    for s in samples:
        at = s.at.astimezone(timezone.utc)
        row = acc.setdefault(at.date(), {"host_id": host_id, "day": at.date(), "department_id": department_id,
                                         "samples": 0, "hours_mask": 0, "cpu_sum": 0.0, "memory_sum": 0.0,
                                         "net_bytes": 0, "logins_max": 0, "inbound_max": None})
        row["samples"] += 1
        row["hours_mask"] |= 1 << at.hour
        row["cpu_sum"] += s.cpu_percent
        row["memory_sum"] += s.memory_percent
        row["net_bytes"] += s.net_bytes_sent + s.net_bytes_recv
        row["logins_max"] = max(row["logins_max"], s.logins)
        inbound = getattr(s, "inbound_connections", None)
        if inbound is not None:
            row["inbound_max"] = inbound if row["inbound_max"] is None else max(row["inbound_max"], inbound)
    return list(acc.values())


def _greatest(conn: Connection, a: Any, b: Any) -> Any:
    # SQLite's two-argument max() is NULL when either is; PostgreSQL's GREATEST skips NULLs: say it once for both
    if conn.dialect.name == "postgresql":
        return func.greatest(a, b)
    return case((a.is_(None), b), (b.is_(None), a), (a > b, a), else_=b)


def add_samples(conn: Connection, host_id: int, department_id: int, samples: Sequence[Any]) -> None:
    """Fold ingested samples (UtilisationSampleIn) into their days' rows, in the caller's transaction."""
    rows = _day_rows(host_id, department_id, samples)
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(T_DAY)
    new, old = stmt.excluded, T_DAY.c
    stmt = stmt.on_conflict_do_update(index_elements=[old.host_id, old.day], set_={
        "samples": old.samples + new.samples, "hours_mask": old.hours_mask.op("|")(new.hours_mask),
        "cpu_sum": old.cpu_sum + new.cpu_sum, "memory_sum": old.memory_sum + new.memory_sum,
        "net_bytes": old.net_bytes + new.net_bytes, "logins_max": _greatest(conn, old.logins_max, new.logins_max),
        "inbound_max": _greatest(conn, old.inbound_max, new.inbound_max)})
    conn.execute(stmt, rows)


def _upkeep(value: Any) -> Optional[UpkeepIn]:
    if not isinstance(value, dict):
        return None
    try:
        return UpkeepIn.model_validate(value)
    except ValidationError:  # stored before the collector checked the key: read as absent, never as facts
        return None


# Upkeep facts parsed once per stored inventory: the key (store, host, latest inventory row) changes whenever a new
# inventory is stored (hosts.inventory is written in the same transaction), so a hit is always that inventory's
# facts; the metrics' background read then parses only the hosts that sent one since the last read.
_UPKEEP: dict[tuple[str, int, int], Optional[UpkeepIn]] = {}
_UPKEEP_MAX = 200_000


def host_facts(conn: Connection, hosts: Sequence[Any], start: date, host_ids: Any) -> dict[int, HostFacts]:
    """HostFacts of each host row (id, hostname) from `start` on: its days and its latest inventory's upkeep
    facts. `host_ids` selects the same hosts' ids (a subquery: no list of ten thousand parameters)."""
    days: dict[int, list[DayUse]] = defaultdict(list)
    latest: dict[int, tuple[int, datetime]] = {}
    store = conn.engine.url.render_as_string(hide_password=True)
    if hosts:
        D, INV, H = T_DAY, InventorySnapshot.__table__, Host.__table__
        # the day read as text where the driver gives text (SQLite): date.fromisoformat is far cheaper than the
        # generic Date result processor over window_days rows per host
        rows = conn.execute(select(D.c.host_id, type_coerce(D.c.day, String), D.c.samples, D.c.hours_mask, D.c.cpu_sum,
                                   D.c.net_bytes, D.c.logins_max, D.c.inbound_max)
                            .where(and_(D.c.day >= start, D.c.host_id.in_(host_ids)))).all()
        for host_id, day, samples, mask, cpu_sum, net, logins, inbound in rows:
            days[host_id].append(DayUse(day if isinstance(day, date) else date.fromisoformat(day), samples,
                                        bin(mask).count("1"), cpu_sum / samples if samples else 0.0, net, logins,
                                        inbound))
        for host_id, inv_id, at in conn.execute(select(INV.c.host_id, func.max(INV.c.id), func.max(INV.c.at))
                                                .where(INV.c.host_id.in_(host_ids)).group_by(INV.c.host_id)):
            latest[host_id] = (inv_id, _as_utc(at))
        missing = [hid for hid, (inv_id, _) in latest.items() if (store, hid, inv_id) not in _UPKEEP]
        if len(_UPKEEP) + len(missing) > _UPKEEP_MAX:
            _UPKEEP.clear()
        for i in range(0, len(missing), 500):  # bounded IN lists
            chunk = missing[i:i + 500]
            for hid, upkeep in conn.execute(select(H.c.id, H.c.inventory["upkeep"]).where(H.c.id.in_(chunk))):
                _UPKEEP[(store, hid, latest[hid][0])] = _upkeep(upkeep)
    out = {}
    for h in hosts:
        inv = latest.get(h.id)
        out[h.id] = HostFacts(host_id=h.id, name=h.hostname, days=days.get(h.id, []),
                              upkeep=_UPKEEP.get((store, h.id, inv[0])) if inv else None,
                              inventory_at=inv[1] if inv else None)
    return out


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _aware(value: Optional[datetime]) -> Optional[datetime]:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def latest_reviews(conn: Connection, system_ids: Sequence[int]) -> dict[int, Any]:
    R = ZombieReview.__table__
    if not system_ids:
        return {}
    latest = select(func.max(R.c.id)).where(R.c.system_id.in_(system_ids)).group_by(R.c.system_id)
    return {r.system_id: r for r in conn.execute(select(R).where(R.c.id.in_(latest.scalar_subquery())))}


def evaluate(conn: Connection, settings: ZombieSettings, *, now: Optional[datetime] = None,
             system_ids: Optional[Sequence[int]] = None,
             department_ids: Optional[Sequence[int]] = None, evidence: bool = True) -> list[SystemVerdict]:
    """The verdict of each system (all, or those given; in department and name order) and of its current hosts:
    hosts with an enrolled agent (a host whose agents are all revoked is decommissioned). `evidence` False leaves
    the per-day lists out (the metrics need the verdicts only)."""
    now = now or datetime.now(timezone.utc)
    S, D, H, A = System.__table__, Department.__table__, Host.__table__, Agent.__table__
    stmt = select(S.c.id, S.c.name, S.c.department_id, D.c.name.label("department")).join(
        D, D.c.id == S.c.department_id)
    conds = []
    if system_ids is not None:
        conds.append(S.c.id.in_(list(system_ids)))
    if department_ids is not None:
        conds.append(S.c.department_id.in_(list(department_ids)))
    systems = conn.execute(stmt.where(*conds).order_by(D.c.name, S.c.name)).all()
    ids = [s.id for s in systems]
    hosts: Sequence[Any] = []
    enrolled = select(A.c.host_id).where(A.c.state == "enrolled")
    # the systems' hosts as a subquery, so the reads below name no list of ten thousand host ids
    which = and_(H.c.id.in_(enrolled), H.c.system_id.in_(select(S.c.id).where(*conds))) if conds else \
        H.c.id.in_(enrolled)
    if ids:
        hosts = conn.execute(select(H.c.id, H.c.system_id, H.c.hostname).where(which).order_by(H.c.hostname)).all()
    start, end = window(now, settings)
    facts = host_facts(conn, hosts, start, select(H.c.id).where(which))
    by_system: dict[int, list[Any]] = defaultdict(list)
    for h in hosts:
        by_system[h.system_id].append(h)
    reviews = latest_reviews(conn, ids)
    out = []
    for s in systems:
        judged = [judge_host(facts[h.id], now, settings, evidence) for h in by_system.get(s.id, [])]
        verdict = roll_up(judged)
        r = reviews.get(s.id)
        review = None
        if r is not None:
            at = _aware(r.at)
            assert at is not None
            reviewed = ZombieVerdict(r.verdict)
            review = Review(decision=r.decision, reason=r.reason, reviewer=r.reviewer, reviewer_role=r.reviewer_role,
                            at=at, verdict=reviewed,
                            current=review_stands(r.decision, reviewed, at, verdict, now, settings))
        out.append(SystemVerdict(system_id=s.id, system=s.name, department_id=s.department_id,
                                 department=s.department, verdict=verdict, verdict_zh=VERDICT_ZH[verdict],
                                 evaluated_at=now, window_start=start, window_end=end, hosts=judged, review=review))
    return out
