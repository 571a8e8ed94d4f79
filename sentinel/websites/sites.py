"""A department's declared website (网站): its URLs, columns (栏目), crawl bounds and judging options.

The declaration is the website's scope, as `systems.scan_scope` is a scan's: sentinel fetches a URL only
when its scheme, host and port are those of a declared URL and its path lies under that URL's directory
(`SiteScope.allows`); every other link is recorded, never fetched. Redirects are followed hop by hop and
each hop is checked the same way.
"""
from __future__ import annotations

import posixpath
import re
from typing import Literal, Optional
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from sentinel.model import Strict

ColumnKind = Literal["news", "notice", "policy", "other"]

#: days a column of each kind may go without new information (政府网站与政务新媒体检查指标, 2019: 动态、要闻类
#: 2 weeks, 通知公告、政策文件类 6 months; "other" columns: a year, the 2015 普查 "长期未更新")
DEFAULT_STALE_DAYS: dict[str, int] = {"news": 14, "notice": 183, "policy": 183, "other": 365}


class UrlOutsideSite(ValueError):
    """A URL that is not on the declared site: never fetched."""


def normalise_url(url: str) -> str:
    """scheme://host[:port]/path[?query] with the scheme and host lowercased, the default port and the
    fragment dropped and the path's dot segments resolved. ValueError for anything but http(s) with a host."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: only http and https URLs are monitored")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    if parts.username or parts.password:
        raise ValueError(f"{url!r}: credentials in a URL are refused (they would reach logs)")
    try:
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"{url!r}: bad host name ({exc})") from None
    port = parts.port  # ValueError for a bad port, worded by urllib
    default = 443 if scheme == "https" else 80
    netloc = f"[{host}]" if ":" in host else host
    if port not in (None, default):
        netloc += f":{port}"
    path = parts.path or "/"
    resolved = posixpath.normpath(path)
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    resolved = re.sub("^//+", "/", resolved)
    return urlunsplit((scheme, netloc, resolved, parts.query, ""))


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port or (443 if parts.scheme == "https" else 80)


class Column(Strict):
    """A column (栏目) whose freshness the rules judge: its list page and what kind of information it holds."""

    name: str = Field(min_length=1, max_length=200)
    url: str
    kind: ColumnKind = "other"
    #: CSS selector of the entry list on the column page; absent: every link of the page not also on the home page
    entries: Optional[str] = Field(default=None, max_length=500)
    stale_days: Optional[int] = Field(default=None, ge=1, le=3650)

    def window_days(self) -> int:
        return self.stale_days or DEFAULT_STALE_DAYS[self.kind]


class CrawlLimits(Strict):
    """How far and how fast a round crawls: it is polite by default (2 connections, 5 requests/s, robots.txt)."""

    depth: int = Field(default=2, ge=0, le=10)
    max_pages: int = Field(default=200, ge=1, le=20_000)
    rate: float = Field(default=5.0, gt=0, le=1000, description="requests per second to the site")
    concurrency: int = Field(default=2, ge=1, le=32)
    timeout: float = Field(default=15.0, gt=0, le=120, description="seconds: a page not open by then is not open")
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    obey_robots: bool = True
    user_agent: str = Field(default="sentinel-website-monitor/1", max_length=200)


class Thresholds(Strict):
    slow_seconds: float = Field(default=3.0, gt=0, le=60, description="a home page slower than this fails")
    cert_days: int = Field(default=30, ge=0, le=365, description="a certificate expiring sooner fails")
    home_stale_days: int = Field(default=14, ge=1, le=365)
    #: the availability rule: at least this many visits a day over `availability_days` days
    availability_days: int = Field(default=7, ge=1, le=60)
    visits_per_day: int = Field(default=20, ge=1, le=1440)
    unreachable_share: float = Field(default=0.05, gt=0, le=1)
    stale_columns_veto: int = Field(default=5, ge=1)
    long_stale_columns_veto: int = Field(default=10, ge=1)
    blank_columns_veto: int = Field(default=5, ge=1)


class SiteDeclaration(Strict):
    """What a department declares about one website (API body, stored as `websites.declaration`)."""

    urls: list[str] = Field(min_length=1, max_length=50,
                            description="home page first; each URL's directory is in scope")
    columns: list[Column] = Field(default_factory=list, max_length=500)
    crawl: CrawlLimits = Field(default_factory=CrawlLimits)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    #: hosts whose scripts and iframes the site means to load (a CDN, a statistics service)
    allowed_hosts: list[str] = Field(default_factory=list, max_length=200)
    #: words that mark a gambling or pornography link, added to the shipped lists (sentinel/websites/keywords.py)
    extra_keywords: list[str] = Field(default_factory=list, max_length=1000)
    #: CSS selectors of dynamic parts (a visit counter, a clock) left out of the tamper comparison
    dynamic_selectors: list[str] = Field(default_factory=list, max_length=100)
    #: PEM of CAs that sign the site's certificate besides the collector's trust store (a government CA)
    ca_pem: Optional[str] = Field(default=None, max_length=200_000)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        out = []
        for url in value:
            out.append(normalise_url(url))
        return out

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in value if h.strip()]

    @model_validator(mode="after")
    def _columns_on_site(self) -> SiteDeclaration:
        scope = SiteScope(self.urls)
        for column in self.columns:
            column.url = normalise_url(column.url)
            scope.check(column.url)
        return self

    @property
    def home(self) -> str:
        return self.urls[0]

    def scope(self) -> SiteScope:
        return SiteScope(self.urls)


class SiteScope:
    """The URLs a round may fetch: same scheme, host and port as a declared URL, path under its directory."""

    def __init__(self, urls: list[str]) -> None:
        self.prefixes: list[tuple[tuple[str, str, int], str]] = []
        for url in urls:
            norm = normalise_url(url)
            path = urlsplit(norm).path
            directory = path if path.endswith("/") else path.rsplit("/", 1)[0] + "/"
            self.prefixes.append((origin(norm), directory))

    def allows(self, url: str) -> bool:
        try:
            norm = normalise_url(url)
        except ValueError:
            return False
        where, path = origin(norm), urlsplit(norm).path
        return any(where == o and path.startswith(d) for o, d in self.prefixes)

    def on_site_host(self, url: str) -> bool:
        """The URL is on one of the site's hosts (any path): not an external link, even if outside the scope."""
        try:
            host = urlsplit(normalise_url(url)).hostname
        except ValueError:
            return False
        return any(host == o[1] for o, _ in self.prefixes)

    def check(self, url: str) -> str:
        if not self.allows(url):
            raise UrlOutsideSite(f"{url} is not on the declared site ({', '.join(self.describe())}): not fetched")
        return normalise_url(url)

    def describe(self) -> list[str]:
        out = []
        for (scheme, host, port), directory in self.prefixes:
            netloc = f"[{host}]" if ":" in host else host
            out.append(f"{scheme}://{netloc}:{port}{directory}")
        return out
