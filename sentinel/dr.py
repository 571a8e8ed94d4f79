"""Disaster recovery per graded system (数据备份恢复, issue 16 points 3-4; docs/backups.md): whether each system
meets its recovery point objective (RPO), judged from its hosts' latest stored results of the backup checks
(checks/backup.py: `backup.copies` on l3-br-backup-rpo and l3-br-offsite-rpo, `backup.replication` on
l3-br-db-replica), with the facts a person can check: which check, which host, which value, when.

- A host **meets** its RPO when both its local and its off-site backup check passed in its latest run and its
  newest backup of each is still within the RPO now (a check that passed yesterday on a backup 20 h old does not
  keep meeting a 24 h RPO while the agent is silent); it **misses** it when either check failed or that newest
  backup has grown past the RPO since; otherwise it is **unknown** (未知): no run yet, a check that errored, was
  not declared, did not run (offline root) or is absent from the host's baseline. Missing data is never "meets".
- A system misses when a host misses, is unknown when a host is unknown (or it has no host), else meets.
- Replication (热冗余) is shown beside it, not in the RPO verdict: `streaming`, `broken` (a declared database has
  no streaming replica), `unknown` (the check errored) or `none` (nothing declared or judged).
- A database replica streaming to a site the site file declares as another one is an off-site copy (异地实时备份,
  8.1.4.9 b): it counts in the off-site copies, and its newest data is the run's time less its lag, so it can
  keep the off-site scope within the RPO; whether the off-site copy is real-time is l3-br-offsite-realtime's
  verdict (`offsite_realtime`). The replicas the site declares as failover targets are listed as facts for
  the assessor of level 4's 异地灾难备份中心 (9.1.4.9 d), which stays a person's verdict.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

LOCAL, OFFSITE, REPLICA = "l3-br-backup-rpo", "l3-br-offsite-rpo", "l3-br-db-replica"
REALTIME = "l3-br-offsite-realtime"
CHECKS = (LOCAL, OFFSITE, REPLICA, REALTIME)
Verdict = Literal["meets", "misses", "unknown"]
Replication = Literal["streaming", "broken", "unknown", "none"]
# l3-br-offsite-realtime: passed, failed, could not be judged (error, waived), or absent/not declared
Realtime = Literal["met", "not_met", "unknown", "none"]
REALTIME_STATES: tuple[Realtime, ...] = ("met", "not_met", "unknown", "none")
VERDICTS: tuple[Verdict, ...] = ("meets", "misses", "unknown")
REPLICATION_STATES: tuple[Replication, ...] = ("streaming", "broken", "unknown", "none")
VERDICT_ZH: dict[str, str] = {"meets": "满足恢复点目标", "misses": "未满足恢复点目标", "unknown": "未知"}


@dataclass(frozen=True)
class StoredResult:
    """One stored result of a backup check in a host's latest run (what sentinel/store/dr.py reads)."""

    check_id: str
    status: str
    reason: Optional[str]
    observed: Any
    evidence: list[Any]
    waiver: Optional[str]
    run_id: int
    checked_at: datetime
    # the newest local and off-site backup in `observed`, parsed once (the metrics' read keeps these objects)
    newest: tuple[Optional[datetime], Optional[datetime]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "newest", (_newest_raw(self.observed, False), _newest_raw(self.observed, True)))


class EvidenceLine(BaseModel):
    source: str
    excerpt: str = ""


class CheckFacts(BaseModel):
    check_id: str
    status: str = Field(description="pass, fail, error or not_applicable, as stored")
    reason: Optional[str] = Field(default=None, description="why fail/error/not_applicable, as the check said")
    waiver: Optional[str] = None
    run_id: int
    checked_at: datetime = Field(description="when the host's run that holds the result finished")
    evidence: list[EvidenceLine] = Field(default_factory=list, description="what was run or read")


class BackupCopyState(BaseModel):
    name: str
    tool: str
    where: Optional[str] = Field(default=None, description="repository, stanza or paths (a URL password masked)")
    site: str
    offsite: bool
    backups: Optional[int] = Field(default=None, description="snapshots, archives or files; null: unreadable")
    newest: Optional[datetime] = None
    age_hours: Optional[float] = Field(default=None, description="the newest backup's age now")
    age_hours_at_check: Optional[float] = None
    within_rpo_at_check: Optional[bool] = None
    error: Optional[str] = None


class DatabaseState(BaseModel):
    database: str
    streaming: int = Field(description="replicas in the streaming state")
    max_lag_seconds: Optional[float] = None
    replicas: list[dict[str, Any]] = Field(default_factory=list)


class HostDR(BaseModel):
    host_id: int
    host: str
    verdict: Verdict
    verdict_zh: str
    reasons: list[str] = Field(description="why the verdict, each naming its check")
    rpo_hours: Optional[float] = Field(default=None, description="the RPO the host's checks judged against")
    checked_at: Optional[datetime] = Field(default=None, description="when the latest run with the results ended")
    copies: list[BackupCopyState] = Field(default_factory=list)
    copy_count: Optional[int] = Field(default=None, description="copies holding a backup")
    offsite_count: Optional[int] = Field(default=None, description="off-site copies holding a backup")
    newest_local: Optional[datetime] = None
    newest_offsite: Optional[datetime] = None
    replication: Replication = "none"
    replication_lag_seconds: Optional[float] = None
    offsite_realtime: Realtime = Field(default="none", description="异地实时备份 (l3-br-offsite-realtime): met, "
                                       "not_met, unknown or none (not declared or not in the baseline)")
    offsite_replicas: Optional[int] = Field(default=None, description="database replicas streaming to another "
                                            "site (counted in offsite_count)")
    failover_targets: list[str] = Field(default_factory=list, description="the replicas declared as failover "
                                        "targets, as seen: facts for 异地灾难备份中心 (level 4), judged by a person")
    databases: list[DatabaseState] = Field(default_factory=list)
    checks: list[CheckFacts] = Field(default_factory=list, description="the stored results, as evidence")


class SystemDR(BaseModel):
    system_id: int
    system: str
    department_id: int
    department: str
    level: int
    verdict: Verdict
    verdict_zh: str
    reasons: list[str]
    rpo_hours: Optional[float] = Field(default=None, description="the smallest RPO its hosts are judged against")
    replication: Replication
    replication_lag_seconds: Optional[float] = None
    offsite_realtime: Realtime = "none"
    failover_targets: list[str] = Field(default_factory=list)
    evaluated_at: datetime
    hosts: list[HostDR]


def _aware(value: Any) -> Optional[datetime]:
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at


def _num(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _copies(observed: Any, now: datetime) -> list[BackupCopyState]:
    rows = observed.get("copies") if isinstance(observed, dict) else None
    out = []
    for r in rows if isinstance(rows, list) else []:
        if not isinstance(r, dict):
            continue
        newest = _aware(r.get("newest"))
        out.append(BackupCopyState(
            name=str(r.get("name", "")), tool=str(r.get("tool", "")), where=r.get("where"),
            site=str(r.get("site", "")), offsite=bool(r.get("offsite")),
            backups=r.get("backups") if isinstance(r.get("backups"), int) else None, newest=newest,
            age_hours=None if newest is None else round((now - newest).total_seconds() / 3600, 2),
            age_hours_at_check=_num(r.get("age_hours")), within_rpo_at_check=r.get("within_rpo"),
            error=r.get("error")))
    return out


def _newest(copies: Iterable[BackupCopyState], offsite: bool) -> Optional[datetime]:
    return max((c.newest for c in copies if c.offsite == offsite and c.newest is not None), default=None)


def _newest_raw(observed: Any, offsite: bool) -> Optional[datetime]:
    """As _newest, from the stored rows themselves: the metrics read judges every host and needs no models."""
    rows = observed.get("copies") if isinstance(observed, dict) else None
    times = [_aware(r.get("newest")) for r in rows if isinstance(r, dict) and bool(r.get("offsite")) == offsite
             and r.get("newest")] if isinstance(rows, list) else []
    return max((t for t in times if t is not None), default=None)


@dataclass(frozen=True)
class _Replica:
    name: str
    kind: str
    database: str
    client: str
    site: Optional[str]
    offsite: bool
    state: str
    lag: float
    realtime: bool
    failover: bool
    newest: Optional[datetime]  # the run's time less the lag, while streaming


def _replicas(r: Optional[StoredResult]) -> list[_Replica]:
    """The replicas of a replication result (pass or fail: an error or a not_applicable holds none)."""
    if r is None or r.status not in ("pass", "fail") or not isinstance(r.observed, dict):
        return []
    out = []
    for d in r.observed.get("databases") or []:
        if not isinstance(d, dict):
            continue
        for x in d.get("replicas") or []:
            if not isinstance(x, dict):
                continue
            lag = _num(x.get("replay_lag_seconds")) or 0.0  # null while a PostgreSQL standby is caught up
            streaming = x.get("state") == "streaming"
            out.append(_Replica(
                name=str(x.get("name") or ""), kind=str(d.get("kind") or ""), database=str(d.get("database", "")),
                client=str(x.get("client") or ""), site=x.get("site"), offsite=bool(x.get("offsite")),
                state=str(x.get("state") or ""), lag=lag,
                realtime=bool(x.get("realtime")), failover=bool(x.get("failover")),
                newest=r.checked_at - timedelta(seconds=lag) if streaming and bool(x.get("offsite")) else None))
    return out


def judge_host(host_id: int, host: str, results: Sequence[StoredResult], now: datetime,
               evidence: bool = True) -> HostDR:
    by_id = {r.check_id: r for r in results}
    reasons: list[str] = []
    states: list[Verdict] = []
    rpos: list[float] = []
    observed: dict[str, Any] = {}
    shown: Optional[StoredResult] = None
    # the replicas as the real-time check saw them, else as the hot-redundancy check did (one declaration)
    real = by_id.get(REALTIME)
    links = _replicas(real) or _replicas(by_id.get(REPLICA))
    via = max((x for x in links if x.newest is not None), key=lambda x: x.newest or now, default=None)
    for cid, offsite in ((LOCAL, False), (OFFSITE, True)):
        scope = "off-site" if offsite else "local"
        r = by_id.get(cid)
        rpo = _rpo(r)
        if offsite and via is not None and via.newest is not None:
            rpo_via = rpo if rpo is not None else next(
                (x for x in (_rpo(by_id.get(LOCAL)), _rpo(real), _rpo(by_id.get(REPLICA))) if x is not None), None)
            if rpo_via is not None and now - via.newest <= timedelta(hours=rpo_via):
                # a replica streaming to another site is an off-site copy whose newest data is the run's time
                # less its lag: the off-site scope is within the RPO whatever the scheduled copies say
                if r is not None and isinstance(r.observed, dict) and not observed:
                    observed, shown = r.observed, r
                rpos.append(rpo_via)
                states.append("meets")
                reasons.append(f"{cid}: off-site replica {via.name or via.client} ({via.kind}, site {via.site}) "
                               f"streaming at {via.newest.isoformat(timespec='seconds')} (lag {via.lag:g} s), "
                               f"within the RPO of {rpo_via:g} h")
                continue
        if r is None:
            states.append("unknown")
            reasons.append(f"{cid}: no result in the host's latest run (no run yet, or not in its baseline)")
            continue
        if isinstance(r.observed, dict) and not observed:
            observed, shown = r.observed, r  # both checks usually show the same declared copies: the first
        if rpo is not None:
            rpos.append(rpo)
        if r.waiver:
            states.append("unknown")
            reasons.append(f"{cid}: waived ({r.waiver})")
        elif r.status == "fail":
            states.append("misses")
            reasons.append(f"{cid}: failed at {r.checked_at.isoformat(timespec='seconds')}: {r.reason or ''}".strip())
        elif r.status == "pass":
            newest = r.newest[offsite]
            if rpo is not None and newest is not None and now - newest > timedelta(hours=rpo):
                states.append("misses")
                reasons.append(f"{cid}: passed at {r.checked_at.isoformat(timespec='seconds')}, but the newest "
                               f"{scope} backup ({newest.isoformat(timespec='seconds')}) is now older than the "
                               f"RPO of {rpo:g} h")
            else:
                states.append("meets")
                reasons.append(f"{cid}: passed at {r.checked_at.isoformat(timespec='seconds')}")
        else:
            states.append("unknown")
            reasons.append(f"{cid}: {r.status}: {r.reason or 'no reason stored'}")
    verdict: Verdict = "misses" if "misses" in states else "unknown" if "unknown" in states else "meets"
    replication, lag, dbs = _replication(by_id.get(REPLICA), reasons, evidence)
    realtime = _realtime(real, reasons)
    checked = max((r.checked_at for r in results), default=None)
    offsite_links = [x for x in links if x.newest is not None]
    held = observed.get("copies")
    rows: list[Any] = held if isinstance(held, list) else []
    # an off-site copies result that read the replicas itself holds them as rows already: not twice
    extra = [] if any(isinstance(r, dict) and r.get("replica") for r in rows) else links
    copies = (_copies(observed, now) + [_link_copy(x, now) for x in extra if x.site is not None]) if evidence else []
    offsite_count = observed.get("offsite_count") if isinstance(observed.get("offsite_count"), int) else None
    if extra and offsite_links:
        offsite_count = (offsite_count or 0) + len(offsite_links)
    newest_offsite = max((t for t in (shown.newest[1] if shown else None, via.newest if via else None)
                          if t is not None), default=None)
    return HostDR(
        host_id=host_id, host=host, verdict=verdict, verdict_zh=VERDICT_ZH[verdict], reasons=reasons,
        rpo_hours=min(rpos) if rpos else None,
        checked_at=checked, copies=copies,
        copy_count=observed.get("copy_count") if isinstance(observed.get("copy_count"), int) else None,
        offsite_count=offsite_count,
        newest_local=shown.newest[0] if shown else None, newest_offsite=newest_offsite,
        replication=replication, replication_lag_seconds=lag, offsite_realtime=realtime,
        offsite_replicas=len(offsite_links) if links else None,
        failover_targets=[_fact(x) for x in links if x.failover], databases=dbs,
        checks=[_facts(r) for r in results] if evidence else [])


def _replication(r: Optional[StoredResult], reasons: list[str],
                 evidence: bool) -> tuple[Replication, Optional[float], list[DatabaseState]]:
    if r is None or r.waiver or r.status == "not_applicable":
        return "none", None, []
    obs = r.observed if isinstance(r.observed, dict) else {}
    dbs = [DatabaseState(database=str(d.get("database", "")), streaming=int(d.get("streaming") or 0),
                         max_lag_seconds=_num(d.get("max_lag_seconds")),
                         replicas=[x for x in d.get("replicas") or [] if isinstance(x, dict)])
           for d in obs.get("databases") or [] if isinstance(d, dict)] if evidence else []
    lag = _num(obs.get("max_lag_seconds"))
    if r.status == "pass":
        return "streaming", lag, dbs
    if r.status == "fail":
        reasons.append(f"{REPLICA}: failed at {r.checked_at.isoformat(timespec='seconds')}: {r.reason or ''}".strip())
        return "broken", lag, dbs
    reasons.append(f"{REPLICA}: {r.status}: {r.reason or 'no reason stored'}")
    return "unknown", lag, dbs


def _rpo(r: Optional[StoredResult]) -> Optional[float]:
    return _num(r.observed.get("rpo_hours")) if r is not None and isinstance(r.observed, dict) else None


def _realtime(r: Optional[StoredResult], reasons: list[str]) -> Realtime:
    if r is None or r.status == "not_applicable":
        return "none"
    if r.waiver:
        return "unknown"
    if r.status == "pass":
        return "met"
    reasons.append(f"{REALTIME}: {'failed' if r.status == 'fail' else r.status} at "
                   f"{r.checked_at.isoformat(timespec='seconds')}: {r.reason or ''}".strip())
    return "not_met" if r.status == "fail" else "unknown"


def _link_copy(x: _Replica, now: datetime) -> BackupCopyState:
    """A replica placed at a site, as a copy row: its newest data the run's time less its lag while streaming."""
    return BackupCopyState(
        name=x.name or x.client, tool=f"{x.kind or 'database'} replica", where=f"{x.database} <-> {x.client}",
        site=str(x.site), offsite=x.offsite, backups=None, newest=x.newest,
        age_hours=None if x.newest is None else round((now - x.newest).total_seconds() / 3600, 2),
        error=None if x.state == "streaming" else f"not streaming ({x.state})")


def _fact(x: _Replica) -> str:
    return (f"{x.name or x.client} ({x.kind}, {x.database}) at site {x.site or '?'}: {x.state}, lag {x.lag:g} s"
            + (", real-time off-site copy" if x.realtime else ", not a real-time off-site copy"))


def _facts(r: StoredResult) -> CheckFacts:
    lines = [EvidenceLine(source=str(e.get("source", "")), excerpt=str(e.get("excerpt", "")))
             for e in r.evidence if isinstance(e, dict)]
    return CheckFacts(check_id=r.check_id, status=r.status, reason=r.reason, waiver=r.waiver, run_id=r.run_id,
                      checked_at=r.checked_at, evidence=lines)


def roll_up(system_id: int, system: str, department_id: int, department: str, level: int, hosts: list[HostDR],
            now: datetime) -> SystemDR:
    reasons: list[str] = []
    if not hosts:
        verdict: Verdict = "unknown"
        reasons.append("no host with an enrolled agent")
    else:
        verdict = ("misses" if any(h.verdict == "misses" for h in hosts) else
                   "unknown" if any(h.verdict == "unknown" for h in hosts) else "meets")
        reasons += [f"{h.host}: {why}" for h in hosts if h.verdict == verdict for why in h.reasons
                    if verdict == "meets" or ": passed at" not in why or "now older" in why]
    states = {h.replication for h in hosts}
    replication: Replication = next((s for s in ("broken", "unknown", "streaming") if s in states), "none")
    lags = [h.replication_lag_seconds for h in hosts if h.replication_lag_seconds is not None]
    rpos = [h.rpo_hours for h in hosts if h.rpo_hours is not None]
    reals = {h.offsite_realtime for h in hosts}
    realtime: Realtime = next((s for s in ("not_met", "unknown", "met") if s in reals), "none")
    return SystemDR(system_id=system_id, system=system, department_id=department_id, department=department,
                    level=level, verdict=verdict, verdict_zh=VERDICT_ZH[verdict], reasons=reasons,
                    rpo_hours=min(rpos) if rpos else None, replication=replication,
                    replication_lag_seconds=max(lags) if lags else None, offsite_realtime=realtime,
                    failover_targets=[f"{h.host}: {t}" for h in hosts for t in h.failover_targets],
                    evaluated_at=now, hosts=hosts)
