"""Scan scope: the only addresses and ports a scan may ever touch.

`ensure_in_scope(targets, scope)` is called before any packet is sent; anything outside raises `ScopeError`
listing every refused target, so the caller (CLI, collector) can report and audit it. Targets are IP
addresses, CIDR blocks or hostnames; hostnames are resolved here, once, and the scan then uses the resolved
addresses only (nmap runs with `-n`), so a DNS answer cannot change what is scanned after the check.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Optional, Union

from pydantic import Field, field_validator, model_validator

from sentinel.model import Strict

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
MAX_TARGET_ADDRESSES = 65536  # a /16; larger blocks are almost certainly a typo in a compliance scan


def _subnet_of(net: IPNetwork, of: IPNetwork) -> bool:
    """net lies within of; networks of different IP versions never contain each other."""
    # isinstance rather than comparing .version, so mypy sees both sides are the same class
    if isinstance(net, ipaddress.IPv4Network) and isinstance(of, ipaddress.IPv4Network):
        return net.subnet_of(of)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(of, ipaddress.IPv6Network):
        return net.subnet_of(of)
    return False


class ScopeError(Exception):
    """A target or port outside the registered scope. `refused` lists each refused item with the reason."""

    def __init__(self, refused: list[str], scope_name: Optional[str] = None):
        self.refused = refused
        self.scope_name = scope_name
        where = f"scope {scope_name!r}" if scope_name else "the scan scope"
        super().__init__(f"refused, outside {where} (no packet was sent): " + "; ".join(refused))


class PortRange(Strict):
    start: int = Field(ge=1, le=65535)
    end: int = Field(ge=1, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.end < self.start:
            raise ValueError(f"port range {self.start}-{self.end} ends before it starts")
        return self

    def __contains__(self, port: int) -> bool:
        return self.start <= port <= self.end

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


def parse_ports(spec: Union[str, Iterable[Union[int, str]]]) -> list[PortRange]:
    """'22,80,8000-8100' (or a list of ints/strings) -> sorted, merged ranges. Clear error on bad input."""
    parts: list[str] = []
    if isinstance(spec, str):
        parts = [p for p in spec.replace(" ", "").split(",") if p]
    else:
        for p in spec:
            parts.extend(str(p).replace(" ", "").split(","))
    if not parts:
        raise ValueError("empty port list")
    ranges = []
    for part in parts:
        lo, sep, hi = part.partition("-")
        try:
            start, end = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"bad port {part!r}: expected N or N-M with 1 <= N <= 65535") from None
        if not (1 <= start <= 65535 and 1 <= end <= 65535):
            raise ValueError(f"bad port {part!r}: ports are 1-65535")
        ranges.append(PortRange(start=start, end=end))
    return merge_ranges(ranges)


def merge_ranges(ranges: Iterable[PortRange]) -> list[PortRange]:
    out: list[PortRange] = []
    for r in sorted(ranges, key=lambda r: (r.start, r.end)):
        if out and r.start <= out[-1].end + 1:
            out[-1] = PortRange(start=out[-1].start, end=max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def format_ports(ranges: Iterable[PortRange]) -> str:
    """nmap port syntax for ranges: '22,80,8000-8100'."""
    return ",".join(str(r) for r in ranges)


def expand_ports(ranges: Iterable[PortRange]) -> list[int]:
    return [p for r in ranges for p in range(r.start, r.end + 1)]


class Scope(Strict):
    """What a system allows to be scanned: networks (CIDR), single hosts, and port ranges (default all)."""

    name: Optional[str] = None
    networks: list[IPNetwork] = Field(default_factory=list)
    hosts: list[IPAddress] = Field(default_factory=list)
    ports: list[PortRange] = Field(default_factory=lambda: [PortRange(start=1, end=65535)])

    @field_validator("networks", mode="before")
    @classmethod
    def _strict_networks(cls, value):
        # ip_network(strict=True) refuses 10.0.0.5/24: a scope with host bits set is ambiguous, say so.
        out = []
        for i, item in enumerate(value or []):
            try:
                out.append(ipaddress.ip_network(str(item), strict=True))
            except ValueError as exc:
                raise ValueError(f"networks[{i}] {str(item)!r}: not a network in CIDR form ({exc})") from None
        return out

    @field_validator("ports", mode="before")
    @classmethod
    def _port_spec(cls, value):
        if isinstance(value, (str, int)):
            return parse_ports(str(value))
        if isinstance(value, list) and value and not isinstance(value[0], (dict, PortRange)):
            return parse_ports(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Scope:
        if not self.networks and not self.hosts:
            raise ValueError("a scope needs at least one network or host")
        self.ports = merge_ranges(self.ports)
        return self

    @classmethod
    def from_cli(cls, items: Iterable[str], ports: Optional[str] = None, name: Optional[str] = None) -> Scope:
        """`--scope 10.0.0.0/24 --scope 192.0.2.7` -> Scope; single addresses become hosts."""
        networks, hosts = [], []
        for item in items:
            text = item.strip()
            if "/" in text:
                networks.append(text)
            else:
                try:
                    hosts.append(ipaddress.ip_address(text))
                except ValueError:
                    raise ValueError(f"bad scope entry {item!r}: expected an IP address or CIDR block") from None
        data: dict = {"name": name, "networks": networks, "hosts": hosts}
        if ports:
            data["ports"] = ports
        return cls.model_validate(data)

    def contains_address(self, addr: IPAddress) -> bool:
        return addr in self.hosts or any(addr.version == n.version and addr in n for n in self.networks)

    def contains_network(self, net: IPNetwork) -> bool:
        if net.num_addresses == 1:
            return self.contains_address(net.network_address)
        return any(_subnet_of(net, n) for n in self.networks)

    def contains_port(self, port: int) -> bool:
        return any(port in r for r in self.ports)


class ResolvedTarget(Strict):
    """A target as given and what it resolved to (an address or a network)."""

    given: str
    network: IPNetwork

    @property
    def nmap_spec(self) -> str:
        n = self.network
        return str(n.network_address) if n.num_addresses == 1 else str(n)


def _resolve(target: str) -> list[IPNetwork]:
    text = target.strip()
    if not text:
        raise ValueError("empty target")
    try:
        return [ipaddress.ip_network(text, strict=False)]
    except ValueError:
        pass
    if "/" in text:
        raise ValueError(f"bad target {target!r}: not an IP address or CIDR block")
    try:
        infos = socket.getaddrinfo(text, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve target {target!r}: {exc.strerror}") from None
    addrs = sorted({info[4][0] for info in infos})
    return [ipaddress.ip_network(a) for a in addrs]


def ensure_in_scope(targets: Iterable[str], scope: Scope, ports: Optional[Iterable[PortRange]] = None,
                    audit=None) -> list[ResolvedTarget]:
    """Resolve targets and check each against the scope (and the requested ports against its port ranges).

    Returns the resolved targets when everything is inside. Otherwise raises `ScopeError` naming every refused
    target/port, after calling `audit(refused: list[str])` if given (the collector writes its audit entry there).
    No packet is sent to a target by this function; hostname resolution asks the configured resolver only.
    """
    refused: list[str] = []
    resolved: list[ResolvedTarget] = []
    total = 0
    for target in targets:
        try:
            networks = _resolve(target)
        except ValueError as exc:
            refused.append(str(exc))
            continue
        for net in networks:
            shown = target if str(net) in (target, f"{target}/32", f"{target}/128") else f"{target} ({net})"
            if not scope.contains_network(net):
                refused.append(f"{shown} is not inside {_describe(scope)}")
                continue
            total += net.num_addresses
            resolved.append(ResolvedTarget(given=target, network=net))
    if not resolved and not refused:
        refused.append("no targets given")
    if total > MAX_TARGET_ADDRESSES:
        refused.append(f"{total} addresses requested; at most {MAX_TARGET_ADDRESSES} per scan")
    for r in ports or []:
        if not _range_inside(r, scope.ports):
            refused.append(f"port {r} is outside the scope's ports {format_ports(scope.ports)}")
    if refused:
        if audit is not None:
            audit(refused)
        raise ScopeError(refused, scope.name)
    return resolved


def _range_inside(r: PortRange, allowed: list[PortRange]) -> bool:
    return any(a.start <= r.start and r.end <= a.end for a in merge_ranges(allowed))


def _describe(scope: Scope) -> str:
    items = [str(n) for n in scope.networks] + [str(h) for h in scope.hosts]
    return "scope " + (f"{scope.name!r} " if scope.name else "") + "[" + ", ".join(items) + "]"
