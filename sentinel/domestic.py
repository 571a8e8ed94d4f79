"""国产化 recognition (issue 16 point 2; docs/domestic.md): which of a host's components are domestic.

The rules are data (baselines/domestic/products.yaml, extended or overridden by a site file with the same
format, validated with `file:line` errors like the baselines). Each product names its category (os, cpu,
database, middleware, crypto), its origin (domestic or foreign) and the facts that recognise it. The agent
gathers the facts read-only through the HostView (sentinel/agent/domestic.py) and sends the recognised
components in its inventory (`DomesticIn`); for an agent older than that, the collector recognises the OS and the
CPU from the inventory's os and cpu_model alone (`from_inventory`).

A host has exactly one OS and one CPU component (unrecognised when no rule matches: it counts against the
rate by name, so a site can add the rule), and any number of databases, middleware and crypto libraries.
"""
from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import baselines as _shipped
from .yamldoc import DataFileError, parse, validation_problems

Category = Literal["os", "cpu", "database", "middleware", "crypto"]
CATEGORIES: tuple[Category, ...] = ("os", "cpu", "database", "middleware", "crypto")
Origin = Literal["domestic", "foreign", "unrecognised"]
CATEGORY_ZH = {"os": "操作系统", "cpu": "处理器", "database": "数据库", "middleware": "中间件", "crypto": "密码/TLS"}
#: one OS and one CPU per host; the other categories hold every product found
SINGLE: tuple[Category, ...] = ("os", "cpu")

# package data of sentinel.baselines (setup.cfg), beside the baselines
RULES_PATH = Path(_shipped.__file__).resolve().parent / "domestic" / "products.yaml"
#: the site's own rules, read by the agent and the collector when the file exists (or named by the variable)
SITE_RULES_ENV, SITE_RULES_DEFAULT = "SENTINEL_DOMESTIC_RULES", "/etc/sentinel/domestic.yaml"
_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Name(_Strict):
    zh: str = Field(min_length=1, max_length=100)
    en: str = Field(min_length=1, max_length=100)


Patterns = list[str]


class Match(_Strict):
    """Shell wildcards, case-insensitive; any one that matches its fact recognises the product."""

    os_id: Patterns = Field(default_factory=list, description="/etc/os-release ID")
    os_name: Patterns = Field(default_factory=list, description="/etc/os-release NAME or PRETTY_NAME")
    cpu_vendor: Patterns = Field(default_factory=list, description="/proc/cpuinfo vendor_id (x86)")
    cpu_implementer: Patterns = Field(default_factory=list, description="/proc/cpuinfo CPU implementer (arm64)")
    cpu_model: Patterns = Field(default_factory=list, description="/proc/cpuinfo model name / Model / cpu model")
    cpu_family: Patterns = Field(default_factory=list, description="/proc/cpuinfo cpu family (LoongArch)")
    dmi: Patterns = Field(default_factory=list, description="DMI vendor, product and board (/sys/class/dmi/id)")
    packages: Patterns = Field(default_factory=list, description="installed package names (dpkg or rpm)")
    processes: Patterns = Field(default_factory=list, description="process names or executables' base names")
    cmdline: Patterns = Field(default_factory=list, description="processes' command lines (Java servers)")
    paths: Patterns = Field(default_factory=list, description="host paths that exist (absolute, wildcards allowed)")
    listening: Patterns = Field(default_factory=list, description="live host's listening services as PORT/PROCESS")


_HOST_FACTS = ("packages", "processes", "cmdline", "paths")


class Product(_Strict):
    id: str = Field(pattern=_ID)
    category: Category
    origin: Literal["domestic", "foreign"]
    vendor: str = Field(min_length=1, max_length=100)
    name: Name
    match: Match


class RuleFile(_Strict):
    version: Literal[1]
    products: list[Product] = Field(min_length=1)


class Rules(BaseModel):
    products: list[Product]
    sources: list[str]

    def of(self, category: Category) -> list[Product]:
        return [p for p in self.products if p.category == category]

    def paths(self) -> list[str]:
        return sorted({pat for p in self.products for pat in p.match.paths})


def _load_file(path: Path) -> list[Product]:
    doc = parse(str(path), path.read_text(encoding="utf-8"))
    try:
        data = RuleFile.model_validate(doc.data)
    except ValidationError as exc:
        raise DataFileError(validation_problems(doc, exc)) from None
    problems, seen = [], set()
    for i, p in enumerate(data.products):
        if p.id in seen:
            problems.append(doc.error(("products", i, "id"), f"product {p.id} is defined twice"))
        seen.add(p.id)
        for j, pat in enumerate(p.match.paths):
            if not pat.startswith("/"):
                problems.append(doc.error(("products", i, "match", "paths", j), "host paths must be absolute"))
        if not any(getattr(p.match, f) for f in Match.model_fields):
            problems.append(doc.error(("products", i, "match"), "no pattern: the product would never be found"))
    if problems:
        raise DataFileError(problems)
    return data.products


def site_rules_path() -> Optional[Path]:
    named = os.environ.get(SITE_RULES_ENV)
    if named:
        return Path(named)  # named: must exist (a typo is an error, not silence)
    default = Path(SITE_RULES_DEFAULT)
    return default if default.is_file() else None


def load(site: Optional[Path] = None, shipped: Path = RULES_PATH) -> Rules:
    """The shipped rules with the site's: a site product replaces the shipped one of the same id and is tried
    before the shipped ones (so a site's narrower rule wins)."""
    products = _load_file(shipped)
    sources = [str(shipped)]
    if site is not None:
        ours = _load_file(site)
        replaced = {p.id for p in ours}
        products = ours + [p for p in products if p.id not in replaced]
        sources.append(str(site))
    return Rules(products=products, sources=sources)


@cache
def default_rules() -> Rules:
    return load(site_rules_path())


# ---- facts and recognition --------------------------------------------------------------------------------

class Facts(BaseModel):
    """What the rules are matched against; unknown facts stay empty (nothing is recognised from them)."""

    os_id: Optional[str] = None
    os_names: list[str] = Field(default_factory=list)
    cpu_vendor: Optional[str] = None
    cpu_implementer: Optional[str] = None
    cpu_model: Optional[str] = None
    cpu_family: Optional[str] = None
    dmi: dict[str, str] = Field(default_factory=dict)
    packages: list[str] = Field(default_factory=list)
    processes: list[str] = Field(default_factory=list)
    cmdlines: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)  # the rules' path patterns' matches that exist
    listening: list[str] = Field(default_factory=list)  # PORT/PROCESS of each listening TCP socket (live host)


class Component(BaseModel):
    """One recognised component of a host, as sent in the inventory and shown by the API."""

    model_config = ConfigDict(extra="ignore")  # keys a newer agent adds are ignored (and kept in the snapshot)

    category: Category
    product: str = Field(max_length=64, description="the rule's id; `unrecognised` when none matched")
    origin: Origin
    name: str = Field(max_length=200, description="the product's name (zh), or the fact no rule matched")
    name_en: str = Field(max_length=200)
    vendor: Optional[str] = Field(default=None, max_length=100)
    found_by: list[str] = Field(default_factory=list, max_length=20,
                                description="the facts that matched, as `fact=value (pattern)`")


def _hits(patterns: Iterable[str], values: Iterable[Optional[str]], fact: str, limit: int = 3) -> list[str]:
    out = []
    for value in values:
        if not value:
            continue
        for pat in patterns:
            if fnmatch.fnmatchcase(value.strip().lower(), pat.lower()):
                out.append(f"{fact}={value.strip()[:120]} ({pat})")
                break
        if len(out) >= limit:
            break
    return out


def _evidence(p: Product, f: Facts) -> list[str]:
    m = p.match
    found = (_hits(m.os_id, [f.os_id], "os_id") + _hits(m.os_name, f.os_names, "os_name")
             + _hits(m.cpu_vendor, [f.cpu_vendor], "cpu_vendor")
             + _hits(m.cpu_implementer, [f.cpu_implementer], "cpu_implementer")
             + _hits(m.cpu_model, [f.cpu_model], "cpu_model") + _hits(m.cpu_family, [f.cpu_family], "cpu_family")
             + _hits(m.dmi, f.dmi.values(), "dmi") + _hits(m.packages, f.packages, "package")
             + _hits(m.processes, f.processes, "process") + _hits(m.cmdline, f.cmdlines, "cmdline", 1)
             + _hits(m.listening, f.listening, "listening"))
    for path in f.paths:
        for pat in m.paths:
            if fnmatch.fnmatchcase(path, pat):
                found.append(f"path={path} ({pat})")
                break
    return found[:20]


def _component(p: Product, found: list[str]) -> Component:
    return Component(category=p.category, product=p.id, origin=p.origin, name=p.name.zh, name_en=p.name.en,
                     vendor=p.vendor, found_by=found)


def recognise(facts: Facts, rules: Rules, categories: Iterable[Category] = CATEGORIES) -> list[Component]:
    out: list[Component] = []
    for category in categories:
        matched = [(p, ev) for p in rules.of(category) if (ev := _evidence(p, facts))]
        if category in SINGLE:
            if matched:
                out.append(_component(*matched[0]))
            else:
                seen = facts.os_names[0] if category == "os" and facts.os_names else (
                    facts.cpu_model or facts.cpu_vendor if category == "cpu" else None)
                if seen:  # a fact no rule knows: counted against the rate, by name, for a site rule to add
                    out.append(Component(category=category, product="unrecognised", origin="unrecognised",
                                         name=seen[:200], name_en=seen[:200], found_by=[f"{category}={seen[:120]}"]))
        else:
            out.extend(_component(p, ev) for p, ev in matched)
    return out


# ---- what the agent sends ---------------------------------------------------------------------------------

GmState = Literal["configured", "capable", "none", "unknown"]


class GmTls(BaseModel):
    """国密 (SM2/SM3/SM4) in the host's TLS: configured (a server's TLS configuration names SM suites or NTLS),
    capable (the system's TLS library has all three algorithms), none, or unknown (with the reason)."""

    model_config = ConfigDict(extra="ignore")

    state: GmState
    library: Optional[str] = Field(default=None, max_length=200, description="the library's own version line")
    algorithms: list[str] = Field(default_factory=list, max_length=3, description="SM2, SM3, SM4 found")
    tls_suites: list[str] = Field(default_factory=list, max_length=20, description="SM cipher suites offered")
    configured: list[str] = Field(default_factory=list, max_length=20, description="file:line naming SM suites")
    reason: Optional[str] = Field(default=None, max_length=500)


class DomesticIn(BaseModel):
    """The inventory's `domestic` key (absent from agents older than it)."""

    model_config = ConfigDict(extra="ignore")

    components: list[Component] = Field(max_length=200)
    gm_tls: GmTls
    rules: list[str] = Field(default_factory=list, max_length=4, description="the rule files the agent used")


def from_inventory(inventory: dict[str, Any], rules: Optional[Rules] = None) -> tuple[list[Component], GmTls]:
    """A stored inventory's components: the agent's own when it sent them, else the OS and CPU recognised
    from its os and cpu_model (an older agent): its databases, middleware and 国密 stay unknown."""
    sent = inventory.get("domestic")
    if isinstance(sent, dict):
        try:
            d = DomesticIn.model_validate(sent)
            return d.components, d.gm_tls
        except ValidationError:
            pass  # stored before the collector checked the key: read as an older agent's
    os_ = inventory.get("os") or {}
    facts = Facts(os_id=os_.get("os_id"), os_names=[n for n in (os_.get("os_name"),) if n],
                  cpu_model=inventory.get("cpu_model"))
    comps = recognise(facts, rules or default_rules(), ("os", "cpu"))
    return comps, GmTls(state="unknown", reason="the agent's inventory has no 国产化 facts (an older agent)")


_SM_SUITE = re.compile(r"\b(ECC-SM2-[A-Z0-9-]+|ECDHE-SM2-[A-Z0-9-]+|TLS_SM4_[A-Z0-9_]+|SM2-[A-Z0-9-]*SM4[A-Z0-9-]*)\b",
                       re.IGNORECASE)


def sm_suites(text: str) -> list[str]:
    """SM cipher suite names in a cipher list or an `openssl ciphers` output."""
    return sorted({m.group(1).upper() for m in _SM_SUITE.finditer(text)})
