"""One polite, bounded crawl of a declared website (httpx, asyncio).

Bounds (the declaration's `crawl`): pages parsed down to `depth` links from a declared URL, the links found
on the deepest pages fetched once more for their status only (the broken-link rule needs it), never more
than `max_pages` requests in all, at most `rate` requests a second over `concurrency` connections, each
page given `timeout` seconds (the rules' 15 s) and read up to `max_bytes`. robots.txt of each origin is read
first and, with `obey_robots`, the pages it disallows are not fetched; the declared URLs themselves (home
page, columns) are fetched whatever it says, since the department declared them for monitoring.

Only URLs on the declared site are ever requested (sites.SiteScope); redirects are followed one hop at a
time and a hop that leaves the site is reported, not followed.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Optional
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from .page import PageFacts, entry_links, parse, visible_text
from .sites import SiteDeclaration, SiteScope, normalise_url

MAX_REDIRECTS = 5
_DISALLOW_ALL = ["User-agent: *", "Disallow: /"]
SECURITY_HEADERS = ("strict-transport-security", "content-security-policy", "x-content-type-options",
                    "x-frame-options", "referrer-policy", "server")


@dataclass
class Fetch:
    """One requested URL: how it answered, and for an HTML page within the depth, what it shows."""

    url: str
    depth: int
    referrer: Optional[str]
    status: Optional[int] = None
    elapsed: float = 0.0  # seconds to the whole body
    error: Optional[str] = None
    final_url: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)  # SECURITY_HEADERS only
    facts: Optional[PageFacts] = None
    text: Optional[str] = None  # visible text, kept for the declared URLs only (tamper, freshness)
    entries: Optional[list[str]] = None  # a column's entry links (its declared selector)
    left_site: Optional[str] = None  # where it redirects off the declared site (not followed: not judged)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400


@dataclass
class Crawl:
    fetches: dict[str, Fetch] = field(default_factory=dict)
    robots_skipped: list[str] = field(default_factory=list)
    unchecked: int = 0  # in-scope links left unfetched because max_pages was reached
    outside: int = 0  # links seen that are not on the declared site (recorded, never fetched)
    duration: float = 0.0


class _Pace:
    """At most `rate` requests a second, spaced evenly (the crawl is one site's only visitor from here)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            delay = self.next - now
            self.next = max(now, self.next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class Crawler:
    def __init__(self, decl: SiteDeclaration, today: date, transport: Optional[httpx.AsyncBaseTransport] = None,
                 verify: bool = False) -> None:
        self.decl = decl
        self.limits = decl.crawl
        self.scope: SiteScope = decl.scope()
        self.today = today
        self.transport = transport
        # certificates are judged on their own (tls rule); an invalid one must not hide the site's content
        self.verify = verify  # False by default, on purpose
        self.declared = {normalise_url(u) for u in decl.urls} | {c.url for c in decl.columns}
        self.entries = {c.url: c.entries for c in decl.columns if c.entries}

    def run(self) -> Crawl:
        return asyncio.run(self.crawl())

    async def crawl(self) -> Crawl:
        started = time.monotonic()
        result = Crawl()
        pace = _Pace(self.limits.rate)
        queue: asyncio.Queue[tuple[str, int, Optional[str]]] = asyncio.Queue()
        seen: set[str] = set()
        budget = [self.limits.max_pages]
        timeout = httpx.Timeout(self.limits.timeout)
        n = self.limits.concurrency
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False, verify=self.verify,
                                     transport=self.transport, trust_env=False,
                                     headers={"user-agent": self.limits.user_agent}) as client:
            robots = await self._robots(client, pace)
            for url in [*self.decl.urls, *(c.url for c in self.decl.columns)]:
                if url not in seen:
                    seen.add(url)
                    queue.put_nowait((url, 0, None))

            async def worker() -> None:
                while True:
                    url, depth, referrer = await queue.get()
                    try:
                        if budget[0] <= 0:
                            result.unchecked += 1
                            continue
                        if (self.limits.obey_robots and url not in self.declared
                                and not _allowed(robots, url, self.limits.user_agent)):
                            result.robots_skipped.append(url)
                            continue
                        budget[0] -= 1
                        fetch = await self._fetch(client, pace, url, depth, referrer)
                        result.fetches[url] = fetch
                        if fetch.facts is None or depth >= self.limits.depth + 1:
                            continue
                        for target in [*(lk.url for lk in fetch.facts.links), *fetch.facts.images]:
                            if not self.scope.allows(target):
                                if not self.scope.on_site_host(target):
                                    result.outside += 1
                                continue
                            target = normalise_url(target)
                            if target not in seen:
                                seen.add(target)
                                queue.put_nowait((target, depth + 1, url))
                    finally:
                        queue.task_done()

            workers = [asyncio.create_task(worker()) for _ in range(self.limits.concurrency)]
            await queue.join()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        result.duration = time.monotonic() - started
        return result

    async def _robots(self, client: httpx.AsyncClient, pace: _Pace) -> dict[tuple[str, str], RobotFileParser]:
        out: dict[tuple[str, str], RobotFileParser] = {}
        if not self.limits.obey_robots:
            return out
        for url in self.decl.urls:
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc)
            if key in out:
                continue
            parser = RobotFileParser()
            robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
            await pace.wait()
            try:
                answer = await client.get(robots_url)
                if answer.status_code >= 500:
                    parser.parse(_DISALLOW_ALL)  # RFC 9309 2.3.1.4: an unreachable robots.txt disallows everything
                elif answer.status_code < 400:
                    parser.parse(answer.text[:500_000].splitlines())
                else:
                    parser.parse([])  # 4xx: no rules
            except httpx.HTTPError:
                parser.parse(_DISALLOW_ALL)
            out[key] = parser
        return out

    async def _fetch(self, client: httpx.AsyncClient, pace: _Pace, url: str, depth: int,
                     referrer: Optional[str]) -> Fetch:
        fetch = Fetch(url=url, depth=depth, referrer=referrer)
        await pace.wait()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._get(client, pace, fetch), timeout=self.limits.timeout)
        except asyncio.TimeoutError:
            fetch.error = f"not open after {self.limits.timeout:g} s"
        except httpx.HTTPError as exc:
            fetch.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        fetch.elapsed = time.monotonic() - started
        return fetch

    async def _get(self, client: httpx.AsyncClient, pace: _Pace, fetch: Fetch) -> None:
        url = fetch.url
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                await pace.wait()
            async with client.stream("GET", url) as answer:
                fetch.status = answer.status_code
                if answer.is_redirect and "location" in answer.headers:
                    target = urljoin(url, answer.headers["location"])
                    if not self.scope.allows(target):
                        fetch.left_site = target  # not followed; its status (a redirect) is what we know
                        return
                    url = normalise_url(target)
                    continue
                fetch.final_url = url
                if fetch.url in self.declared:
                    fetch.headers = {h: answer.headers[h] for h in SECURITY_HEADERS if h in answer.headers}
                kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
                parse_it = (answer.status_code < 400 and kind in ("text/html", "application/xhtml+xml", "")
                            and fetch.depth <= self.limits.depth)
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    if parse_it:
                        body += chunk
                    if len(body) >= self.limits.max_bytes:
                        break  # the rest is not read: a page is judged on its first max_bytes
                if parse_it:
                    self._analyse(fetch, bytes(body), url, answer.charset_encoding)
                return
        fetch.error = f"more than {MAX_REDIRECTS} redirects"

    def _analyse(self, fetch: Fetch, body: bytes, final_url: str, encoding: Optional[str]) -> None:
        entries = self.entries.get(fetch.url)
        facts, root = parse(final_url, body, on_site=self.scope.on_site_host, today=self.today,
                            dynamic=self.decl.dynamic_selectors, entries=entries, encoding=encoding)
        facts.url = fetch.url
        fetch.facts = facts
        if root is not None and fetch.url in self.declared:
            fetch.text = visible_text(root.body if root.find("body") is not None else root)
            if entries:
                fetch.entries = entry_links(root, entries, final_url)


def _allowed(robots: dict[tuple[str, str], RobotFileParser], url: str, agent: str) -> bool:
    parts = urlsplit(url)
    parser = robots.get((parts.scheme, parts.netloc))
    return parser is None or parser.can_fetch(agent, url)
