"""Website monitoring (issue 17) against real web servers: Debian's nginx serving generated sites on loopback.

The sites are files the test writes (tests/website_lab.py) and nginx serves: a main site with fresh, stale,
undated and blank columns (栏目), broken links on the home page and below, injected hidden links and
gambling links, a foreign iframe, an implanted hidden frame and obfuscated script (挂马), a page guarded by a
reviewed baseline that is then tampered with, robots.txt rules and a link to another site; a site whose home
page is three weeks old; a slow site; a failing site; an HTTPS site whose certificate expires in ten days and
one that still speaks TLS 1.0/1.1. Weeks pass by the clock the monitor is given (never by sleeping): each
round and visit is a real request, stamped with simulated time. Expected answers come from the servers
(status codes and what nginx logged as served), from the files written, and from openssl for TLS.
"""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from sentinel.store.db import Database, upgrade
from sentinel.store.models import Department, System, WebsiteFinding, WebsiteRound
from sentinel.websites import monitor
from sentinel.websites.sites import SiteDeclaration
from tests.website_lab import NginxSites, make_ca, make_leaf, need_nginx

pytestmark = [pytest.mark.root, pytest.mark.timeout(600)]
NOW = datetime.now(timezone.utc).replace(microsecond=0)
OPENSSL = "/usr/bin/openssl"


def day(n: int) -> str:
    """The date n days before the simulated start, as a Chinese site writes it."""
    d = (NOW - timedelta(days=n)).date()
    return f"{d.year}-{d.month:02d}-{d.day:02d}"


def page(title: str, body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title>{head}</head>"
            f"<body>{body}</body></html>\n")


def column_page(name: str, entries: list[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{href}">{text}</a><span class="date">{when}</span></li>'
                    for href, text, when in [(h, t.split("|")[0], t.split("|")[1] if "|" in t else "")
                                             for h, t in entries])
    return page(name, f'<div class="nav"><a href="/index.html">首页</a></div><h1>{name}</h1>'
                      f'<ul class="list">{items}</ul>')


COLUMNS = [  # (path, name, kind, entries)
    ("/news/", "要闻动态", "news", [("/news/a1.html", f"市政府召开常务会议|{day(3)}"),
                                 ("/news/a2.html", f"全市安全生产检查|{day(5)}"),
                                 ("/news/a3.html", f"政务服务新举措|{day(6)}")]),
    ("/dept-news/", "部门动态", "news", [("/dept-news/b1.html", f"部门工作会议|{day(30)}")]),
    ("/county-news/", "区县动态", "news", [("/county-news/c1.html", f"区县工作简报|{day(40)}")]),
    ("/photo-news/", "图片新闻", "news", [("/photo-news/d1.html", f"图片新闻一|{day(25)}")]),
    ("/notice/", "通知公告", "notice", [("/notice/e1.html", f"关于开展检查的通知|{day(200)}")]),
    ("/notice-fresh/", "公示公告", "notice", [("/notice-fresh/f1.html", f"公示|{day(20)}")]),
    ("/policy/", "政策文件", "policy", [("/policy/g1.html", f"关于印发实施办法的通知|{day(400)}")]),
    ("/work/", "工作动态", "news", [("/work/h1.html", "工作动态一"), ("/work/h2.html", "工作动态二")]),  # undated
] + [(f"/blank{i}/", f"空白栏目{i}", "other", []) for i in range(1, 6)]

HOME = page("某市人民政府", f"""
<div class="nav"><a href="/index.html">首页</a> <a href="/about.html">机构概况</a>
  <ul style="display:none"><li><a href="/news/">要闻动态（下拉菜单）</a></li></ul></div>
<div class="today">今天是 {day(0)} 星期四</div>
<ul class="home-news">
  <li><a href="/news/a1.html">市政府召开常务会议</a> {day(1)}</li>
  <li><a href="/missing.html">已删除的页面</a></li>
  <li><a href="/private/report.html">内部报告</a></li>
  <li><a href="OTHER/secret.html">另一网站</a></li>
  <li><a href="/old.html">旧地址</a> <a href="/away.html">外链跳转</a></li>
</ul>
{''.join(f'<a href="{p}">{n}</a> ' for p, n, _, _ in COLUMNS)}
<div style="position:absolute;left:-9999px;top:-9999px"><a href="http://www.example-bet.test/">澳门新葡京娱乐城</a></div>
<div class="lnk"><a href="http://link-farm.test/p">友情</a></div>
<img src="/img/logo.png" alt="logo"><img src="/img/banner-2019.png" alt="banner">
<img src="http://stats.example.net/pixel.gif" width="1" height="1" style="display:none">
<script src="http://cdn.allowed.test/jquery.js"></script>
""", head="<style>.lnk { display: none }</style>")

ARTICLE = page("文章", "<p>正文</p><a href=\"/index.html\">返回首页</a>")
ABOUT_BODY = ("<h1>机构概况</h1><p>市人民政府办公室是市政府的综合办事机构。</p><p>地址：人民路1号</p>"
              '<p>更新时间：{when}</p><div id="counter">访问量：{visits}</div>')


def build_main(site) -> None:
    site.write("index.html", HOME.replace("OTHER", OTHER_URL[0].rstrip("/")))
    site.write("robots.txt", "User-agent: *\nDisallow: /private/\n")
    site.write("img/logo.png", "not really a PNG: only its status is read")
    site.write("private/report.html", page("内部", "<p>不应被抓取</p>"))
    site.write("about.html", page("机构概况", ABOUT_BODY.format(when=f"{day(0)} 09:00", visits=1000)))
    for path, name, _kind, entries in COLUMNS:
        site.write(path + "index.html", column_page(name, entries))
        for href, _ in entries:
            site.write(href, ARTICLE)
    # below the home page: a broken link, a foreign iframe, and implanted code (挂马)
    site.write("news/a1.html", page("会议", '<p>正文</p><a href="/gone.html">附件（已失效）</a>'))
    site.write("news/a2.html", page("检查", '<p>正文</p><iframe src="http://ads.example.net/banner.html" '
                                         'width="300" height="250"></iframe>'))
    site.write("news/a3.html", page("新举措", '<p>正文</p><iframe src="http://evil.example.org/x.html" width="0" '
                                           'height="0"></iframe><script>eval(unescape("%64%6f%63"));</script>'))


OTHER_URL: list[str] = []


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    need_nginx()
    certs = tmp_path_factory.mktemp("certs")
    certs.chmod(0o755)
    ca = make_ca(certs)
    lab = NginxSites()
    main = lab.site("main")
    other = lab.site("other")
    OTHER_URL[:] = [other.url]
    # an old address redirects within the site; another leaves it (the monitor must not follow that one)
    main.extra = (f"    location = /old.html {{ return 301 /about.html; }}\n"
                  f"    location = /away.html {{ return 302 {other.url}secret.html; }}\n")
    other.write("secret.html", page("other", "<p>not on the declared site</p>"))
    stale = lab.site("stale")
    stale.write("index.html", page("旧网站", f'<ul><li><a href="/n1.html">旧闻</a> {day(21)}</li></ul>'))
    stale.write("n1.html", ARTICLE)
    slow = lab.site("slow", extra="    limit_rate 2k;\n")
    slow.write("index.html", page("慢", "<p>" + "慢" * 3000 + "</p>"))  # 9 kB at 2 kB/s: four seconds
    lab.site("failing", extra="    location / { return 503; }\n")
    expiring = lab.site("expiring", tls=make_leaf(certs, "expiring", ca, days=10),
                        headers={"Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff",
                                 "X-Frame-Options": "SAMEORIGIN"})
    expiring.write("index.html", page("https", f"<p>{day(1)}</p>"))
    old_tls = lab.site("oldtls", tls=make_leaf(certs, "oldtls", ca, days=400), protocols="TLSv1 TLSv1.1 TLSv1.2")
    old_tls.write("index.html", page("https", f"<p>{day(1)}</p>"))
    build_main(main)
    lab.start()
    lab.ca_pem = ca[0]
    yield lab
    lab.stop()


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(url)
    database = Database(url)
    with database.write() as conn:
        d = conn.execute(insert(Department.__table__).values(name="gov", title="市政府办公室", created_at=NOW)
                         ).inserted_primary_key[0]
        s = conn.execute(insert(System.__table__).values(
            name="portal", department_id=d, title="门户网站", level=3, s_grade=3, a_grade=2, label="S3A2", owner="",
            zones=[], scan_scope=[], chain_head="0" * 64, created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
    database.ids = (d, s)
    yield database
    database.dispose()


def declare(db, name: str, decl: dict) -> int:
    d, s = db.ids
    return monitor.declare(db, department_id=d, system_id=s, name=name, decl=SiteDeclaration.model_validate(decl),
                           actor="test", clock=lambda: NOW)


def fast(**kw) -> dict:
    return {"rate": 100, "concurrency": 4, **kw}


def by(result, rule: str) -> list:
    return [v for v in result.judged.verdicts if v.rule == rule]


def one(result, rule: str, subject_part: str = ""):
    found = [v for v in by(result, rule) if subject_part in v.subject]
    assert len(found) == 1, (rule, subject_part, [(v.subject, v.status) for v in by(result, rule)])
    return found[0]


def main_decl(lab, **extra) -> dict:
    site = lab.sites["main"]
    return {"urls": [site.url, site.url + "about.html"], "crawl": fast(depth=2),
            "columns": [{"name": n, "url": site.url.rstrip("/") + p, "kind": k} for p, n, k, _ in COLUMNS],
            "allowed_hosts": ["cdn.allowed.test"], "dynamic_selectors": ["#counter"], **extra}


def test_main_site_rules(lab, db):
    main = lab.sites["main"]
    wid = declare(db, "main", main_decl(lab))
    r = monitor.run_round(db, wid, clock=lambda: NOW, tls_check=lambda d, n: [])
    assert r.error is None

    # what nginx served: robots.txt first; the Disallow'd page and the other site never
    served = lab.requested("main")
    assert served[0] == "/robots.txt"
    assert "/private/report.html" not in served and "/about.html" in served
    assert "/secret.html" not in lab.requested("other")
    # redirects: followed hop by hop within the site, not off it
    assert r.crawl.fetches[main.url + "old.html"].final_url == main.url + "about.html"
    away = r.crawl.fetches[main.url + "away.html"]
    assert away.status == 302 and away.left_site == OTHER_URL[0] + "secret.html" and away.facts is None
    assert "http://127.0.0.1" not in " ".join(served)

    # columns: fresh news passes; three stale news columns, a notice of 200 days and a policy of 400 days fail
    assert one(r, "column.stale", "要闻动态").status == "pass"
    assert one(r, "column.stale", "公示公告").status == "pass"  # notice of 20 days: within six months
    for name in ("部门动态", "区县动态", "图片新闻", "通知公告", "政策文件"):
        v = one(r, "column.stale", name)
        assert v.status == "fail", v
    assert one(r, "column.stale", "通知公告").observed["age_days"] == 200
    # the undated column: nothing to tell from yet, said so (not passed)
    assert one(r, "column.stale", "工作动态").status == "error"
    assert one(r, "columns.stale").status == "fail" and one(r, "columns.stale").observed["columns"] == 5
    assert one(r, "columns.long_stale").status == "pass"
    for i in range(1, 6):
        assert one(r, "column.blank", f"空白栏目{i}").status == "fail"
    assert one(r, "column.blank", "要闻动态").status == "pass"
    assert one(r, "columns.blank").status == "fail" and one(r, "columns.blank").observed["columns"] == 5
    assert one(r, "home.stale").status == "pass"
    assert one(r, "home.stale").observed["age_days"] == 1  # its newest item; the "今天是 ..." clock line is no news

    # broken links, as nginx answers them
    broken_home = one(r, "links.broken_home", "/missing.html")
    assert broken_home.status == "fail" and broken_home.observed["answer"] == "HTTP 404"
    # an image is a link of the page too (检查指标: 链接包括图片、附件): the missing banner, not the logo
    assert one(r, "links.broken_home", "/img/banner-2019.png").observed["answer"] == "HTTP 404"
    assert not [v for v in by(r, "links.broken_home") if v.subject.endswith(("/img/logo.png", "/away.html",
                                                                              "/old.html"))]
    assert "/img/logo.png" in served
    below = one(r, "links.broken", "/gone.html")
    assert below.status == "fail" and below.observed["linked_from"] == [main.url + "news/a1.html"]

    # hidden links: the off-screen block and the <style>-hidden one; the hidden drop-down menu is on-site
    hidden = one(r, "security.hidden_links", main.url)
    text = "\n".join(hidden.evidence)
    assert "example-bet.test" in text and "off-screen" in text
    assert "link-farm.test" in text and "<style> rule" in text
    assert "要闻动态（下拉菜单）" not in text
    assert "pixel.gif" not in text  # a hidden tracking image is no hidden link
    bad = one(r, "security.bad_links", main.url)
    assert "澳门新葡京" in "\n".join(bad.evidence)

    # foreign content: the ad iframe, not the declared CDN
    foreign = [v for v in by(r, "security.foreign_content") if v.status == "fail"]
    evidence = "\n".join(e for v in foreign for e in v.evidence)
    assert "ads.example.net" in evidence and "cdn.allowed.test" not in evidence
    # 挂马: the zero-size foreign frame and the eval(unescape(...))
    mal = one(r, "security.malicious_code", "news/a3.html")
    assert mal.status == "fail"
    assert any("evil.example.org" in e for e in mal.evidence) and any("eval of decoded" in e for e in mal.evidence)
    # headers: nginx sends none of them here; TLS: an http site
    assert one(r, "http.security_headers").status == "fail"
    assert one(r, "tls.certificate").status == "not_applicable"
    assert one(r, "http.response_time").status == "pass"

    # the round and its findings are stored for the department's loop
    with db.read() as conn:
        rnd = conn.execute(select(WebsiteRound.__table__).where(WebsiteRound.__table__.c.id == r.round_id)).one()
        assert rnd.status == "succeeded" and set(rnd.vetoed) >= {"columns.stale", "columns.blank",
                                                                 "security.hidden_links", "security.malicious_code"}
        rows = conn.execute(select(WebsiteFinding.__table__).where(WebsiteFinding.__table__.c.website_id == wid)).all()
    assert {row.department_id for row in rows} == {db.ids[0]}
    # the veto findings are pushed: a compromise (挂马, 暗链) as critical, a failed inspection rule as a warning
    from sentinel.events.model import AlertEvent
    from sentinel.store.models import Event

    with db.read() as conn:
        events = [AlertEvent.from_row(e) for e in conn.execute(select(Event.__table__)).all()]
    kinds = {(e.kind, e.payload["rule"]) for e in events}
    assert {("website_security", "security.malicious_code"), ("website_security", "security.hidden_links"),
            ("website_veto", "columns.blank"), ("website_veto", "columns.stale")} <= kinds
    assert all(e.system == "portal" and e.department == "gov" and not e.resolved for e in events)
    assert len({e.key for e in events}) == len(events)
    assert any(row.rule == "links.broken_home" and row.subject.endswith("/missing.html") for row in rows)
    assert all(row.source and row.remediation["zh"] for row in rows)


def test_trail_over_simulated_weeks(lab, db):
    """The undated column judged by change over time, a repaired link resolving its finding, and a reviewed
    baseline that notices tampering but not the masked clock and visit counter."""
    main = lab.sites["main"]
    wid = declare(db, "trail", main_decl(lab))
    tls_none = lambda d, n: []  # noqa: E731
    r1 = monitor.run_round(db, wid, clock=lambda: NOW, tls_check=tls_none)
    baseline = monitor.approve_baseline(db, wid, main.url + "about.html", reviewer="张三", clock=lambda: NOW)
    assert baseline.lines and "访问量" not in "\n".join(baseline.lines)
    # a week later: the clock line and counter changed, the page did not
    main.write("about.html", page("机构概况", ABOUT_BODY.format(when=f"{day(-7)} 10:30", visits=1999)))
    main.write("missing.html", ARTICLE)  # the broken home page link repaired
    t2 = NOW + timedelta(days=7)
    r2 = monitor.run_round(db, wid, clock=lambda: t2, tls_check=tls_none)
    assert one(r2, "security.tampered").status == "pass", one(r2, "security.tampered").evidence
    assert not [v for v in by(r2, "links.broken_home") if v.status == "fail" and "missing" in v.subject]
    assert one(r2, "column.stale", "工作动态").status == "error"  # 7 of 14 days watched
    # three weeks after the start: the undated column never changed -> stale; the page is defaced
    main.write("about.html", page("机构概况", ABOUT_BODY.format(when=f"{day(-15)} 08:00", visits=2500).replace(
        "<p>地址：人民路1号</p>", "<p>HACKED BY someone</p>")))
    t3 = NOW + timedelta(days=15)
    r3 = monitor.run_round(db, wid, clock=lambda: t3, tls_check=tls_none)
    undated = one(r3, "column.stale", "工作动态")
    assert undated.status == "fail" and undated.observed["unchanged_days"] == 15
    tampered = one(r3, "security.tampered")
    assert tampered.status == "fail" and tampered.observed == {**tampered.observed, "added": 1, "removed": 1}
    assert "-地址：人民路1号" in tampered.evidence and "+HACKED BY someone" in tampered.evidence
    # and the news column whose newest entry was fresh at the start is stale 15 days later
    assert one(r3, "column.stale", "要闻动态").status == "fail"

    with db.read() as conn:
        t = WebsiteFinding.__table__
        rows = conn.execute(select(t).where(t.c.website_id == wid).order_by(t.c.id)).all()
    missing = [row for row in rows if row.subject.endswith("/missing.html")]
    assert len(missing) == 1 and missing[0].resolved_at == t2 and missing[0].resolved_round_id == r2.round_id
    # a veto finding that resolves pushes its resolution under the same fingerprint
    from sentinel.events.model import AlertEvent
    from sentinel.store.models import Event

    with db.read() as conn:
        events = [AlertEvent.from_row(e) for e in conn.execute(select(Event.__table__)).all()]
    firing = {e.key for e in events if not e.resolved}
    assert not [e for e in events if e.resolved and e.key not in firing]
    gone = [row for row in rows if row.subject.endswith("/gone.html")]
    assert gone[0].resolved_at is None and gone[0].occurrences == 3 and gone[0].first_seen == NOW
    assert gone[0].last_seen == t3 and gone[0].first_round_id == r1.round_id
    build_main(main)  # the module's other tests see the site as built


def test_stale_home_page(lab, db):
    wid = declare(db, "stale", {"urls": [lab.sites["stale"].url], "crawl": fast()})
    r = monitor.run_round(db, wid, clock=lambda: NOW, tls_check=lambda d, n: [])
    home = one(r, "home.stale")
    assert home.status == "fail" and home.observed["age_days"] == 21
    assert one(r, "columns.blank").status == "error"  # no columns declared: said, not passed


def test_availability_over_a_week(lab, db):
    """20 visits a day for 7 days of the real site: 7 of 140 (5 %) not open vetoes, 6 do not."""
    main = lab.sites["main"]
    wid = declare(db, "avail", {"urls": [main.url + "about.html"], "crawl": fast()})
    index = main.root / "about.html"
    hidden = main.root / "about.html.off"
    at = NOW - timedelta(days=7)
    visits = []

    def visit_at(i: int, down: bool) -> None:
        if down:
            index.rename(hidden)
        try:
            visits.append(monitor.visit(db, wid, clock=lambda: at + timedelta(minutes=72 * i)))
        finally:
            if down:
                hidden.rename(index)

    for i in range(140):  # every 72 minutes: 20 a day
        visit_at(i, i in (3, 30, 51, 77, 99, 120, 133))
    assert sum(1 for v in visits if not v.ok) == 7 and {v.status_code for v in visits if not v.ok} == {404}
    first = at + timedelta(minutes=72 * 139 + 1)  # the week that holds all 140
    with db.read() as conn:
        avail = monitor.availability(conn, wid, first, 7)
    assert avail.visits == 140 and avail.failures == 7 and set(avail.per_day.values()) == {20}
    r = monitor.run_round(db, wid, clock=lambda: first, tls_check=lambda d, n: [])
    v = one(r, "site.unreachable")
    assert v.status == "fail" and v.observed["share"] == 0.05
    # five more visits, all open: the week now starts after the failure of visit 3, 6 of 140 (4.3 %) pass
    for i in range(140, 145):
        visit_at(i, False)
    later = at + timedelta(minutes=72 * 144 + 1)
    r2 = monitor.run_round(db, wid, clock=lambda: later, tls_check=lambda d, n: [])
    v2 = one(r2, "site.unreachable")
    assert v2.observed == {"visits": 140, "failures": 6, "share": round(6 / 140, 4)} and v2.status == "pass", v2
    with db.read() as conn:
        t = WebsiteFinding.__table__
        trail = conn.execute(select(t).where(t.c.website_id == wid, t.c.rule == "site.unreachable")).one()
    assert trail.first_round_id == r.round_id and trail.resolved_round_id == r2.round_id


def test_failing_and_slow_sites(lab, db):
    failing = declare(db, "failing", {"urls": [lab.sites["failing"].url], "crawl": fast()})
    v = monitor.visit(db, failing, clock=lambda: NOW)
    assert not v.ok and v.status_code == 503
    # too few visits for the rule: it says so
    r = monitor.run_round(db, failing, clock=lambda: NOW, tls_check=lambda d, n: [])
    assert one(r, "site.unreachable").status == "error" and "20 visits a day" in one(r, "site.unreachable").reason
    assert one(r, "home.stale").status == "error" and "HTTP 503" in one(r, "home.stale").reason

    slow = lab.sites["slow"]
    wid = declare(db, "slow", {"urls": [slow.url], "crawl": fast()})
    r = monitor.run_round(db, wid, clock=lambda: NOW, tls_check=lambda d, n: [])
    t = one(r, "http.response_time")
    assert t.status == "fail" and 3.0 < t.observed["seconds"] < 15
    # with a 2 s limit, the visit does not open in time
    quick = declare(db, "slow2", {"urls": [slow.url], "crawl": fast(timeout=2)})
    v = monitor.visit(db, quick, clock=lambda: NOW)
    assert not v.ok and v.elapsed_ms < 3500 and ("Timeout" in (v.error or "") or "not open" in (v.error or ""))


def _openssl_days_left(site) -> int:
    out = subprocess.run([OPENSSL, "x509", "-noout", "-enddate", "-in", str(site.tls[0])], capture_output=True,
                         text=True, check=True).stdout
    end = datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    return (end - NOW).days


def _openssl_accepts(site, flag: str) -> bool:
    proc = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{site.port}", flag, "-cipher",
                           "DEFAULT:@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=20)
    return "Cipher is (NONE)" not in proc.stdout and proc.returncode == 0


def test_tls_sites(lab, db):
    expiring = lab.sites["expiring"]
    wid = declare(db, "expiring", {"urls": [expiring.url], "crawl": fast(), "ca_pem": lab.ca_pem})
    r = monitor.run_round(db, wid, clock=lambda: NOW)
    cert = one(r, "tls.certificate")
    assert cert.status == "fail" and cert.observed["verified"] is True
    assert cert.observed["days_left"] == _openssl_days_left(expiring) and "expires in" in cert.evidence[0]
    assert one(r, "tls.protocols").status == "pass"
    assert one(r, "http.security_headers").status == "pass"
    # without the CA the same certificate is not trusted
    wid2 = declare(db, "expiring-untrusted", {"urls": [expiring.url], "crawl": fast()})
    r2 = monitor.run_round(db, wid2, clock=lambda: NOW)
    assert one(r2, "tls.certificate").observed["verified"] is False

    old = lab.sites["oldtls"]
    wid3 = declare(db, "oldtls", {"urls": [old.url], "crawl": fast(), "ca_pem": lab.ca_pem})
    r3 = monitor.run_round(db, wid3, clock=lambda: NOW)
    assert one(r3, "tls.certificate").status == "pass"
    protocols = one(r3, "tls.protocols")
    for label, flag in (("TLSv1.0", "-tls1"), ("TLSv1.1", "-tls1_1"), ("TLSv1.2", "-tls1_2")):
        assert (label in protocols.observed["protocols"]) == _openssl_accepts(old, flag), label
    assert protocols.status == ("fail" if {"TLSv1.0", "TLSv1.1"} & set(protocols.observed["protocols"]) else "pass")
    assert one(r3, "http.security_headers").status == "fail"  # no HSTS on an HTTPS site


def test_scope_refuses_other_urls(lab):
    main = lab.sites["main"]
    decl = SiteDeclaration.model_validate({"urls": [main.url + "news/"]})
    scope = decl.scope()
    assert scope.allows(main.url + "news/a1.html")
    assert not scope.allows(main.url + "about.html")  # same host, outside the declared directory
    assert not scope.allows(OTHER_URL[0] + "secret.html")  # another port
    assert not scope.allows("http://evil.example.org/")
    with pytest.raises(ValueError, match="not on the declared site"):
        SiteDeclaration.model_validate({"urls": [main.url + "news/"], "columns": [
            {"name": "x", "url": OTHER_URL[0]}]})
