"""A website's monitoring against the store: availability visits, rounds, and the findings trail.

`visit()` opens the home page once (the site.unreachable rule counts these over a week); `run_round()` crawls
the site, audits its TLS, judges every rule against what earlier rounds stored, and stores the round, the
declared pages' states and the findings in one transaction. Both take the clock as an argument (`clock()`
returns an aware UTC datetime): the scheduler passes the real one, tests pass simulated weeks.

Findings (`website_findings`): a failing verdict opens one (website, rule, subject) episode or extends the open
one; an open episode is resolved by the first round that judged the same rule and subject again without
failing it, or judged the rule for the site and no longer saw the subject fail (a broken link repaired, a
hidden link removed). A round whose crawl failed as a whole changes no finding.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import httpx
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..store.db import Database
from ..store.models import (
    Department,
    Event,
    System,
    Website,
    WebsiteBaseline,
    WebsiteFinding,
    WebsitePage,
    WebsiteRound,
    WebsiteVisit,
)
from .crawl import MAX_REDIRECTS, Crawl, Crawler
from .judge import Availability, Baseline, Judged, PageState, TlsFacts, Verdict, judge
from .rules import BY_ID
from .sites import SiteDeclaration, UrlOutsideSite, normalise_url

log = logging.getLogger("sentinel.websites")
Clock = Callable[[], datetime]
T_SITE, T_ROUND, T_VISIT = Website.__table__, WebsiteRound.__table__, WebsiteVisit.__table__
T_PAGE, T_BASE, T_FIND = WebsitePage.__table__, WebsiteBaseline.__table__, WebsiteFinding.__table__
T_EVENT = Event.__table__
#: veto rules whose finding is pushed as an event (Alertmanager, chats): a compromise, or a site failing the inspection
SECURITY_EVENT, VETO_EVENT = "website_security", "website_veto"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _pk(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row
    return int(key[0])


class RoundBusy(Exception):
    """A round of this website is already running (in this process or another)."""


class WebsiteGone(LookupError):
    pass


@dataclass
class RoundResult:
    round_id: int
    judged: Optional[Judged]
    crawl: Optional[Crawl]
    opened: int = 0
    resolved: int = 0
    error: Optional[str] = None


def load(db: Database, website_id: int) -> tuple[Any, SiteDeclaration]:
    with db.read() as conn:
        row = conn.execute(select(T_SITE).where(T_SITE.c.id == website_id)).first()
    if row is None:
        raise WebsiteGone(f"website {website_id} does not exist")
    return row, SiteDeclaration.model_validate(row.declaration)


def declare(db: Database, *, department_id: int, system_id: int, name: str, decl: SiteDeclaration, actor: str,
            title: str = "", interval_seconds: int = 86400, visit_seconds: int = 3600, enabled: bool = True,
            clock: Clock = utcnow) -> int:
    """Store a new website declaration; its id."""
    now = clock()
    with db.write() as conn:
        return _pk(conn.execute(insert(T_SITE).values(
            name=name, department_id=department_id, system_id=system_id, title=title,
            declaration=decl.model_dump(mode="json"), enabled=enabled, interval_seconds=interval_seconds,
            visit_seconds=visit_seconds, created_at=now, updated_at=now, updated_by=actor)))


# ---- availability ------------------------------------------------------------------------------------------


def visit(db: Database, website_id: int, clock: Clock = utcnow,
          transport: Optional[httpx.BaseTransport] = None) -> WebsiteVisit:
    """One visit of the home page: open (an answer below 400) within the declaration's timeout, or not."""
    row, decl = load(db, website_id)
    at = clock()
    timeout = decl.crawl.timeout
    status: Optional[int] = None
    error: Optional[str] = None
    started = time.monotonic()
    url = decl.home
    scope = decl.scope()
    try:
        # the certificate is judged by the TLS rules; here only whether the page opens counts
        with httpx.Client(timeout=httpx.Timeout(timeout), verify=False,  # noqa: S501 follow_redirects=False, trust_env=False,
                          transport=transport, headers={"user-agent": decl.crawl.user_agent}) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", url) as answer:
                    status = answer.status_code
                    if answer.is_redirect and "location" in answer.headers:
                        url = scope.check(str(answer.url.join(answer.headers["location"])))
                        continue
                    for _chunk in answer.iter_bytes():
                        if time.monotonic() - started > timeout:
                            raise httpx.ReadTimeout("whole page not read in time")
                    break
    except (httpx.HTTPError, UrlOutsideSite) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    elapsed = time.monotonic() - started
    ok = error is None and status is not None and status < 400 and elapsed <= timeout
    if error is None and elapsed > timeout:
        error = f"not open after {timeout:g} s"
    values = dict(website_id=website_id, department_id=row.department_id, at=at, ok=ok,
                  elapsed_ms=round(elapsed * 1000, 1), status_code=status, error=error)
    with db.write() as conn:
        vid = _pk(conn.execute(insert(T_VISIT).values(**values)))
    return WebsiteVisit(id=vid, **values)


def availability(conn: Any, website_id: int, now: datetime, days: int) -> Availability:
    """The visits of the `days` days before `now`, counted per 24-hour slice back from `now` (slice 0 is the
    last 24 hours): the rule asks for enough visits on every day of the week, whatever time the round runs."""
    since = now - timedelta(days=days)
    rows = conn.execute(select(T_VISIT.c.at, T_VISIT.c.ok).where(
        T_VISIT.c.website_id == website_id, T_VISIT.c.at > since, T_VISIT.c.at <= now)).all()
    per_day: dict[int, int] = {}
    for at, _ok in rows:
        k = min(int((now - at) / timedelta(days=1)), days - 1)
        per_day[k] = per_day.get(k, 0) + 1
    return Availability(visits=len(rows), failures=sum(1 for _, ok in rows if not ok), per_day=per_day)


# ---- rounds ------------------------------------------------------------------------------------------------


def begin(db: Database, website_id: int, triggered_by: str, actor: str, clock: Clock = utcnow) -> int:
    row, _ = load(db, website_id)
    try:
        with db.write() as conn:
            return _pk(conn.execute(insert(T_ROUND).values(
                website_id=website_id, department_id=row.department_id, system_id=row.system_id,
                triggered_by=triggered_by, requested_by=actor, status="running", runner=runner_id(),
                started_at=clock(), pages=0, failed_rules=0, vetoed=[], summary={}, results=[])))
    except IntegrityError:
        with db.read() as conn:
            running = conn.execute(select(T_ROUND.c.id, T_ROUND.c.started_at).where(
                T_ROUND.c.website_id == website_id, T_ROUND.c.status == "running")).first()
        raise RoundBusy(f"round {running.id if running else '?'} of website {row.name} is running since "
                        f"{running.started_at if running else '?'}") from None


def fail_round(db: Database, round_id: int, error: str, clock: Clock = utcnow) -> None:
    with db.write() as conn:
        conn.execute(update(T_ROUND).where(T_ROUND.c.id == round_id, T_ROUND.c.status == "running").values(
            status="failed", error=error[:4000], finished_at=clock()))


def run_round(db: Database, website_id: int, clock: Clock = utcnow, triggered_by: str = "cli",
              actor: str = "cli", transport: Optional[httpx.AsyncBaseTransport] = None,
              tls_check: Optional[Callable[[SiteDeclaration, datetime], list[TlsFacts]]] = None,
              round_id: Optional[int] = None) -> RoundResult:
    """Claim (unless `round_id` is a claimed one), crawl, judge and store one round."""
    rid = round_id if round_id is not None else begin(db, website_id, triggered_by, actor, clock)
    try:
        row, decl = load(db, website_id)
        now = clock()
        crawl = Crawler(decl, today=now.date(), transport=transport).run()
        if tls_check is None:
            from .tlscheck import tls_facts

            tls_check = tls_facts
        tls = tls_check(decl, now)
        with db.read() as conn:
            states = _states(conn, website_id)
            avail = availability(conn, website_id, now, decl.thresholds.availability_days)
            baselines = _baselines(conn, website_id)
        judged = judge(decl, crawl, now, states, avail, baselines, tls)
    except Exception as exc:
        log.exception("round %s of website %s", rid, website_id)
        fail_round(db, rid, f"{type(exc).__name__}: {exc}", clock)
        return RoundResult(round_id=rid, judged=None, crawl=None, error=str(exc))
    opened, resolved = _store(db, row, rid, decl, crawl, judged, now, clock)
    return RoundResult(round_id=rid, judged=judged, crawl=crawl, opened=opened, resolved=resolved)


def _states(conn: Any, website_id: int) -> dict[str, PageState]:
    rows = conn.execute(select(T_PAGE.c.url, T_PAGE.c.fingerprint, T_PAGE.c.first_seen, T_PAGE.c.changed_at).where(
        T_PAGE.c.website_id == website_id)).all()
    return {r.url: PageState(fingerprint=r.fingerprint, first_seen=r.first_seen, changed_at=r.changed_at) for r in rows}


def _baselines(conn: Any, website_id: int) -> dict[str, Baseline]:
    latest = select(func.max(T_BASE.c.id)).where(T_BASE.c.website_id == website_id).group_by(T_BASE.c.url_sha256)
    rows = conn.execute(select(T_BASE).where(T_BASE.c.id.in_(latest))).all()
    return {r.url: Baseline(url=r.url, lines=list(r.lines), reviewed_by=r.reviewed_by, reviewed_at=r.reviewed_at)
            for r in rows if r.lines is not None}


def summary(judged: Judged, crawl: Crawl) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for v in judged.verdicts:
        counts[v.status] = counts.get(v.status, 0) + 1
    times = sorted(f.elapsed for f in crawl.fetches.values())
    return {"verdicts": counts, "vetoed": judged.vetoed, "pages": len(crawl.fetches),
            "parsed": sum(1 for f in crawl.fetches.values() if f.facts is not None),
            "robots_skipped": len(crawl.robots_skipped), "unchecked_links": crawl.unchecked,
            "external_links": crawl.outside, "crawl_seconds": round(crawl.duration, 3),
            "p95_seconds": round(times[int(0.95 * (len(times) - 1))], 3) if times else None,
            "conclusion": "单项否决" if judged.vetoed else "未否决"}


def _event_kind(rule: str) -> Optional[str]:
    r = BY_ID[rule]
    if r.kind != "veto":
        return None
    return SECURITY_EVENT if rule.startswith("security.") else VETO_EVENT


def _event(conn: Any, row: Any, rid: int, now: datetime, rule: str, subject: str, resolved: bool) -> None:
    """The event of a veto finding opening or resolving (the publishers push it; one fingerprint per condition)."""
    kind = _event_kind(rule)
    if kind is None:
        return
    ctx = conn.execute(select(System.__table__.c.name, System.__table__.c.level, Department.__table__.c.name.label(
        "department")).join(Department.__table__, Department.__table__.c.id == System.__table__.c.department_id)
        .where(System.__table__.c.id == row.system_id)).one()
    title = BY_ID[rule].title_zh
    conn.execute(insert(T_EVENT).values(
        kind=kind, severity="critical" if kind == SECURITY_EVENT else "warning", department_id=row.department_id,
        system_id=row.system_id, host_id=None, check_id=None, run_id=None,
        fingerprint=sha(f"{kind}|{row.id}|{rule}|{sha(subject)}")[:32],
        summary=(f"{ctx.name}: 网站 {row.name} {title}{'（已恢复）' if resolved else ''}: {subject}")[:4000],
        payload={"department": ctx.department, "system": ctx.name, "level": ctx.level, "website": row.name,
                 "rule": rule, "subject": subject, "source": BY_ID[rule].source, "website_round_id": rid,
                 "resolved": resolved},
        created_at=now, delivered=False, attempts=0))


def _store(db: Database, row: Any, rid: int, decl: SiteDeclaration, crawl: Crawl, judged: Judged, now: datetime,
           clock: Clock) -> tuple[int, int]:
    website_id = row.id
    verdicts = judged.verdicts
    failed = [v for v in verdicts if v.status == "fail"]
    opened = resolved = 0
    with db.write() as conn:
        for url, st in judged.states.items():
            _upsert_page(conn, website_id, url, rid, now, fingerprint=st.fingerprint, changed_at=st.changed_at,
                         first_seen=st.first_seen)
        for url, lines in judged.texts.items():
            _upsert_page(conn, website_id, url, rid, now, text=lines)
        open_rows = {(r.rule, r.subject_sha256): r for r in conn.execute(select(T_FIND).where(
            T_FIND.c.website_id == website_id, T_FIND.c.resolved_at.is_(None))).all()}
        failing = {(v.rule, sha(v.subject)): v for v in failed}
        for key, v in failing.items():
            rule = BY_ID[v.rule]
            common = dict(observed=v.observed, evidence=v.evidence[:50], last_seen=now, last_round_id=rid)
            existing = open_rows.get(key)
            if existing is not None:
                conn.execute(update(T_FIND).where(T_FIND.c.id == existing.id).values(
                    occurrences=T_FIND.c.occurrences + 1, **common))
                continue
            conn.execute(insert(T_FIND).values(
                website_id=website_id, system_id=row.system_id, department_id=row.department_id, rule=v.rule,
                subject=v.subject, subject_sha256=key[1], kind=rule.kind, severity=rule.severity, title=rule.title(),
                source=rule.source, remediation=rule.remediation(), first_seen=now, first_round_id=rid,
                occurrences=1, **common))
            _event(conn, row, rid, now, v.rule, v.subject, resolved=False)
            opened += 1
        judged_keys = {(v.rule, sha(v.subject)): v.status for v in verdicts}
        site_rules = {v.rule for v in verdicts if v.status != "error"}
        errored_rules = {v.rule for v in verdicts if v.status == "error"}
        for key, existing in open_rows.items():
            if key in failing:
                continue
            status = judged_keys.get(key)
            fixed = status in ("pass", "not_applicable") or (
                status is None and existing.rule in site_rules and existing.rule not in errored_rules)
            if fixed:
                conn.execute(update(T_FIND).where(T_FIND.c.id == existing.id).values(
                    resolved_at=now, resolved_round_id=rid))
                _event(conn, row, rid, now, existing.rule, existing.subject, resolved=True)
                resolved += 1
        conn.execute(update(T_ROUND).where(T_ROUND.c.id == rid).values(
            status="succeeded", finished_at=clock(), duration_ms=round(crawl.duration * 1000, 1),
            pages=len(crawl.fetches), failed_rules=len(failed), vetoed=judged.vetoed,
            summary=summary(judged, crawl), results=[v.model_dump(mode="json") for v in verdicts]))
    return opened, resolved


def _upsert_page(conn: Any, website_id: int, url: str, rid: int, now: datetime, **values: Any) -> None:
    key = sha(url)
    text = values.pop("text", None)
    if text is not None:
        values["text"], values["text_sha256"] = text, sha("\n".join(text))
    found = conn.execute(select(T_PAGE.c.id).where(T_PAGE.c.website_id == website_id,
                                                   T_PAGE.c.url_sha256 == key)).scalar()
    if found is None:
        values.setdefault("first_seen", now)
        conn.execute(insert(T_PAGE).values(website_id=website_id, url=url, url_sha256=key, last_seen=now,
                                           round_id=rid, **values))
    else:
        values.pop("first_seen", None)
        conn.execute(update(T_PAGE).where(T_PAGE.c.id == found).values(last_seen=now, round_id=rid, **values))


# ---- baselines ---------------------------------------------------------------------------------------------


def approve_baseline(db: Database, website_id: int, url: str, reviewer: str, note: str = "",
                     clock: Clock = utcnow) -> Any:
    """Approve the latest round's snapshot of a declared page as its tamper baseline. ValueError when the page
    is not declared or no round has read it yet."""
    row, decl = load(db, website_id)
    url = normalise_url(url)
    declared = set(decl.urls) | {c.url for c in decl.columns}
    if url not in declared:
        raise ValueError(f"{url} is not a declared page of website {row.name} (its urls and columns)")
    with db.write() as conn:
        page = conn.execute(select(T_PAGE).where(T_PAGE.c.website_id == website_id,
                                                 T_PAGE.c.url_sha256 == sha(url))).first()
        if page is None or page.text is None:
            raise ValueError(f"no round has read {url} yet: run one, then approve what it saw")
        lines = list(page.text)
        bid = _pk(conn.execute(insert(T_BASE).values(
            website_id=website_id, department_id=row.department_id, url=url, url_sha256=sha(url), lines=lines,
            sha256=sha("\n".join(lines)), round_id=page.round_id, reviewed_by=reviewer, reviewed_at=clock(),
            note=note)))
        return conn.execute(select(T_BASE).where(T_BASE.c.id == bid)).first()


def verdicts_of(round_row: Any) -> list[Verdict]:
    return [Verdict.model_validate(v) for v in round_row.results or []]
