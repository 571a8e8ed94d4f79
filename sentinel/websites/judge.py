"""Verdicts of one monitoring round: the crawl, the TLS audit and the stored history, judged by sites' rules.

Pure: everything that happened before (availability visits, when a page last changed, reviewed baselines)
comes in as arguments and `now` is the caller's clock, so weeks of monitoring are simulated by passing
times (tests/test_websites_real.py). A rule that cannot be decided says so (`error` with the reason),
never passes by default.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from . import deface
from .crawl import Crawl, Fetch
from .keywords import matches, word_list
from .rules import BY_ID
from .sites import Column, SiteDeclaration, normalise_url

Status = Literal["pass", "fail", "error", "not_applicable"]


class Verdict(BaseModel):
    """One rule on one subject (the site, a column, a page or a link). JSON keys are stable (docs/websites.md)."""

    rule: str
    status: Status
    subject: str = ""
    observed: Any = None
    expected: str = ""
    reason: Optional[str] = None
    evidence: list[str] = Field(default_factory=list)

    @property
    def veto(self) -> bool:
        return self.status == "fail" and BY_ID[self.rule].kind == "veto"


@dataclass
class PageState:
    """What earlier rounds saw of a declared page: the fingerprint of its entries and when it last changed."""

    fingerprint: Optional[str]
    first_seen: datetime
    changed_at: Optional[datetime] = None  # the last round that saw the entries change (None: never seen changing)


@dataclass
class Availability:
    """The availability visits of the rule's window: their count, the failed ones, and the visits of each
    24-hour slice of the window (0: the last 24 hours)."""

    visits: int
    failures: int
    per_day: dict[int, int] = field(default_factory=dict)


@dataclass
class Baseline:
    url: str
    lines: list[str]
    reviewed_by: str
    reviewed_at: datetime


@dataclass
class TlsFacts:
    origin: str
    error: Optional[str] = None
    protocols: list[str] = field(default_factory=list)
    not_after: Optional[datetime] = None
    days_left: Optional[int] = None
    verified: Optional[bool] = None
    verify_error: Optional[str] = None
    subject: Optional[str] = None


@dataclass
class Judged:
    verdicts: list[Verdict]
    states: dict[str, PageState]  # the declared pages' states after this round (to store)
    texts: dict[str, list[str]]  # the declared pages' masked text (the snapshot a person may approve)

    @property
    def vetoed(self) -> list[str]:
        return sorted({v.rule for v in self.verdicts if v.veto})


def _fingerprint(links: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(links))).encode()).hexdigest()


def _entries(fetch: Fetch, home_links: set[str], decl: SiteDeclaration) -> list[str]:
    """A column's entries: its declared selector's links, or its on-site links that the home page lacks."""
    if fetch.entries is not None:
        return fetch.entries
    assert fetch.facts is not None
    scope = decl.scope()
    own = {fetch.url, normalise_url(fetch.final_url or fetch.url)}
    return [lk.url for lk in fetch.facts.links
            if scope.on_site_host(lk.url) and lk.url not in home_links and lk.url not in own]


def _freshness(rule: str, subject: str, window: int, newest: Optional[date], state: PageState, now: datetime,
               evidence: list[str]) -> Verdict:
    """Stale when neither the newest date shown nor the last change seen lies within `window` days."""
    candidates = [d for d in (newest, state.changed_at.date() if state.changed_at else None) if d is not None]
    expected = f"new information within {window} days"
    if candidates:
        last = max(candidates)
        age = (now.date() - last).days
        how = "newest date shown" if newest == last else "entries changed"
        return Verdict(rule=rule, status="fail" if age > window else "pass", subject=subject,
                       observed={"last_update": last.isoformat(), "age_days": age, "from": how}, expected=expected,
                       evidence=evidence + [f"last update {last.isoformat()} ({how}), {age} days before {now.date()}"])
    monitored = (now - state.first_seen).days
    if monitored > window:
        return Verdict(rule=rule, status="fail", subject=subject,
                       observed={"last_update": None, "unchanged_days": monitored}, expected=expected,
                       evidence=evidence + [f"no date on the page and its entries unchanged since "
                                            f"{state.first_seen.date()} ({monitored} days)"])
    return Verdict(rule=rule, status="error", subject=subject, expected=expected,
                   reason=f"the page shows no date and has been watched {monitored} of the {window} days needed "
                          "to tell whether it is updated", evidence=evidence)


def judge(decl: SiteDeclaration, crawl: Crawl, now: datetime, states: dict[str, PageState],
          availability: Availability, baselines: dict[str, Baseline], tls: list[TlsFacts]) -> Judged:
    out: list[Verdict] = []
    th = decl.thresholds
    home_url = decl.home
    home = crawl.fetches.get(home_url)
    new_states: dict[str, PageState] = {}
    texts: dict[str, list[str]] = {}

    def state_for(url: str, links: list[str]) -> PageState:
        fp = _fingerprint(links)
        old = states.get(url)
        if old is None:
            new = PageState(fingerprint=fp, first_seen=now)
        elif old.fingerprint != fp:
            new = PageState(fingerprint=fp, first_seen=old.first_seen, changed_at=now)
        else:
            new = PageState(fingerprint=fp, first_seen=old.first_seen, changed_at=old.changed_at)
        new_states[url] = new
        return new

    # -- availability (site.unreachable): over the rule's window, from the stored visits
    needed = th.visits_per_day * th.availability_days
    full_days = sum(1 for n in availability.per_day.values() if n >= th.visits_per_day)
    if availability.visits == 0 or full_days < th.availability_days:
        out.append(Verdict(rule="site.unreachable", status="error", subject=home_url,
                           observed={"visits": availability.visits, "failures": availability.failures,
                                     "days_with_enough_visits": full_days},
                           expected=f"< {th.unreachable_share:.0%} of visits not open after {decl.crawl.timeout:g} s",
                           reason=f"the rule needs {th.visits_per_day} visits a day for {th.availability_days} days "
                                  f"({needed}); {full_days} day(s) have that many ({availability.visits} visits)"))
    else:
        share = availability.failures / availability.visits
        out.append(Verdict(rule="site.unreachable", status="fail" if share >= th.unreachable_share else "pass",
                           subject=home_url, observed={"visits": availability.visits, "failures": availability.failures,
                                                       "share": round(share, 4)},
                           expected=f"< {th.unreachable_share:.0%} of visits not open after {decl.crawl.timeout:g} s",
                           evidence=[f"{availability.failures} of {availability.visits} visits over the last "
                                     f"{th.availability_days} days failed or took longer than "
                                     f"{decl.crawl.timeout:g} s"]))

    home_links: set[str] = set()
    if home is None or not home.ok or home.facts is None:
        why = (home.error or f"HTTP {home.status}") if home else "not fetched"
        out.append(Verdict(rule="home.stale", status="error", subject=home_url, reason=f"home page: {why}"))
    else:
        home_links = {lk.url for lk in home.facts.links}
        scope = decl.scope()
        st = state_for(home_url, [u for u in home_links if scope.on_site_host(u)])
        out.append(_freshness("home.stale", home_url, th.home_stale_days, home.facts.newest, st, now,
                              [f"GET {home_url}: HTTP {home.status}, {len(home_links)} links"]))
        slow = home.elapsed > th.slow_seconds
        out.append(Verdict(rule="http.response_time", status="fail" if slow else "pass", subject=home_url,
                           observed={"seconds": round(home.elapsed, 3)}, expected=f"<= {th.slow_seconds:g} s",
                           evidence=[f"GET {home_url} took {home.elapsed:.3f} s to the whole page"]))
        out.append(_headers(home_url, home))
    if home is not None and not home.ok:
        out.append(Verdict(rule="http.response_time", status="fail" if home.error else "error", subject=home_url,
                           observed={"seconds": round(home.elapsed, 3), "error": home.error, "status": home.status},
                           expected=f"<= {th.slow_seconds:g} s", reason=None if home.error else f"HTTP {home.status}"))

    # -- columns
    stale = long_stale = blank = 0
    for column in decl.columns:
        verdicts = _column(column, crawl.fetches.get(column.url), home_links, decl, now, state_for)
        for v in verdicts:
            if v.rule == "column.stale" and v.status == "fail":
                long_stale += 1
                if column.kind in ("news", "notice", "policy"):
                    stale += 1
            if v.rule == "column.blank" and v.status == "fail":
                blank += 1
        out.extend(verdicts)
    if decl.columns:
        for rule, count, limit in (("columns.stale", stale, th.stale_columns_veto),
                                   ("columns.long_stale", long_stale, th.long_stale_columns_veto),
                                   ("columns.blank", blank, th.blank_columns_veto)):
            out.append(Verdict(rule=rule, status="fail" if count >= limit else "pass", subject=home_url,
                               observed={"columns": count, "declared": len(decl.columns)},
                               expected=f"fewer than {limit}"))
    else:
        for rule in ("columns.stale", "columns.long_stale", "columns.blank"):
            out.append(Verdict(rule=rule, status="error", subject=home_url,
                               reason="the declaration names no columns (栏目): their freshness cannot be judged"))

    out.extend(_links(decl, crawl, home_url))
    out.extend(_content(decl, crawl, home_url))
    for url, baseline in baselines.items():
        fetch = crawl.fetches.get(url)
        if fetch is None or fetch.text is None:
            why = "not fetched" if fetch is None else (fetch.error or f"HTTP {fetch.status}")
            out.append(Verdict(rule="security.tampered", status="error", subject=url, reason=f"page: {why}"))
            continue
        lines = deface.mask(fetch.text)
        added, removed, diff = deface.compare(baseline.lines, lines, url)
        out.append(Verdict(rule="security.tampered", status="fail" if added or removed else "pass", subject=url,
                           observed={"added": added, "removed": removed,
                                     "baseline_sha256": deface.digest(baseline.lines),
                                     "now_sha256": deface.digest(lines)},
                           expected=f"the text of the baseline reviewed by {baseline.reviewed_by} on "
                                    f"{baseline.reviewed_at.date()}", evidence=diff))
    for url, fetch in crawl.fetches.items():
        if fetch.text is not None:
            texts[url] = deface.mask(fetch.text)
    out.extend(_tls(decl, tls))
    return Judged(verdicts=out, states=new_states, texts=texts)


def _headers(url: str, fetch: Fetch) -> Verdict:
    h = fetch.headers
    missing = []
    if h.get("x-content-type-options", "").lower() != "nosniff":
        missing.append("X-Content-Type-Options: nosniff")
    if "x-frame-options" not in h and "frame-ancestors" not in h.get("content-security-policy", ""):
        missing.append("X-Frame-Options or Content-Security-Policy frame-ancestors")
    if urlsplit(fetch.final_url or url).scheme == "https" and "strict-transport-security" not in h:
        missing.append("Strict-Transport-Security")
    return Verdict(rule="http.security_headers", status="fail" if missing else "pass", subject=url,
                   observed={"headers": h, "missing": missing}, expected="nosniff, framing restricted, HSTS on HTTPS",
                   evidence=[f"{k}: {v}" for k, v in h.items()])


def _column(column: Column, fetch: Optional[Fetch], home_links: set[str], decl: SiteDeclaration, now: datetime,
            state_for: Any) -> list[Verdict]:
    subject = f"{column.name} <{column.url}>"
    if fetch is None:
        return [Verdict(rule=r, status="error", subject=subject, reason="column page not fetched (max_pages reached?)")
                for r in ("column.blank", "column.stale")]
    if not fetch.ok or fetch.facts is None:
        why = fetch.error or f"HTTP {fetch.status}"
        # a column whose page does not open holds nothing for the public: blank, and nothing to judge as stale
        return [Verdict(rule="column.blank", status="fail", subject=subject, observed={"entries": 0, "answer": why},
                        expected="at least one entry", evidence=[f"GET {column.url}: {why}"]),
                Verdict(rule="column.stale", status="error", subject=subject, reason=f"column page: {why}")]
    entries = _entries(fetch, home_links, decl)
    evidence = [f"GET {column.url}: HTTP {fetch.status}, {len(entries)} entries"]
    out = [Verdict(rule="column.blank", status="pass" if entries else "fail", subject=subject,
                   observed={"entries": len(entries)}, expected="at least one entry", evidence=evidence)]
    if not entries:
        out.append(Verdict(rule="column.stale", status="not_applicable", subject=subject,
                           reason="a blank column (column.blank) has no information to be updated"))
        return out
    state = state_for(column.url, entries)
    out.append(_freshness("column.stale", subject, column.window_days(), fetch.facts.newest, state, now,
                          evidence + [f"kind {column.kind}: {column.window_days()} days"]))
    return out


def _links(decl: SiteDeclaration, crawl: Crawl, home_url: str) -> list[Verdict]:
    """Broken links: on-site links whose target answered an error or did not answer (off-site ones are not
    fetched: scope). One verdict per broken target, naming the pages that link it; one pass when none."""
    broken: dict[str, tuple[str, list[str]]] = {}
    scope = decl.scope()
    checked = 0
    for fetch in crawl.fetches.values():
        if fetch.facts is None:
            continue
        for url in [*(lk.url for lk in fetch.facts.links), *fetch.facts.images]:
            if not scope.allows(url):
                continue
            target = crawl.fetches.get(normalise_url(url))
            if target is None:
                continue
            checked += 1
            if not target.ok:
                why = target.error or f"HTTP {target.status}"
                broken.setdefault(target.url, (why, []))[1].append(fetch.url)
    out = []
    for url, (why, sources) in sorted(broken.items()):
        on_home = home_url in sources
        out.append(Verdict(rule="links.broken_home" if on_home else "links.broken", status="fail", subject=url,
                           observed={"answer": why, "linked_from": sorted(set(sources))[:20]},
                           expected="the link opens",
                           evidence=[f"GET {url}: {why}", f"linked from {', '.join(sorted(set(sources))[:5])}"]))
    if not any(v.rule == "links.broken_home" for v in out):
        out.append(Verdict(rule="links.broken_home", status="pass", subject=home_url, observed={"broken": 0},
                           expected="every on-site link of the home page opens"))
    if not any(v.rule == "links.broken" for v in out):
        out.append(Verdict(rule="links.broken", status="pass", subject=home_url,
                           observed={"checked": checked, "unchecked": crawl.unchecked},
                           expected="every on-site link opens"))
    return out


def _content(decl: SiteDeclaration, crawl: Crawl, home_url: str) -> list[Verdict]:
    """挂马, 暗链, links to gambling or pornography, undeclared external scripts and frames: per page."""
    scope = decl.scope()
    words = word_list(decl.extra_keywords)
    allowed = set(decl.allowed_hosts)
    found: dict[str, list[tuple[str, str]]] = {r: [] for r in ("security.malicious_code", "security.hidden_links",
                                                               "security.bad_links", "security.foreign_content")}
    pages = 0
    seen: set[str] = set()
    for fetch in crawl.fetches.values():
        facts = fetch.facts
        if facts is None or facts.digest in seen:
            continue
        seen.add(facts.digest)
        pages += 1
        for item in facts.malicious:
            if item.hosts and all(h in allowed for h in item.hosts):
                continue  # loads only from hosts the site declared (a statistics snippet in an old style)
            found["security.malicious_code"].append((fetch.url, str(item)))
        for link in facts.links:
            external = not scope.on_site_host(link.url)
            if link.hidden and external:
                found["security.hidden_links"].append((fetch.url, f"{link.url} ({link.hidden}) \"{link.text[:60]}\""))
            hits = matches(f"{link.text} {link.url}", words) if external else []
            if hits:
                found["security.bad_links"].append((fetch.url, f"{link.url} \"{link.text[:60]}\": {', '.join(hits)}"))
        for src in facts.scripts:
            if not scope.on_site_host(src) and _host(src) not in allowed:
                found["security.foreign_content"].append((fetch.url, f"script {src}"))
        for frame in facts.frames:
            if not scope.on_site_host(frame.url) and _host(frame.url) not in allowed:
                found["security.foreign_content"].append((fetch.url, f"frame {frame.url}"))
    out = []
    for rule, items in found.items():
        by_page: dict[str, list[str]] = {}
        for page, what in items:
            by_page.setdefault(page, []).append(what)
        for page, whats in sorted(by_page.items()):
            out.append(Verdict(rule=rule, status="fail", subject=page, observed={"count": len(whats)},
                               expected="none", evidence=whats[:50]))
        if not by_page:
            out.append(Verdict(rule=rule, status="pass" if pages else "error", subject=home_url,
                               observed={"pages": pages}, expected="none",
                               reason=None if pages else "no page could be read"))
    return out


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _tls(decl: SiteDeclaration, tls: list[TlsFacts]) -> list[Verdict]:
    if not tls:
        return [Verdict(rule=r, status="not_applicable", subject=decl.home,
                        reason="the site is declared over http only: no TLS to judge")
                for r in ("tls.certificate", "tls.protocols")]
    out = []
    limit = decl.thresholds.cert_days
    for t in tls:
        if t.error:
            out += [Verdict(rule=r, status="error", subject=t.origin, reason=t.error)
                    for r in ("tls.certificate", "tls.protocols")]
            continue
        problems = []
        if t.verified is False:
            problems.append(f"not trusted: {t.verify_error}")
        if t.days_left is not None and t.days_left < 0:
            problems.append(f"expired on {t.not_after}")
        elif t.days_left is not None and t.days_left < limit:
            problems.append(f"expires in {t.days_left} days (on {t.not_after}), fewer than {limit}")
        status: Status = "fail" if problems else ("pass" if t.verified else "error")
        out.append(Verdict(rule="tls.certificate", status=status, subject=t.origin,
                           observed={"subject": t.subject, "days_left": t.days_left, "verified": t.verified,
                                     "not_after": t.not_after.isoformat() if t.not_after else None},
                           expected=f"trusted, for the site's name, valid for {limit}+ more days",
                           reason=None if status != "error" else f"could not verify: {t.verify_error}",
                           evidence=problems or [f"certificate {t.subject} valid until {t.not_after}"]))
        old = [p for p in t.protocols if p in ("SSLv3", "TLSv1.0", "TLSv1.1")]
        out.append(Verdict(rule="tls.protocols", status="fail" if old else "pass", subject=t.origin,
                           observed={"protocols": t.protocols}, expected="TLS 1.2 and 1.3 only",
                           evidence=[f"handshakes completed with {', '.join(t.protocols)}"]))
    return out

