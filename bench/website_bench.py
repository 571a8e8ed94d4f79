"""One website-monitoring round over a 1,000-page site served by a local nginx (issue 17, point 4).

The site: a home page linking 20 columns of 50 dated articles each (1,021 pages within depth 2), every
article linking back and to two others, a few with hidden links and foreign frames so every rule has work.
nginx (Debian's, started here on a free loopback port, stopped at the end) serves it; the round is
sentinel.websites.monitor.run_round with its real crawler, judge and store (SQLite in a temporary directory),
at `--rate` requests a second over `--concurrency` connections. Reported: the round's wall time, pages, the
slowest requests, and this process's peak resident memory before and after the round (VmHWM), against the
targets of 60 s and a bounded memory (the round keeps page facts, not page bodies).

    python bench/website_bench.py [--pages 1000] [--rate 200] [--concurrency 8]   (as root: nginx binds)
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import write_section
from tests.website_lab import NginxSites

TARGET_SECONDS = 60.0


def vm(key: str) -> int:
    """A /proc/self/status figure in KiB (VmHWM: peak resident, VmRSS: resident now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def build(site, pages: int, now: datetime) -> int:
    columns = 20
    per = max(1, -(-(pages - 1 - columns) // columns))  # at least `pages` in all
    links = "".join(f'<li><a href="/c{c}/">栏目{c}</a></li>' for c in range(columns))
    site.write("index.html", f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>门户</title></head><body>"
                             f"<ul>{links}</ul><p>{now:%Y-%m-%d}</p></body></html>")
    written = 1
    filler = "<p>" + "政务公开信息内容。" * 60 + "</p>"
    for c in range(columns):
        items = "".join(f'<li><a href="/c{c}/a{i}.html">文章{c}-{i}</a><span>{now:%Y-%m-%d}</span></li>'
                        for i in range(per))
        site.write(f"c{c}/index.html", f"<html><head><meta charset='utf-8'></head><body><a href='/'>首页</a>"
                                       f"<ul class='list'>{items}</ul></body></html>")
        written += 1
        for i in range(per):
            extra = ""
            if i % 97 == 0:
                extra = ('<div style="display:none"><a href="http://bet.example.test/">娱乐城</a></div>'
                         '<iframe src="http://ads.example.test/x" width="300" height="200"></iframe>')
            nav = (f"<a href='/'>首页</a><a href='/c{c}/a{(i + 1) % per}.html'>下一篇</a>"
                   f"<a href='/c{(c + 1) % columns}/a{i}.html'>相关</a>")
            site.write(f"c{c}/a{i}.html", f"<html><head><meta charset='utf-8'><title>文章</title></head><body>"
                                          f"{nav}{filler}{extra}</body></html>")
            written += 1
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--no-write", action="store_true", help="print, do not write bench/RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: nginx binds and its workers read the site", file=sys.stderr)
        return 2

    from sqlalchemy import insert

    from sentinel.store.db import Database, upgrade
    from sentinel.store.models import Department, System
    from sentinel.websites import monitor
    from sentinel.websites.sites import SiteDeclaration

    now = datetime.now(timezone.utc)
    lab = NginxSites()
    try:
        site = lab.site("bench")
        written = build(site, args.pages, now)
        lab.start()
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            db = Database(url)
            with db.write() as conn:
                d = conn.execute(insert(Department.__table__).values(name="d", title="", created_at=now)
                                 ).inserted_primary_key[0]
                s = conn.execute(insert(System.__table__).values(
                    name="s", department_id=d, title="", level=3, s_grade=3, a_grade=2, label="S3A2", owner="",
                    zones=[], scan_scope=[], chain_head="0" * 64, created_at=now, updated_at=now)
                ).inserted_primary_key[0]
            decl = SiteDeclaration.model_validate({
                "urls": [site.url], "columns": [{"name": f"栏目{c}", "url": f"{site.url}c{c}/", "kind": "news",
                                                 "entries": ".list"} for c in range(20)],
                "crawl": {"depth": 2, "max_pages": written + 50, "rate": args.rate, "concurrency": args.concurrency}})
            wid = monitor.declare(db, department_id=d, system_id=s, name="bench", decl=decl, actor="bench")
            hwm_before, rss_before = vm("VmHWM"), vm("VmRSS")
            started = time.perf_counter()
            result = monitor.run_round(db, wid, tls_check=lambda _d, _n: [])
            wall = time.perf_counter() - started
            hwm_after = vm("VmHWM")
            db.dispose()
        assert result.crawl is not None and result.judged is not None, result.error
        crawl = result.crawl
        fetched = len(crawl.fetches)
        parsed = sum(1 for f in crawl.fetches.values() if f.facts is not None)
        slowest = sorted((f.elapsed for f in crawl.fetches.values()), reverse=True)[:3]
        failed = sorted({v.rule for v in result.judged.verdicts if v.status == "fail"})
    finally:
        lab.stop()
    ok = wall <= TARGET_SECONDS and fetched >= args.pages
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"nginx on loopback; {written} pages written, crawl rate {args.rate:g}/s over {args.concurrency} connections.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| round wall time (crawl, judge, store) | {wall:.1f} s (target <= {TARGET_SECONDS:.0f} s) |",
        f"| of which the crawl | {crawl.duration:.1f} s |",
        f"| requests / parsed pages | {fetched} / {parsed} |",
        f"| slowest requests | {', '.join(f'{x * 1000:.0f} ms' for x in slowest)} |",
        f"| resident memory before the round | {rss_before / 1024:.0f} MiB |",
        f"| peak resident memory, before -> after the round | {hwm_before / 1024:.0f} -> {hwm_after / 1024:.0f} MiB "
        f"(+{(hwm_after - hwm_before) / 1024:.0f} MiB) |",
        f"| failed rules (the site's planted problems) | {', '.join(failed)} |",
        "",
        f"Result: {'within' if ok else 'OUTSIDE'} the target. The rate is the declaration's `crawl.rate`: the default "
        "(5/s, polite to a production site) takes 1,000 pages in about 200 s; a monitoring authority raises it for "
        "its own sites.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("website-round", "Website monitoring: one round over 1,000 pages (bench/website_bench.py)", body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
