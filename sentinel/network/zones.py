"""Zone baselines: what each network zone may expose, and which zones must not reach each other.

Same family as host baselines (docs/baselines.md): YAML in `baselines/` with `id`, `version`, `title`,
`standard`, `level`, `kind: zone`; a site file `extends:` a shipped one and may set `networks`, replace or
add `zones` (merged by name), add `isolation` rules, `override` check severities and `waive` checks.
Errors are `file:line: what is wrong`. See docs/network.md for the format.

The baseline's `level` is the level a one-shot scan scores at (the collector scores at the system's level);
an isolation rule names the catalogue item it counts for by key (`ref: abs.boundary.controlled-interface`),
and the level-3 clause form of older files (`clause: "8.1.3.1"`, `item: a`) is read as that key.

Port/service references are strings: a canonical service name (`telnet`, `redis`, see services.py),
`tcp/23`, `udp/161`, `tcp/8000-8100`, or a bare port `23` (tcp).
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from sentinel import catalogue
from sentinel.baseline import BaselineError
from sentinel.baseline import shipped as shipped_baselines
from sentinel.checks.network.scope import IPNetwork, PortRange, parse_ports
from sentinel.checks.network.services import PLAINTEXT_MANAGEMENT, PORT_SERVICE
from sentinel.expect import Reason
from sentinel.model import Severity, Strict, Text
from sentinel.yamldoc import parse, validation_problems

from .checks import shipped_checks

#: the level the clause form of isolation rules was written at (the only numbers older zone files used)
_CLAUSE_FORM_LEVEL = 3

_REF = re.compile(r"^(?:(tcp|udp)/)?(\d+(?:-\d+)?)$|^([a-z][a-z0-9-]*)$")


class PortRef:
    """A parsed port/service reference."""

    __slots__ = ("text", "proto", "ports", "service")

    def __init__(self, text: str):
        m = _REF.match(str(text).strip().lower())
        if not m:
            raise ValueError(f"bad port/service reference {text!r}: use a service name, tcp/N, udp/N or N-M")
        self.text = str(text)
        self.service = m.group(3)
        self.proto = m.group(1) or ("tcp" if m.group(2) else None)
        self.ports: list[PortRange] = parse_ports(m.group(2)) if m.group(2) else []

    def matches(self, proto: str, port: int, service: Optional[str]) -> bool:
        if self.service:
            return self.service == "all" or self.service == service
        return proto == self.proto and any(port in r for r in self.ports)

    def __repr__(self) -> str:
        return self.text


def _refs(value: list[str]) -> list[str]:
    for v in value:
        PortRef(v)  # validate now, with the offending text in the message
    return value


class Management(Strict):
    require_encryption: bool = True
    # Zones from which management services in this zone may be reached (8.1.4.4 c). None: not judged.
    from_zones: Optional[list[str]] = None


class ZoneSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: Text
    networks: list[IPNetwork] = Field(default_factory=list)
    default: Literal["allow", "deny"] = "deny"  # an open service matched by neither list
    allowed: list[str] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list)
    management: Management = Field(default_factory=Management)

    _check_allowed = field_validator("allowed", "forbidden")(classmethod(lambda cls, v: _refs(v)))

    @field_validator("networks", mode="before")
    @classmethod
    def _strict_networks(cls, value):
        return [ipaddress.ip_network(str(v), strict=True) for v in value or []]


class IsolationRule(Strict):
    from_: str = Field(alias="from")
    to: str
    ports: list[str] = Field(min_length=1)  # what must NOT be reachable from `from_` in `to`; ["all"] for all
    # the catalogue item a result of this rule counts for; None: the net-isolation check's own item
    ref: Optional[str] = Field(default=None, pattern=r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")
    why: Optional[Text] = None

    model_config = {"extra": "forbid", "populate_by_name": True}

    _check_ports = field_validator("ports")(classmethod(lambda cls, v: _refs(v)))

    @model_validator(mode="before")
    @classmethod
    def _clause_form(cls, data: Any) -> Any:
        """`clause: "8.1.3.1"` (+ `item: a`) of older files: the key the level-3 catalogue numbers so."""
        if not isinstance(data, dict) or ("clause" not in data and "item" not in data):
            return data
        data = dict(data)
        clause, letter = str(data.pop("clause", "8.1.3.2")), str(data.pop("item", "a"))
        if data.get("ref") is not None:
            raise ValueError("give either ref (a catalogue key) or the older clause/item, not both")
        try:
            data["ref"] = catalogue.load().by_clause(clause, letter, _CLAUSE_FORM_LEVEL).key
        except KeyError:
            raise ValueError(f"clause {clause} item {letter}: no such item at level {_CLAUSE_FORM_LEVEL} "
                             f"(write ref: with a catalogue key)") from None
        return data

    def _parsed(self) -> list[PortRef]:
        return [PortRef(p) for p in self.ports]

    def matches(self, proto: str, port: int) -> bool:
        service = PORT_SERVICE.get((proto, port))
        return any(ref.matches(proto, port, service) for ref in self._parsed())

    def uncovered(self, tcp_ports: list[int], udp_ports: list[int]) -> Optional[str]:
        """Port references of this rule the scan did not cover (a pass needs them covered), in words."""
        have = {"tcp": set(tcp_ports), "udp": set(udp_ports)}
        missing = []
        for ref in self._parsed():
            if ref.service == "all":
                if len(have["tcp"]) < 65535:
                    missing.append("all TCP ports (scan with --ports 1-65535)")
                continue
            if ref.service:
                ports = [p for (proto, p), s in PORT_SERVICE.items() if s == ref.service and proto == "tcp"]
                if ports and not any(p in have["tcp"] for p in ports):
                    missing.append(f"{ref.service} ({', '.join(f'tcp/{p}' for p in ports)})")
                continue
            gap = [p for r in ref.ports for p in range(r.start, r.end + 1) if p not in have[ref.proto or "tcp"]]
            if gap:
                missing.append(f"{ref.proto}/{gap[0]}" + (f" and {len(gap) - 1} more" if len(gap) > 1 else ""))
        return ", ".join(missing) or None

    def describe_ports(self) -> str:
        return ", ".join(self.ports)


class ZoneBaseline(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str
    title: Text
    standard: str = "GB/T 22239-2019"
    level: Literal[2, 3, 4]  # the levels the catalogue has; a one-shot scan scores at it
    kind: Literal["zone"] = "zone"
    high_risk_ports: list[str] = Field(default_factory=list)  # open on any zone -> high-risk case 6.4.3.1
    zones: list[ZoneSpec] = Field(min_length=1)
    isolation: list[IsolationRule] = Field(default_factory=list)
    override: dict[str, dict[str, Any]] = Field(default_factory=dict)  # check id -> {severity, high_risk}
    waive: dict[str, str] = Field(default_factory=dict)  # check id -> reason
    source: Optional[str] = None
    lineage: list[str] = Field(default_factory=list)

    _check_hr = field_validator("high_risk_ports")(classmethod(lambda cls, v: _refs(v)))

    @field_validator("override")
    @classmethod
    def _override_keys(cls, value: dict) -> dict:
        CHECKS = shipped_checks()
        for check_id, fields in value.items():
            if check_id not in CHECKS:
                raise ValueError(f"unknown network check {check_id!r} (known: {', '.join(sorted(CHECKS))})")
            bad = set(fields) - {"severity", "high_risk"}
            if bad:
                raise ValueError(f"{check_id}: only severity and high_risk can be overridden, not {sorted(bad)}")
            if "severity" in fields:
                fields["severity"] = Severity(fields["severity"])
        return value

    @field_validator("waive")
    @classmethod
    def _waive_keys(cls, value: dict) -> dict:
        CHECKS = shipped_checks()
        for check_id in value:
            if check_id not in CHECKS:
                raise ValueError(f"unknown network check {check_id!r} (known: {', '.join(sorted(CHECKS))})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ZoneBaseline:
        names = [z.name for z in self.zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate zone names: {', '.join(dupes)}")
        known = set(names)
        for i, rule in enumerate(self.isolation):
            for end in (rule.from_, rule.to):
                if end not in known:
                    raise ValueError(f"isolation[{i}]: unknown zone {end!r} (zones: {', '.join(names)})")
        for z in self.zones:
            for other in z.management.from_zones or []:
                if other not in known:
                    raise ValueError(f"zone {z.name}: management.from_zones names unknown zone {other!r}")
        cat = catalogue.load()
        for i, rule in enumerate(self.isolation):
            if rule.ref is not None and not cat.has(rule.ref, self.level):
                levels = cat.levels_of(rule.ref)
                raise ValueError(f"isolation[{i}]: ref {rule.ref}: " + (
                    f"level {self.level} has no such item (it is in level {', '.join(map(str, levels))})" if levels
                    else f"no such item in the catalogue of {catalogue.STANDARD}"))
        return self

    # ---- queries used by the scorer -----------------------------------------------------------

    def zone(self, name: str) -> ZoneSpec:
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(f"zone {name!r} is not in zone baseline {self.id} (zones: "
                       f"{', '.join(z.name for z in self.zones)})")

    def zone_for(self, host: str) -> Optional[str]:
        """The zone whose networks contain `host` (most specific network wins), or None."""
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return None
        best: Optional[tuple[int, str]] = None
        for z in self.zones:
            for net in z.networks:
                if addr.version == net.version and addr in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, z.name)
        return best[1] if best else None

    def management_from(self, zone: str) -> Optional[list[str]]:
        return self.zone(zone).management.from_zones

    def judge_port(self, zone: Optional[str], proto: str, port: int, service: Optional[str]
                   ) -> tuple[bool, Optional[str], bool]:
        """(forbidden, why, high_risk) for an open port in `zone` (None: only the high-risk list applies)."""
        forbidden, why, high = self.port_verdict(zone, proto, port, service)
        return forbidden, why.en if why else None, high

    def port_verdict(self, zone: Optional[str], proto: str, port: int, service: Optional[str]
                     ) -> tuple[bool, Optional[Reason], bool]:
        """judge_port, with the reason in both report languages."""
        high = any(PortRef(r).matches(proto, port, service) for r in self.high_risk_ports)
        label = f"{proto}/{port} ({service or 'unknown'})"
        high_port = Reason(f"{label} is a high-risk port", f"{label} 为高风险端口")
        if zone is None:
            return (high, high_port if high else None, high)
        spec = self.zone(zone)
        if any(PortRef(r).matches(proto, port, service) for r in spec.forbidden):
            return True, Reason(f"{label} is forbidden in zone {zone}", f"{label} 在区域 {zone} 中禁止开放"), high
        if spec.management.require_encryption and service in PLAINTEXT_MANAGEMENT:
            return True, Reason(f"{label}: zone {zone} requires encrypted management",
                                f"{label}：区域 {zone} 要求使用加密的管理协议"), high
        if any(PortRef(r).matches(proto, port, service) for r in spec.allowed):
            return False, None, False
        if spec.default == "deny":
            return True, Reason(f"{label} is not among the services allowed in zone {zone}",
                                f"{label} 不在区域 {zone} 允许开放的服务之列"), high
        if high:
            return True, high_port, True
        return False, None, False


# ---- loading ---------------------------------------------------------------------------------------

_EXTEND_KEYS = {"extends", "id", "version", "title", "standard", "level", "kind", "networks", "zones",
                "isolation", "high_risk_ports", "override", "waive"}


def shipped() -> dict[str, Path]:
    """Zone baselines shipped with sentinel (baselines/*.yaml with `kind: zone`), by file stem."""
    return shipped_baselines("zone")


def _resolve(ref: str, relative_to: Optional[Path] = None) -> Path:
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        p = Path(ref)
        if not p.is_absolute() and relative_to is not None:
            p = relative_to.parent / p
        if not p.exists():
            raise BaselineError([f"{ref}: no such zone baseline file"])
        return p
    found = shipped().get(ref)
    if found is None:
        raise BaselineError([f"{ref}: unknown zone baseline id (shipped: {', '.join(shipped()) or 'none'})"])
    return found


def load_zone_baseline(ref: Union[str, Path], _chain: tuple = ()) -> ZoneBaseline:
    """Load a zone baseline by shipped id or path; raises sentinel.baseline.BaselineError (`file:line: ...`)."""
    path = ref if isinstance(ref, Path) else _resolve(str(ref))
    real = path.resolve()
    if real in _chain:
        raise BaselineError([f"{path}:1: extends loop: " + " -> ".join(str(p) for p in _chain + (real,))])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError([f"{path}:1: cannot read: {exc}"]) from None
    doc = parse(str(path), text)
    data = doc.data
    if data.get("kind", "zone") != "zone":
        raise BaselineError([doc.error(("kind",), f"expected kind: zone, found {data.get('kind')!r}")])
    lineage: list[str] = []
    if "extends" in data:
        unknown = [k for k in data if k not in _EXTEND_KEYS]
        if unknown:
            raise BaselineError([doc.error((k,), "unknown key") for k in unknown])
        parent = load_zone_baseline(_resolve(str(data["extends"]), path), _chain + (real,))
        lineage = [parent.id] + parent.lineage
        try:
            data = _merge(parent, data)
        except _MergeError as exc:
            raise BaselineError([doc.error(exc.loc, exc.message)]) from None
    try:
        baseline = ZoneBaseline.model_validate(data)
    except ValidationError as exc:
        raise BaselineError(validation_problems(doc, exc)) from None
    baseline.source = str(path)
    baseline.lineage = lineage
    return baseline


class _MergeError(Exception):
    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = loc, message


def _merge(parent: ZoneBaseline, data: dict) -> dict:
    tree = parent.model_dump(mode="json", by_alias=True, exclude={"source", "lineage"})
    for key in ("id", "version", "title", "standard", "level", "high_risk_ports"):
        if key in data:
            tree[key] = data[key]
    zones = {z["name"]: z for z in tree["zones"]}
    for i, z in enumerate(data.get("zones") or []):
        if not isinstance(z, dict) or "name" not in z:
            raise _MergeError(("zones", i), "each zone needs a name")
        zones[z["name"]] = {**zones.get(z["name"], {}), **z}
    for name, nets in (data.get("networks") or {}).items():
        if name not in zones:
            raise _MergeError(("networks", name), f"unknown zone {name!r} (zones: {', '.join(zones)})")
        zones[name]["networks"] = nets
    tree["zones"] = list(zones.values())
    tree["isolation"] = tree["isolation"] + list(data.get("isolation") or [])
    tree["override"] = {**tree["override"], **(data.get("override") or {})}
    tree["waive"] = {**tree["waive"], **(data.get("waive") or {})}
    return tree
