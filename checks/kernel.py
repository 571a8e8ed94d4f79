"""`sysctl.value`: kernel parameters, at runtime (/proc/sys, live only) or as configured on disk.

Configured values follow systemd-sysctl / `sysctl --system`: *.conf from /etc/sysctl.d, /run/sysctl.d,
/usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d, a file name in an earlier directory
masking the same name in later ones, all applied in file-name order, then /etc/sysctl.conf last; the
last assignment wins. Keys may be written with `/` separators, a leading `-` (ignore errors), or as
globs (`net.ipv4.conf.*.rp_filter`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal, Optional

from pydantic import field_validator

from sentinel.hostview import LiveOnly
from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import read_lines

SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"


@dataclass(frozen=True)
class SysctlSetting:
    key: str  # dotted, may be a glob
    value: str
    path: str
    line: int
    text: str


def _normalize_key(key: str) -> str:
    key = key.strip().lstrip("-")
    if "/" in key and "." not in key.split("/")[0]:
        key = key.replace("/", ".")
    return key


def sysctl_files(ctx: ProbeContext) -> list[str]:
    def load() -> list[str]:
        by_name: dict[str, str] = {}
        for directory in SYSCTL_DIRS:
            for name in ctx.host.listdir(directory):
                if name.endswith(".conf"):
                    by_name.setdefault(name, f"{directory}/{name}")
        files = [by_name[name] for name in sorted(by_name)]
        if ctx.host.exists(SYSCTL_CONF):
            files.append(SYSCTL_CONF)
        return files

    return ctx.cached(("sysctl", "files"), load)


def configured_settings(ctx: ProbeContext) -> list[SysctlSetting]:
    def load() -> list[SysctlSetting]:
        out = []
        for path in sysctl_files(ctx):
            lines = read_lines(ctx, path)
            if lines is None:  # masked with a link to /dev/null that does not exist in this root
                continue
            for number, raw in enumerate(lines, 1):
                text = raw.strip()
                if not text or text[0] in "#;" or "=" not in text:
                    continue
                key, _, value = text.partition("=")
                out.append(SysctlSetting(_normalize_key(key), " ".join(value.split()), path, number, text))
        return out

    return ctx.cached(("sysctl", "settings"), load)


def configured_value(ctx: ProbeContext, key: str) -> tuple[Optional[str], list]:
    hits = [s for s in configured_settings(ctx) if s.key == key or (("*" in s.key or "?" in s.key)
                                                                      and fnmatchcase(key, s.key))]
    if not hits:
        files = sysctl_files(ctx)
        return None, [evidence(", ".join(files) if files else SYSCTL_CONF,
                               f"{key} not set in " + (f"{len(files)} sysctl configuration file(s)" if files
                                                       else "any sysctl configuration (none found)"))]
    last = hits[-1]
    ev = [evidence(last.path, last.text, last.line)]
    if len(hits) > 1:
        ev.append(evidence(hits[0].path, "overridden earlier: " + "; ".join(
            f"{h.path}:{h.line}: {h.text}" for h in hits[:-1]), hits[0].line))
    return last.value, ev


def runtime_value(ctx: ProbeContext, key: str) -> tuple[Optional[str], str]:
    """(value, /proc/sys path) from the running kernel.

    Read with a small limit: sysctl files refuse a multi-megabyte read() with ENOMEM.
    """
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        return " ".join(ctx.host.read_text(path, limit=1 << 16).split()), path
    except FileNotFoundError:
        return None, path


class SysctlParams(Strict):
    key: str
    source: Literal["auto", "runtime", "configured"] = "auto"
    # The kernel's built-in value, which applies when no sysctl file sets the key (configured source only):
    # an offline root that leaves kernel.randomize_va_space alone still boots with ASLR 2.
    default: Optional[str] = None

    @field_validator("key")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*[A-Za-z0-9_]", v) or ".." in v:
            raise ValueError(f"{v!r} is not a dotted kernel parameter name (e.g. net.ipv4.ip_forward)")
        return v


@probe("sysctl.value", SysctlParams)
def sysctl_value(ctx: ProbeContext, params: SysctlParams) -> Observation:
    """The parameter's value as a string (whitespace normalised), None if unset."""
    source = params.source
    if source == "auto":
        source = "runtime" if ctx.host.live else "configured"
    if source == "runtime":
        if not ctx.host.live:
            raise LiveOnly("runtime kernel parameters exist only on a live host",
                                "运行时内核参数只在运行中的主机上存在")
        value, path = runtime_value(ctx, params.key)
        return Observation(observed=value, evidence=[evidence(path, value if value is not None
                                                              else "no such parameter in the running kernel")])
    value, ev = configured_value(ctx, params.key)
    if value is None and params.default is not None:
        return Observation(observed=params.default, evidence=ev,
                           note=f"{params.key} is not configured; the kernel default {params.default} applies",
                           note_zh=f"未配置 {params.key}，采用内核默认值 {params.default}")
    return Observation(observed=value, evidence=ev,
                       note=None if value is not None else f"{params.key} is not configured",
                       note_zh=None if value is not None else f"未配置 {params.key}")
