"""The zombie rules over typed inputs (sentinel/zombie.py): the boundaries of each signal, the verdict table, the
system roll-up and when a review stands. The same rules on data that went through the real ingest path:
tests/test_zombie_collector.py."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from sentinel.upkeep_facts import UpkeepIn
from sentinel.zombie import (
    DayUse,
    HostFacts,
    HostVerdict,
    ZombieSettings,
    ZombieVerdict,
    _signal,
    idle_signal,
    judge_host,
    review_stands,
    roll_up,
    stale_signal,
    unused_signal,
    verdict_of,
)

NOW = datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc)  # a Thursday
S = ZombieSettings()


def _days(n: int = 14, *, cpu: float = 1.0, net: int = 1000, hours: int = 24, inbound=0, logins: int = 0):
    return [DayUse(NOW.date() - timedelta(days=d), 144, hours, cpu, net, logins, inbound) for d in range(1, n + 1)]


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _upkeep(packages=400, config=400, kernel=400, weeks=None, since_days=90) -> UpkeepIn:
    monday = NOW.date() - timedelta(days=NOW.weekday())
    rows = weeks if weeks is not None else [(0, 0)] * 8
    return UpkeepIn.model_validate({
        "packages": {"last_change": _iso(NOW - timedelta(days=packages))},
        "config": {"last_change": _iso(NOW - timedelta(days=config))},
        "kernel": {"installed": _iso(NOW - timedelta(days=kernel))},
        "logins": {"since": _iso(NOW - timedelta(days=since_days)),
                   "weeks": [{"start": (monday - timedelta(weeks=len(rows) - 1 - i)).isoformat(), "logins": n,
                              "users": u} for i, (n, u) in enumerate(rows)]}})


def test_an_idle_day_is_at_most_the_thresholds_and_a_day_counts_with_enough_hours():
    at_limit = _days(cpu=S.idle_cpu_percent, net=S.idle_net_bytes)
    sig, n = idle_signal(at_limit, NOW, S)
    assert sig.state == "yes" and n == 14
    over = _days(cpu=S.idle_cpu_percent + 0.01)
    assert idle_signal(over, NOW, S)[0].state == "no"
    thin = _days(hours=S.day_min_hours - 1)
    sig, n = idle_signal(thin, NOW, S)
    assert sig.state == "unknown" and n is None and sig.facts["uncovered_days"] == 14
    # today and days before the window are not judged
    extra = _days() + [DayUse(NOW.date(), 10, 24, 90.0, 10**10, 0, 0), DayUse(NOW.date() - timedelta(days=15), 144,
                                                                                 24, 90.0, 10**10, 0, 0)]
    assert idle_signal(extra, NOW, S)[1] == 14


@pytest.mark.parametrize("idle, missing, state", [(12, 0, "yes"), (11, 0, "no"), (11, 1, "unknown"), (9, 2, "no"),
                                                  (0, 14, "unknown"), (10, 3, "unknown")])
def test_missing_days_are_never_idle_days(idle, missing, state):
    days = []
    for d in range(1, 15):
        day = NOW.date() - timedelta(days=d)
        if d <= missing:
            continue
        days.append(DayUse(day, 144, 24, 1.0 if d <= missing + idle else 50.0, 1000, 0, 0))
    assert idle_signal(days, NOW, S)[0].state == state


def test_stale_needs_a_fresh_inventory_and_any_recent_change_is_upkeep():
    old = _upkeep()
    assert stale_signal(old, NOW - timedelta(hours=3), NOW, S).state == "yes"
    assert stale_signal(old, NOW - timedelta(days=S.inventory_max_age_days, hours=1), NOW, S).state == "unknown"
    assert stale_signal(None, None, NOW, S).state == "unknown"
    assert stale_signal(_upkeep(config=10), NOW, NOW, S).state == "no"
    assert stale_signal(_upkeep(kernel=100), NOW, NOW, S).state == "no"
    no_packages = UpkeepIn.model_validate({"packages": {"error": "no package database found"},
                                           "config": {"last_change": _iso(NOW - timedelta(days=400))}})
    sig = stale_signal(no_packages, NOW, NOW, S)
    assert sig.state == "unknown" and "no package database found" in sig.reason_en


def test_unused_reads_whole_covered_weeks_only():
    quiet = _upkeep(weeks=[(1, 1)] * 8)
    assert unused_signal(quiet, NOW, _days(), NOW, S).state == "yes"
    busy = _upkeep(weeks=[(0, 0)] * 6 + [(5, 2), (0, 0)])
    assert unused_signal(busy, NOW, _days(), NOW, S).state == "no"
    # the current week is not whole yet: its logins are not judged
    current = _upkeep(weeks=[(0, 0)] * 7 + [(9, 3)])
    assert unused_signal(current, NOW, _days(), NOW, S).state == "yes"
    short = _upkeep(since_days=20)  # two whole weeks of records
    sig = unused_signal(short, NOW, _days(), NOW, S)
    assert sig.state == "unknown" and "fewer than 4" in sig.reason_en
    served = unused_signal(quiet, NOW, _days(inbound=S.max_inbound_connections + 1), NOW, S)
    assert served.state == "no"
    sessions = unused_signal(_upkeep(), NOW, _days(logins=1), NOW, S)
    assert sessions.state == "unknown" and "incomplete" in sessions.reason_en


@pytest.mark.parametrize("states, verdict", [
    (("yes", "yes", "yes"), ZombieVerdict.ZOMBIE), (("yes", "yes", "unknown"), ZombieVerdict.SUSPECT),
    (("yes", "no", "yes"), ZombieVerdict.SUSPECT), (("yes", "unknown", "no"), ZombieVerdict.UNKNOWN),
    (("yes", "no", "no"), ZombieVerdict.IN_USE), (("no", "unknown", "no"), ZombieVerdict.IN_USE),
    (("unknown", "unknown", "unknown"), ZombieVerdict.UNKNOWN)])
def test_the_verdict_table(states, verdict):
    sigs = [_signal(name=n, state=st, reason_zh="", reason_en="", facts={})
            for n, st in zip(("idle", "stale", "unused"), states, strict=True)]
    assert verdict_of(sigs, S) == verdict
    strict = ZombieSettings(suspect_signals=1)
    assert verdict_of(sigs, strict) == (ZombieVerdict.SUSPECT if states.count("yes") in (1, 2) else
                                        ZombieVerdict.ZOMBIE if states.count("yes") == 3 else
                                        ZombieVerdict.IN_USE if "unknown" not in states else ZombieVerdict.UNKNOWN)


def _hv(v: ZombieVerdict) -> HostVerdict:
    return HostVerdict(host_id=1, host="h", verdict=v, verdict_zh="", signals=[])


def test_a_system_rolls_up_from_its_hosts():
    Z, SU, IN, UN = ZombieVerdict.ZOMBIE, ZombieVerdict.SUSPECT, ZombieVerdict.IN_USE, ZombieVerdict.UNKNOWN
    assert roll_up([]) == UN and roll_up([_hv(UN)]) == UN
    assert roll_up([_hv(Z), _hv(Z)]) == Z
    assert roll_up([_hv(Z), _hv(IN)]) == IN  # the zombie host shows in the system's hosts, the system is in use
    assert roll_up([_hv(Z), _hv(UN)]) == SU and roll_up([_hv(SU), _hv(Z)]) == SU


def test_a_review_stands_on_the_verdict_it_reviewed():
    at = NOW - timedelta(days=10)
    assert review_stands("dismiss", ZombieVerdict.SUSPECT, at, ZombieVerdict.SUSPECT, NOW, S)
    assert not review_stands("dismiss", ZombieVerdict.SUSPECT, at, ZombieVerdict.ZOMBIE, NOW, S)
    assert not review_stands("dismiss", ZombieVerdict.SUSPECT, NOW - timedelta(days=S.review_days + 1),
                             ZombieVerdict.SUSPECT, NOW, S)
    assert review_stands("confirm", ZombieVerdict.ZOMBIE, NOW - timedelta(days=400), ZombieVerdict.ZOMBIE, NOW, S)


def test_the_metrics_judgement_is_the_evidence_judgement_without_the_evidence():
    h = HostFacts(host_id=7, name="h", days=_days(), upkeep=_upkeep(), inventory_at=NOW - timedelta(hours=1))
    full, light = judge_host(h, NOW, S), judge_host(h, NOW, S, evidence=False)
    assert full.verdict == light.verdict == ZombieVerdict.ZOMBIE and full.idle_days == light.idle_days == 14
    assert [s.name for s in full.signals] == ["idle", "stale", "unused"] and light.signals == []
    days = full.signals[0].facts["days"]
    assert days[0]["day"] == (NOW.date() - timedelta(days=14)).isoformat() and days[-1]["day"] == "2026-12-02"
    assert isinstance(date.fromisoformat(full.signals[0].facts["window_start"]), date)


def test_web_requests_from_other_hosts_are_use():
    monday = NOW.date() - timedelta(days=NOW.weekday())
    up = _upkeep(weeks=[(0, 0)] * 8).model_dump(mode="json")

    def with_requests(per_week: list[int]) -> UpkeepIn:
        weeks = [{"start": (monday - timedelta(weeks=len(per_week) - 1 - i)).isoformat(), "requests": n,
                  "clients": min(n, 3)} for i, n in enumerate(per_week)]
        return UpkeepIn.model_validate({**up, "requests": {"source": ["/var/log/nginx/access.log"],
                                                           "since": _iso(NOW - timedelta(days=60)), "weeks": weeks}})

    served = unused_signal(with_requests([0] * 6 + [S.max_requests_per_week + 1, 0]), NOW, _days(), NOW, S)
    assert served.state == "no" and "web requests" in served.reason_en
    assert served.facts["requests"]["limit_per_week"] == S.max_requests_per_week
    quiet = unused_signal(with_requests([S.max_requests_per_week] * 8), NOW, _days(), NOW, S)
    assert quiet.state == "yes" and quiet.facts["requests"]["weeks"]
    old = unused_signal(with_requests([0] * 2 + [500] + [0] * 5), NOW, _days(), NOW, S)  # 5 weeks back
    assert old.state == "yes", "a busy week before the judged weeks is history, not use now"
