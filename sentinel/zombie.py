"""Zombie-system detection (僵尸信息系统): the rules, over typed inputs, with no store or clock of their own.

A host is judged on three signals, each `yes`, `no` or `unknown` with the facts and dates behind it:

- **idle** (资源长期闲置): the last `window_days` whole UTC days of utilisation. A day counts only when its
  samples cover `day_min_hours` distinct hours; it is idle when its average CPU is at most `idle_cpu_percent`
  and its network bytes (sent + received, loopback left out by the agent) at most `idle_net_bytes`. `yes` when
  at least `idle_min_days` days are idle, `no` when even counting every uncovered day as idle would not reach
  that, otherwise `unknown`: a day without samples is never an idle day.
- **stale** (运维更新停止): days since the last package change, the last configuration change under /etc and
  the kernel's build (or install) date, from an inventory at most `inventory_max_age_days` old. `no` when any
  known fact is within its limit, `yes` when every known fact is past it and the package fact is known.
- **unused** (少人使用): logins and distinct users per ISO week in the last `use_weeks` weeks the login records
  fully cover, the established inbound connections to listening ports the samples saw, and the web requests from
  other hosts the access logs hold. `no` when a week or a day shows more than the limits allow; `yes` when every
  covered week is under them (and no day's connections are); `unknown` when the records do not cover enough
  weeks or the sessions the samples saw contradict them.

Verdict: 僵尸 (`zombie`) with at least `zombie_signals` signals `yes`; 疑似僵尸 (`suspect`) with at least
`suspect_signals`; 在用 (`in_use`) when even the unknown signals could not make it a suspect; otherwise 未知
(`unknown`). A graded system is `zombie` when all its judged hosts are, `in_use` when one of them is, `suspect`
when some are suspect or zombie and none in use, `unknown` when nothing could be judged.

The cloud providers' rules are the floor a site may loosen thresholds to, never past: AWS Trusted Advisor's
low-utilisation check (daily CPU <= 10 % and network I/O <= 5 MB on >= 4 of the last 14 days); sentinel's own
default is stricter (Azure Advisor's 5 % CPU, idle on 12 of 14 days: "long periods"). The AWS rule's outcome is
also reported with each host's idle evidence. docs/zombie.md gives every default with its source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .upkeep_facts import RequestWeekIn, UpkeepIn

MB = 1024 * 1024
#: AWS Trusted Advisor, "Low Utilization Amazon EC2 Instances": the loosest rule a site may configure
AWS_CPU_PERCENT, AWS_NET_BYTES, AWS_MIN_DAYS, AWS_WINDOW_DAYS = 10.0, 5 * MB, 4, 14


class ZombieVerdict(str, Enum):
    IN_USE = "in_use"
    SUSPECT = "suspect"
    ZOMBIE = "zombie"
    UNKNOWN = "unknown"


VERDICT_ZH = {ZombieVerdict.IN_USE: "在用", ZombieVerdict.SUSPECT: "疑似僵尸", ZombieVerdict.ZOMBIE: "僵尸",
              ZombieVerdict.UNKNOWN: "未知"}
State = Literal["yes", "no", "unknown"]
SIGNALS = ("idle", "stale", "unused")


class ZombieSettings(BaseModel):
    """The site's thresholds and windows (the collector's `zombie:` setting); defaults in docs/zombie.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(default=14, ge=7, le=90, description="whole UTC days of utilisation judged")
    day_min_hours: int = Field(default=20, ge=1, le=24, description="distinct hours with samples for a day to count")
    idle_cpu_percent: float = Field(default=5.0, ge=0, le=AWS_CPU_PERCENT,
                                    description="an idle day's average CPU at most (Azure Advisor's default)")
    idle_net_bytes: int = Field(default=5 * MB, ge=0, le=AWS_NET_BYTES,
                                description="an idle day's network bytes, sent + received, at most")
    idle_min_days: int = Field(default=12, ge=AWS_MIN_DAYS, description="idle days in the window for `idle`")
    inventory_max_age_days: int = Field(default=7, ge=1, le=90, description="older upkeep facts are not used")
    package_days: int = Field(default=180, ge=7, description="days without a package change for `stale`")
    config_days: int = Field(default=180, ge=7, description="days without a change under /etc for `stale`")
    kernel_days: int = Field(default=365, ge=30, description="kernel build (or install) age for `stale`")
    use_weeks: int = Field(default=4, ge=1, le=8, description="whole weeks of login records judged")
    max_logins_per_week: int = Field(default=1, ge=0, description="a week with more logins is use")
    max_users_per_week: int = Field(default=1, ge=0, description="a week with more distinct users is use")
    max_inbound_connections: int = Field(default=2, ge=0,
                                         description="a day whose samples saw more inbound connections is use")
    max_requests_per_week: int = Field(default=50, ge=0, description="a week whose web access logs hold more "
                                       "requests from other hosts is use")
    suspect_signals: int = Field(default=2, ge=1, le=3)
    zombie_signals: int = Field(default=3, ge=1, le=3)
    review_days: int = Field(default=90, ge=1, le=3650, description="how long a dismissal stands")

    @model_validator(mode="after")
    def _floor(self) -> ZombieSettings:
        if self.idle_min_days > self.window_days:
            raise ValueError(f"idle_min_days ({self.idle_min_days}) exceeds window_days ({self.window_days})")
        if self.idle_min_days * AWS_WINDOW_DAYS < AWS_MIN_DAYS * self.window_days:
            raise ValueError(f"idle_min_days {self.idle_min_days} of {self.window_days} days is looser than AWS "
                             f"Trusted Advisor's {AWS_MIN_DAYS} of {AWS_WINDOW_DAYS}, the floor")
        if self.zombie_signals < self.suspect_signals:
            raise ValueError("zombie_signals must be at least suspect_signals")
        return self


@dataclass(frozen=True, slots=True)
class DayUse:
    """One UTC day of a host's utilisation samples, as the store's daily roll-up keeps it."""

    day: date
    samples: int
    hours: int  # distinct hours of the day with a sample
    cpu_avg: float
    net_bytes: int
    logins_max: int
    inbound_max: Optional[int]  # None: no sample of the day carried inbound connections (older agents)


@dataclass(frozen=True)
class HostFacts:
    host_id: int
    name: str
    days: list[DayUse] = field(default_factory=list)
    upkeep: Optional[UpkeepIn] = None
    inventory_at: Optional[datetime] = None  # when the inventory holding `upkeep` was made


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Signal(_Out):
    name: Literal["idle", "stale", "unused"]
    state: State
    reason_zh: str
    reason_en: str
    facts: dict[str, Any] = Field(default_factory=dict)



class HostVerdict(_Out):
    host_id: int
    host: str
    verdict: ZombieVerdict
    verdict_zh: str
    signals: list[Signal]  # idle, stale, unused (empty where only the verdict was asked for: the metrics)
    idle_days: Optional[int] = None  # None: no covered day in the window


class Review(_Out):
    decision: Literal["confirm", "dismiss"]
    reason: str
    reviewer: str
    reviewer_role: str  # admin (the authority's review) or dept_operator, as the reviewer was when reviewing
    at: datetime
    verdict: ZombieVerdict  # the system's verdict when it was reviewed
    current: bool  # still stands: the verdict is the one reviewed and (a dismissal) not older than review_days


class SystemVerdict(_Out):
    system_id: int
    system: str
    department_id: int
    department: str
    verdict: ZombieVerdict
    verdict_zh: str
    evaluated_at: datetime
    window_start: date
    window_end: date  # exclusive: the window is [start, end)
    hosts: list[HostVerdict]
    review: Optional[Review] = None


@dataclass(frozen=True, slots=True)
class _Sig:
    """A signal as the rules make it: a plain record, turned into a (validated) Signal only for the evidence, since
    the metrics judge every host of the site on each read and need the states alone."""

    name: Literal["idle", "stale", "unused"]
    state: State
    reason_zh: str
    reason_en: str
    facts: dict[str, Any]


def _signal(*, name: Literal["idle", "stale", "unused"], state: State, reason_zh: str, reason_en: str,
            facts: dict[str, Any]) -> _Sig:
    return _Sig(name, state, reason_zh, reason_en, facts)


def _iso(dt: Optional[datetime]) -> Optional[str]:
    """Facts hold JSON values from the start (times as RFC 3339 strings): a verdict kept in an export reads back
    equal, and no conversion runs per host when the metrics judge ten thousand."""
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def window(now: datetime, settings: ZombieSettings) -> tuple[date, date]:
    end = now.date()  # today is not whole yet
    return end - timedelta(days=settings.window_days), end


# ---- the three signals -------------------------------------------------------------------------------------


def idle_signal(days: list[DayUse], now: datetime, s: ZombieSettings,
                evidence: bool = True) -> tuple[_Sig, Optional[int]]:
    """The idle signal and the idle days (None: no covered day); `evidence` False leaves the per-day list out."""
    start, end = window(now, s)
    inside = sorted((d for d in days if start <= d.day < end), key=lambda d: d.day)
    covered = [d for d in inside if d.hours >= s.day_min_hours]
    idle = [d for d in covered if d.cpu_avg <= s.idle_cpu_percent and d.net_bytes <= s.idle_net_bytes]
    uncovered = s.window_days - len(covered)
    aws = [d for d in covered if d.cpu_avg <= AWS_CPU_PERCENT and d.net_bytes <= AWS_NET_BYTES]
    facts: dict[str, Any] = {
        "window_start": start.isoformat(), "window_end": end.isoformat(), "covered_days": len(covered),
        "uncovered_days": uncovered, "idle_days": len(idle), "idle_min_days": s.idle_min_days,
        "thresholds": {"cpu_percent": s.idle_cpu_percent, "net_bytes": s.idle_net_bytes,
                       "day_min_hours": s.day_min_hours},
        "first_idle_day": idle[0].day.isoformat() if idle else None,
        "last_idle_day": idle[-1].day.isoformat() if idle else None,
        # the floor's own outcome: AWS Trusted Advisor's rule on the same days (None: too few covered days)
        "aws_trusted_advisor_low_utilisation": (True if len(aws) >= AWS_MIN_DAYS else
                                                None if len(aws) + uncovered >= AWS_MIN_DAYS else False),
    }
    if evidence:
        idle_set = {d.day for d in idle}
        facts["days"] = [{"day": d.day.isoformat(), "hours": d.hours, "samples": d.samples,
                          "cpu_avg": round(d.cpu_avg, 3), "net_bytes": d.net_bytes, "inbound_max": d.inbound_max,
                          "logins_max": d.logins_max, "idle": d.day in idle_set} for d in inside]
    n_idle = len(idle) if covered else None
    if len(idle) >= s.idle_min_days:
        return _signal(name="idle", state="yes", facts=facts,
                      reason_zh=f"近 {s.window_days} 天中 {len(idle)} 天资源闲置（CPU 日均 ≤ {s.idle_cpu_percent}%，"
                                f"网络 ≤ {s.idle_net_bytes} 字节），达到 {s.idle_min_days} 天",
                      reason_en=f"idle on {len(idle)} of the last {s.window_days} days (daily CPU <= "
                                f"{s.idle_cpu_percent}%, network <= {s.idle_net_bytes} bytes), at least "
                                f"{s.idle_min_days}"), n_idle
    if len(idle) + uncovered < s.idle_min_days:
        return _signal(name="idle", state="no", facts=facts,
                      reason_zh=f"近 {s.window_days} 天中仅 {len(idle)} 天闲置，有数据的 {len(covered)} 天显示资源在用",
                      reason_en=f"idle on only {len(idle)} of the last {s.window_days} days; the {len(covered)} "
                                "covered days show the resources in use"), n_idle
    return _signal(name="idle", state="unknown", facts=facts,
                  reason_zh=f"近 {s.window_days} 天中 {uncovered} 天无足够采样（每天需 {s.day_min_hours} 小时），"
                            "缺失数据不按闲置计，无法判定",
                  reason_en=f"{uncovered} of the last {s.window_days} days lack samples ({s.day_min_hours} hours a "
                            "day needed); missing days are not idle days, so idleness cannot be decided"), n_idle


def _age_days(now: datetime, when: Optional[datetime]) -> Optional[int]:
    return None if when is None else max(0, (now - when).days)


def stale_signal(upkeep: Optional[UpkeepIn], inventory_at: Optional[datetime], now: datetime,
                 s: ZombieSettings) -> _Sig:
    if upkeep is None or inventory_at is None:
        return _signal(name="stale", state="unknown", facts={"inventory_at": _iso(inventory_at)},
                      reason_zh="主机清单中没有运维更新信息（代理版本较旧或尚未上报）",
                      reason_en="the host's inventory carries no upkeep facts (an older agent, or none reported)")
    if now - inventory_at > timedelta(days=s.inventory_max_age_days):
        return _signal(name="stale", state="unknown", facts={"inventory_at": _iso(inventory_at)},
                      reason_zh=f"最近一次主机清单已超过 {s.inventory_max_age_days} 天，其运维信息不再采用",
                      reason_en=f"the latest inventory is older than {s.inventory_max_age_days} days; its upkeep "
                                "facts are not used")
    kernel_at = upkeep.kernel.built or upkeep.kernel.installed
    rows = [("packages", upkeep.packages.last_change, s.package_days, upkeep.packages.error, "软件包变更"),
            ("config", upkeep.config.last_change, s.config_days, upkeep.config.error, "/etc 配置变更"),
            ("kernel", kernel_at, s.kernel_days, upkeep.kernel.error, "内核构建/安装")]
    facts: dict[str, Any] = {"inventory_at": _iso(inventory_at), "package_source": upkeep.packages.source,
                             "config_path": upkeep.config.path, "kernel_release": upkeep.kernel.release}
    recent: list[tuple[str, int, int, str]] = []
    old: list[tuple[str, int, int, str]] = []
    for key, when, limit, error, zh in rows:
        age = _age_days(now, when)
        facts[key] = {"last_change": _iso(when), "age_days": age, "limit_days": limit, "error": error}
        if age is None:
            continue
        (recent if age < limit else old).append((key, age, limit, zh))
    if recent:
        key, age, limit, zh = recent[0]
        return _signal(name="stale", state="no", facts=facts,
                      reason_zh=f"{zh}距今 {age} 天，未超过 {limit} 天", reason_en=f"{key} changed {age} days ago, "
                                                                            f"within {limit} days")
    if facts["packages"]["age_days"] is not None:
        text_zh = "，".join(f"{zh} {age} 天" for _, age, _, zh in old)
        text_en = ", ".join(f"{key} {age} days ago" for key, age, _, _ in old)
        return _signal(name="stale", state="yes", facts=facts, reason_zh=f"运维更新已停止：{text_zh}，均超过阈值",
                      reason_en=f"maintenance has stopped: {text_en}, each past its limit")
    return _signal(name="stale", state="unknown", facts=facts,
                  reason_zh="最近软件包变更时间未知：" + (upkeep.packages.error or "无数据"),
                  reason_en="the last package change is unknown: " + (upkeep.packages.error or "no data"))


def unused_signal(upkeep: Optional[UpkeepIn], inventory_at: Optional[datetime], days: list[DayUse], now: datetime,
                  s: ZombieSettings) -> _Sig:
    start, end = window(now, s)
    covered = [d for d in days if start <= d.day < end and d.hours >= s.day_min_hours]
    inbound_days = [d for d in covered if d.inbound_max is not None]
    busy_days = [d for d in inbound_days if (d.inbound_max or 0) > s.max_inbound_connections]
    facts: dict[str, Any] = {"limits": {"logins_per_week": s.max_logins_per_week,
                                        "users_per_week": s.max_users_per_week,
                                        "inbound_connections": s.max_inbound_connections, "weeks": s.use_weeks},
                             "inbound_days": len(inbound_days), "inbound_busy_days": [d.day.isoformat()
                                                                                      for d in busy_days],
                             "inbound_max": max((d.inbound_max or 0 for d in inbound_days), default=None)}
    if busy_days:
        d = busy_days[-1]
        return _signal(name="unused", state="no", facts=facts,
                      reason_zh=f"{d.day} 采样到 {d.inbound_max} 个外部入站连接，超过 {s.max_inbound_connections}",
                      reason_en=f"{d.day}: samples saw {d.inbound_max} inbound connections from other hosts, more "
                                f"than {s.max_inbound_connections}")
    served = _served_week(upkeep, inventory_at, now, s, facts)
    if served is not None:
        return _signal(name="unused", state="no", facts=facts,
                       reason_zh=f"{served.start} 起的一周 Web 访问日志有 {served.requests} 次来自 {served.clients} "
                                 f"个其他地址的请求，超过 {s.max_requests_per_week}",
                       reason_en=f"the week of {served.start} had {served.requests} web requests from "
                                 f"{served.clients} other addresses in the access logs, more than "
                                 f"{s.max_requests_per_week}")
    weeks = _covered_weeks(upkeep, inventory_at, now, s, facts)
    if isinstance(weeks, tuple):
        return _signal(name="unused", state="unknown", facts=facts, reason_zh=weeks[0], reason_en=weeks[1])
    facts["weeks"] = [{"start": w.start.isoformat(), "logins": w.logins, "users": w.users} for w in weeks]
    busy = [w for w in weeks if w.logins > s.max_logins_per_week or w.users > s.max_users_per_week]
    if busy:
        w = busy[-1]
        return _signal(name="unused", state="no", facts=facts,
                      reason_zh=f"{w.start} 起的一周有 {w.logins} 次登录、{w.users} 个用户",
                      reason_en=f"the week of {w.start} had {w.logins} logins by {w.users} users")
    # sessions the samples saw in a week the records call empty: the records are incomplete, not the host unused
    for w in weeks:
        seen = [d for d in covered if w.start <= d.day < w.start + timedelta(days=7) and d.logins_max > 0]
        if w.logins == 0 and seen:
            facts["contradiction"] = {"week": w.start.isoformat(), "sessions_day": seen[0].day.isoformat()}
            return _signal(name="unused", state="unknown", facts=facts,
                          reason_zh=f"登录记录显示 {w.start} 起一周无登录，但 {seen[0].day} 采样到登录会话：记录不完整",
                          reason_en=f"the login records show no login in the week of {w.start}, yet samples saw a "
                                    f"session on {seen[0].day}: the records are incomplete")
    tail_zh = "" if inbound_days else "（无入站连接数据，仅按登录判定）"
    tail_en = "" if inbound_days else " (no inbound-connection data: judged on logins alone)"
    return _signal(name="unused", state="yes", facts=facts,
                  reason_zh=f"近 {len(weeks)} 周每周登录不超过 {s.max_logins_per_week} 次、用户不超过 "
                            f"{s.max_users_per_week} 个{tail_zh}",
                  reason_en=f"in each of the last {len(weeks)} weeks at most {s.max_logins_per_week} logins by at "
                            f"most {s.max_users_per_week} users{tail_en}")


def _served_week(upkeep: Optional[UpkeepIn], inventory_at: Optional[datetime], now: datetime, s: ZombieSettings,
                 facts: dict[str, Any]) -> Optional[RequestWeekIn]:
    """The latest of the last `use_weeks` weeks (and the current one) whose access logs show more requests from
    other hosts than `max_requests_per_week`: use, whatever else the logs cover. None: no such week (or no logs)."""
    if upkeep is None or inventory_at is None or now - inventory_at > timedelta(days=s.inventory_max_age_days):
        return None
    req = upkeep.requests
    if not req.source:
        return None
    first = inventory_at.date() - timedelta(days=inventory_at.date().weekday(), weeks=s.use_weeks)
    recent = sorted((w for w in req.weeks if w.start >= first), key=lambda w: w.start)
    facts["requests"] = {"source": req.source, "since": _iso(req.since), "unparsed": req.unparsed,
                         "limit_per_week": s.max_requests_per_week,
                         "weeks": [{"start": w.start.isoformat(), "requests": w.requests, "clients": w.clients}
                                   for w in recent]}
    busy = [w for w in recent if w.requests > s.max_requests_per_week]
    return busy[-1] if busy else None


def _covered_weeks(upkeep: Optional[UpkeepIn], inventory_at: Optional[datetime], now: datetime, s: ZombieSettings,
                   facts: dict[str, Any]) -> Any:
    """The last `use_weeks` weeks the login records fully cover, or (reason_zh, reason_en) why there are none."""
    if upkeep is None or inventory_at is None:
        return ("主机清单中没有登录记录信息", "the host's inventory carries no login facts")
    if now - inventory_at > timedelta(days=s.inventory_max_age_days):
        return (f"最近一次主机清单已超过 {s.inventory_max_age_days} 天", f"the latest inventory is older than "
                                                                f"{s.inventory_max_age_days} days")
    logins = upkeep.logins
    facts.update(login_source=logins.source, records_since=_iso(logins.since), last_login=_iso(logins.last_login),
                 inventory_at=_iso(inventory_at))
    if logins.since is None:
        return ("登录记录不可读：" + (logins.error or "无数据"), "the login records cannot be read: "
                + (logins.error or "no data"))
    since = logins.since.date()
    whole = sorted((w for w in logins.weeks if w.start >= since and w.start + timedelta(days=7) <= inventory_at.date()),
                   key=lambda w: w.start)
    if len(whole) < s.use_weeks:
        return (f"登录记录仅覆盖 {len(whole)} 个完整周（自 {since} 起），不足 {s.use_weeks} 周",
                f"the login records cover {len(whole)} whole weeks (since {since}), fewer than {s.use_weeks}")
    return whole[-s.use_weeks:]


# ---- verdicts ----------------------------------------------------------------------------------------------


def verdict_of(signals: list[_Sig], s: ZombieSettings) -> ZombieVerdict:
    yes = sum(1 for x in signals if x.state == "yes")
    unknown = sum(1 for x in signals if x.state == "unknown")
    if yes >= s.zombie_signals:
        return ZombieVerdict.ZOMBIE
    if yes >= s.suspect_signals:
        return ZombieVerdict.SUSPECT
    if yes + unknown < s.suspect_signals:
        return ZombieVerdict.IN_USE
    return ZombieVerdict.UNKNOWN


def judge_host(h: HostFacts, now: datetime, s: ZombieSettings, evidence: bool = True) -> HostVerdict:
    """The host's verdict; with `evidence` False (the metrics) its signals are left out and nothing is validated."""
    idle, idle_days = idle_signal(h.days, now, s, evidence)
    sigs = [idle, stale_signal(h.upkeep, h.inventory_at, now, s),
            unused_signal(h.upkeep, h.inventory_at, h.days, now, s)]
    v = verdict_of(sigs, s)
    if not evidence:
        return HostVerdict.model_construct(host_id=h.host_id, host=h.name, verdict=v, verdict_zh=VERDICT_ZH[v],
                                           signals=[], idle_days=idle_days)
    return HostVerdict(host_id=h.host_id, host=h.name, verdict=v, verdict_zh=VERDICT_ZH[v], idle_days=idle_days,
                       signals=[Signal(name=x.name, state=x.state, reason_zh=x.reason_zh, reason_en=x.reason_en,
                                       facts=x.facts) for x in sigs])


def roll_up(hosts: list[HostVerdict]) -> ZombieVerdict:
    verdicts = {h.verdict for h in hosts}
    if not hosts or verdicts == {ZombieVerdict.UNKNOWN}:
        return ZombieVerdict.UNKNOWN
    if verdicts == {ZombieVerdict.ZOMBIE}:
        return ZombieVerdict.ZOMBIE
    if ZombieVerdict.IN_USE in verdicts:
        return ZombieVerdict.IN_USE
    return ZombieVerdict.SUSPECT  # some suspect or zombie, none in use


def review_stands(decision: str, reviewed: ZombieVerdict, at: datetime, current: ZombieVerdict, now: datetime,
                  s: ZombieSettings) -> bool:
    """A review counts while the verdict is the one reviewed; a dismissal also only for review_days."""
    if reviewed != current:
        return False
    return decision == "confirm" or now - at <= timedelta(days=s.review_days)
