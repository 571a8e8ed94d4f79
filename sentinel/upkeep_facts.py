"""The upkeep and use facts an agent sends in its inventory's `upkeep` key (sentinel/agent/upkeep.py makes them,
sentinel/zombie.py judges them), as typed models shared by the collector's wire contract and the rules.

Each fact holds its values or `error`, the reason it is not known. Keys a newer agent adds are ignored here (the
stored inventory keeps them).
"""
from __future__ import annotations

from datetime import date
from typing import Literal, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: the largest value an INTEGER column holds on PostgreSQL (packages_count, logins); 2**31 was a 500 there
INT32_MAX = (1 << 31) - 1


class _FactIn(BaseModel):
    """One upkeep fact: its values, or `error`, the reason it is not known."""

    model_config = ConfigDict(extra="ignore")

    error: Optional[str] = Field(default=None, max_length=500)


class PackagesFactIn(_FactIn):
    last_change: Optional[AwareDatetime] = None
    source: Optional[str] = Field(default=None, max_length=500)
    manager: Optional[Literal["dpkg", "rpm"]] = None


class ConfigFactIn(_FactIn):
    last_change: Optional[AwareDatetime] = None
    path: Optional[str] = Field(default=None, max_length=1000)
    entries: Optional[int] = Field(default=None, ge=0, le=INT32_MAX)


class KernelFactIn(_FactIn):
    release: Optional[str] = Field(default=None, max_length=128)
    version: Optional[str] = Field(default=None, max_length=200)
    built: Optional[AwareDatetime] = None
    installed: Optional[AwareDatetime] = None
    booted: Optional[AwareDatetime] = None


class LoginWeekIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    start: date  # the Monday the ISO week starts on (UTC)
    logins: int = Field(ge=0, le=INT32_MAX)
    users: int = Field(ge=0, le=INT32_MAX)


class LoginsFactIn(_FactIn):
    source: list[str] = Field(default_factory=list, max_length=8)
    since: Optional[AwareDatetime] = None  # the login records start here: earlier weeks are not covered
    weeks: list[LoginWeekIn] = Field(default_factory=list, max_length=60)
    last_login: Optional[AwareDatetime] = None


class RequestWeekIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    start: date
    requests: int = Field(ge=0, le=1 << 62)
    clients: int = Field(ge=0, le=INT32_MAX)


class RequestsFactIn(_FactIn):
    """Web requests from other hosts per ISO week in the access logs (`source` empty: no web server log)."""

    source: list[str] = Field(default_factory=list, max_length=8)
    since: Optional[AwareDatetime] = None
    weeks: list[RequestWeekIn] = Field(default_factory=list, max_length=60)
    unparsed: int = Field(default=0, ge=0, le=1 << 62)


class UpkeepIn(BaseModel):
    """The inventory's `upkeep` key (agents from this release on; None from older ones: every fact unknown)."""

    model_config = ConfigDict(extra="ignore")

    packages: PackagesFactIn = Field(default_factory=PackagesFactIn)
    config: ConfigFactIn = Field(default_factory=ConfigFactIn)
    kernel: KernelFactIn = Field(default_factory=KernelFactIn)
    logins: LoginsFactIn = Field(default_factory=LoginsFactIn)
    requests: RequestsFactIn = Field(default_factory=RequestsFactIn)
