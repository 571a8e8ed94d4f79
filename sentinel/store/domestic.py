"""国产化 rates from the stored inventories (docs/domestic.md): per host its components (sentinel/domestic.py),
rolled up per system, department and the whole cloud, by host and by component, and their daily trend.

The hosts counted are those with an enrolled agent (a decommissioned host leaves the rates, as it leaves the
metrics). A category is counted for a host only where the host's facts show it: a host without a database is
not in the database rate, an older agent's host is in the OS and CPU rates only, and a 国密 state that could not
be determined is not read as "none".

- by host: the share of counted hosts whose components of the category are all domestic;
- by component: the share of the category's components that are domestic (a host with DM and MySQL adds two);
- 国密: the share of hosts whose state is known whose TLS configuration names SM suites (`configured`), with the
  hosts whose library could (`capable`) counted beside it.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, select

from ..domestic import CATEGORIES, CATEGORY_ZH, Category, Component, GmTls, Rules, from_inventory
from .models import Agent, Department, Host, InventorySnapshot, System

H, S, D, A, INV = Host.__table__, System.__table__, Department.__table__, Agent.__table__, InventorySnapshot.__table__
GM_STATES = ("configured", "capable", "none", "unknown")


class HostDomestic(BaseModel):
    host_id: int
    host: str
    system_id: int
    system: str
    department_id: int
    department: str
    inventory_at: Optional[datetime] = Field(description="when the agent sent the inventory the facts are from")
    components: list[Component]
    gm_tls: GmTls

    @property
    def inventoried(self) -> bool:
        return self.inventory_at is not None


class CategoryRate(BaseModel):
    category: Category
    category_zh: str
    hosts: int = Field(description="hosts whose facts show the category")
    hosts_domestic: int = Field(description="of those, hosts whose components of the category are all domestic")
    host_rate: Optional[float] = Field(description="hosts_domestic / hosts; null when no host counts")
    components: int
    components_domestic: int
    component_rate: Optional[float]


class GmRate(BaseModel):
    hosts: int = Field(description="hosts whose 国密 state is known")
    states: dict[str, int] = Field(description="hosts per state: configured, capable, none, unknown")
    rate: Optional[float] = Field(description="configured / hosts (known)")


class Rates(BaseModel):
    scope: Literal["cloud", "department", "system"]
    department_id: Optional[int] = Field(default=None, description="null for the cloud")
    department: Optional[str] = None
    system_id: Optional[int] = Field(default=None, description="set for a system's rates")
    system: Optional[str] = None
    hosts: int = Field(description="hosts with an enrolled agent (inventoried or not)")
    inventoried: int = Field(description="of those, hosts with an inventory: the ones the rates count")
    categories: list[CategoryRate]
    gm_tls: GmRate


def _rate(n: int, d: int) -> Optional[float]:
    return round(n / d, 4) if d else None


def rates(scope: Literal["cloud", "department", "system"], hosts: list[tuple[list[Component], GmTls]],
          enrolled: Optional[int] = None, **identity: Any) -> Rates:
    cats = []
    for cat in CATEGORIES:
        counted = domestic = comps = comps_dom = 0
        for components, _ in hosts:
            mine = [c for c in components if c.category == cat]
            if not mine:
                continue
            counted += 1
            domestic += all(c.origin == "domestic" for c in mine)
            comps += len(mine)
            comps_dom += sum(c.origin == "domestic" for c in mine)
        cats.append(CategoryRate(category=cat, category_zh=CATEGORY_ZH[cat], hosts=counted, hosts_domestic=domestic,
                                 host_rate=_rate(domestic, counted), components=comps, components_domestic=comps_dom,
                                 component_rate=_rate(comps_dom, comps)))
    states = {s: 0 for s in GM_STATES}
    for _, gm in hosts:
        states[gm.state] += 1
    known = len(hosts) - states["unknown"]
    return Rates(scope=scope, hosts=len(hosts) if enrolled is None else enrolled, inventoried=len(hosts),
                 categories=cats, gm_tls=GmRate(hosts=known, states=states, rate=_rate(states["configured"], known)),
                 **identity)


def _enrolled() -> Any:
    return select(A.c.host_id).where(A.c.state == "enrolled").distinct()


def hosts(conn: Connection, rules: Rules, department_ids: Optional[Iterable[int]] = None,
          system_ids: Optional[Iterable[int]] = None) -> list[HostDomestic]:
    """The counted hosts with their components, in department, system and host name order."""
    # only the inventory's keys recognition reads (not its upkeep weeks): the metrics snapshot reads every host
    stmt = (select(H.c.id, H.c.hostname, H.c.inventory["os"].label("os"), H.c.inventory["cpu_model"].label("cpu_model"),
                   H.c.inventory["domestic"].label("domestic"), S.c.id.label("system_id"), S.c.name.label("system"),
                   D.c.id.label("department_id"), D.c.name.label("department"))
            .join(S, S.c.id == H.c.system_id).join(D, D.c.id == H.c.department_id)
            .where(H.c.id.in_(_enrolled())).order_by(D.c.name, S.c.name, H.c.hostname))
    if department_ids is not None:
        stmt = stmt.where(H.c.department_id.in_(list(department_ids)))
    if system_ids is not None:
        stmt = stmt.where(H.c.system_id.in_(list(system_ids)))
    rows = conn.execute(stmt).all()
    latest = dict(conn.execute(select(INV.c.host_id, func.max(INV.c.at)).where(INV.c.host_id.in_([r.id for r in rows]))
                               .group_by(INV.c.host_id)).all()) if rows else {}
    out = []
    for r in rows:
        if r.os is not None:  # every inventory has its os
            components, gm = from_inventory({"os": r.os, "cpu_model": r.cpu_model, "domestic": r.domestic}, rules)
        else:  # no inventory yet: nothing is known of its components
            components, gm = [], GmTls(state="unknown", reason="no inventory received from the host's agent yet")
        at = latest.get(r.id)
        out.append(HostDomestic(host_id=r.id, host=r.hostname, system_id=r.system_id, system=r.system,
                                department_id=r.department_id, department=r.department,
                                inventory_at=at.replace(tzinfo=at.tzinfo or timezone.utc) if at else None,
                                components=components, gm_tls=gm))
    return out


def _pairs(hs: list[HostDomestic]) -> list[tuple[list[Component], GmTls]]:
    return [(h.components, h.gm_tls) for h in hs if h.inventoried]


def cloud(found: list[HostDomestic]) -> Rates:
    return rates("cloud", _pairs(found), enrolled=len(found))


def by_department(conn: Connection, found: list[HostDomestic],
                  department_ids: Optional[Iterable[int]] = None) -> list[Rates]:
    """Every department (in name order), those without hosts too (0 hosts, no rate)."""
    stmt = select(D.c.id, D.c.name).order_by(D.c.name)
    if department_ids is not None:
        stmt = stmt.where(D.c.id.in_(list(department_ids)))
    mine: dict[int, list[HostDomestic]] = defaultdict(list)
    for h in found:
        mine[h.department_id].append(h)
    return [rates("department", _pairs(mine[i]), enrolled=len(mine[i]), department_id=i, department=name)
            for i, name in conn.execute(stmt).all()]


def by_system(conn: Connection, found: list[HostDomestic], department_ids: Optional[Iterable[int]] = None,
              system_ids: Optional[Iterable[int]] = None) -> list[Rates]:
    """Every system (in department and system name order), those without hosts too."""
    stmt = (select(S.c.id, S.c.name, D.c.id.label("department_id"), D.c.name.label("department"))
            .join(D, D.c.id == S.c.department_id).order_by(D.c.name, S.c.name))
    if department_ids is not None:
        stmt = stmt.where(S.c.department_id.in_(list(department_ids)))
    if system_ids is not None:
        stmt = stmt.where(S.c.id.in_(list(system_ids)))
    mine: dict[int, list[HostDomestic]] = defaultdict(list)
    for h in found:
        mine[h.system_id].append(h)
    return [rates("system", _pairs(mine[r.id]), enrolled=len(mine[r.id]), department_id=r.department_id,
                  department=r.department, system_id=r.id, system=r.name) for r in conn.execute(stmt).all()]


class DomesticEvidence(BaseModel):
    """A system's 国产化 figures in its evidence export: its rates and each host's components with the facts that
    recognised them, as of when the export was made."""

    evaluated_at: datetime
    rates: Rates
    hosts: list[HostDomestic]


def evidence(conn: Connection, rules: Rules, system_id: int, now: datetime) -> DomesticEvidence:
    found = hosts(conn, rules, system_ids=[system_id])
    (row,) = by_system(conn, found, system_ids=[system_id])
    return DomesticEvidence(evaluated_at=now, rates=row, hosts=found)


class TrendPoint(BaseModel):
    day: date
    hosts: int
    categories: dict[str, Optional[float]] = Field(description="host rate per category")
    component_rates: dict[str, Optional[float]]
    gm_tls_rate: Optional[float]


class Trend(BaseModel):
    scope: Literal["cloud", "department"]
    department_id: Optional[int] = Field(default=None, description="null for the cloud")
    department: Optional[str] = None
    points: list[TrendPoint]


def trend(conn: Connection, rules: Rules, days: int, today: date,
          department_ids: Optional[Iterable[int]] = None) -> list[Trend]:
    """Daily rates over `days` days up to `today` (UTC), cloud-wide then per department: each day counts each
    current host by its latest inventory sent before the day ended (a host not yet inventoried is not counted)."""
    host_stmt = (select(H.c.id, D.c.id.label("department_id"), D.c.name.label("department"))
                 .join(D, D.c.id == H.c.department_id).where(H.c.id.in_(_enrolled())).order_by(D.c.name))
    if department_ids is not None:
        host_stmt = host_stmt.where(H.c.department_id.in_(list(department_ids)))
    host_rows = conn.execute(host_stmt).all()
    end = datetime.combine(today + timedelta(days=1), time(), timezone.utc)
    history: dict[int, tuple[list[datetime], list[tuple[list[Component], GmTls]]]] = {}
    if host_rows:
        stmt = (select(INV.c.host_id, INV.c.at, INV.c.data["os"].label("os"),
                       INV.c.data["cpu_model"].label("cpu_model"), INV.c.data["domestic"].label("domestic"))
                .where(INV.c.host_id.in_([h.id for h in host_rows]), INV.c.at < end)
                .order_by(INV.c.host_id, INV.c.at, INV.c.id))
        for r in conn.execute(stmt):
            ats, facts = history.setdefault(r.host_id, ([], []))
            ats.append(r.at.replace(tzinfo=r.at.tzinfo or timezone.utc))
            facts.append(from_inventory({"os": r.os, "cpu_model": r.cpu_model, "domestic": r.domestic}, rules))
    groups: list[tuple[Literal["cloud", "department"], Optional[int], Optional[str], list[int]]] = [
        ("cloud", None, None, [h.id for h in host_rows])]
    by_dept: dict[tuple[int, str], list[int]] = defaultdict(list)
    for h in host_rows:
        by_dept[(h.department_id, h.department)].append(h.id)
    groups += [("department", i, name, ids) for (i, name), ids in by_dept.items()]
    out = []
    for scope, gid, name, ids in groups:
        points = []
        for n in range(days - 1, -1, -1):
            day = today - timedelta(days=n)
            day_end = datetime.combine(day + timedelta(days=1), time(), timezone.utc)
            pairs = []
            for hid in ids:
                ats, facts = history.get(hid, ([], []))
                k = bisect.bisect_left(ats, day_end)
                if k:
                    pairs.append(facts[k - 1])
            day_rates = rates("cloud", pairs)
            cats = day_rates.categories
            points.append(TrendPoint(day=day, hosts=day_rates.hosts, categories={c.category: c.host_rate for c in cats},
                                     component_rates={c.category: c.component_rate for c in cats},
                                     gm_tls_rate=day_rates.gm_tls.rate))
        out.append(Trend(scope=scope, department_id=gid, department=name, points=points))
    return out
