"""System identity and mandatory access control: `os.release`, `mac.status`."""
from __future__ import annotations

import re
from typing import Optional

from pydantic import field_validator

from sentinel.hostview import ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import conf_dir_files, meaningful, read_lines, unquote

OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")
SELINUX_CONFIG = "/etc/selinux/config"
KYSEC_DIR = "/etc/kysec"
_KYSEC_KEY = re.compile(r"^\s*(kysec_status|kysec|status|enable|enabled)\s*[=:]\s*\"?([\w-]+)", re.I)
_ON = {"on", "1", "true", "yes", "enable", "enabled", "normal", "softmode", "enforcing"}
_OFF = {"off", "0", "false", "no", "disable", "disabled"}


class OsReleaseParams(Strict):
    field: str

    @field_validator("field")
    @classmethod
    def _field(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} is not an os-release field name")
        return v.upper()


@probe("os.release", OsReleaseParams)
def os_release(ctx: ProbeContext, params: OsReleaseParams) -> Observation:
    """The os-release field's value, or None."""
    for path in OS_RELEASE_FILES:
        lines = read_lines(ctx, path)
        if lines is None:
            continue
        value, where = None, None
        for number, text in meaningful(lines, inline=False):
            key, eq, raw = text.partition("=")
            if eq and key.strip() == params.field:
                value, where = unquote(raw), (number, text)  # the last assignment wins, as in a shell
        if where is None:
            return Observation(observed=None, evidence=[evidence(path, f"{params.field} not set")])
        return Observation(observed=value, evidence=[evidence(path, where[1], where[0])])
    return Observation(observed=None, evidence=[evidence(" or ".join(OS_RELEASE_FILES), "no such file")],
                       note="the host has no os-release file")


class NoParams(Strict):
    pass


def kernel_cmdline(ctx: ProbeContext) -> tuple[list[str], list[Evidence]]:
    """Kernel command line words: /proc/cmdline live; offline, what the boot configuration would pass."""
    if ctx.host.live:
        text = ctx.host.read_optional("/proc/cmdline") or ""
        return text.split(), [evidence("/proc/cmdline", text.strip() or "(empty)")]
    words: list[str] = []
    ev: list[Evidence] = []
    for number, text in meaningful(read_lines(ctx, "/etc/default/grub") or [], inline=False):
        key, eq, value = text.partition("=")
        if eq and key.strip() in ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"):
            words += unquote(value).split()
            ev.append(evidence("/etc/default/grub", text, number))
    for number, text in meaningful(read_lines(ctx, "/etc/kernel/cmdline") or [], inline=False):
        words += text.split()
        ev.append(evidence("/etc/kernel/cmdline", text, number))
    for entry in conf_dir_files(ctx, "/boot/loader/entries"):
        for number, text in meaningful(read_lines(ctx, entry) or [], inline=False):
            if text.startswith("options "):
                words += text.split()[1:]
                ev.append(evidence(entry, text, number))
    return words, ev


def _param(words: list[str], name: str) -> Optional[str]:
    value = None
    for word in words:  # the kernel honours the last occurrence
        key, eq, val = word.partition("=")
        if key == name and eq:
            value = val
    return value


def _lsm_allows(words: list[str], lsm: str) -> bool:
    security = _param(words, "security")
    lsms = _param(words, "lsm")
    if lsms is not None:
        return lsm in lsms.split(",")
    return security is None or security == lsm


def _selinux(ctx: ProbeContext, words: list[str]) -> tuple[Optional[str], list[Evidence]]:
    ev: list[Evidence] = []
    mode: Optional[str]  # the running kernel's, else SELINUX= of the config file if set
    if ctx.host.live:
        runtime = ctx.host.read_optional("/sys/fs/selinux/enforce")
        if runtime is not None and runtime.strip() in ("0", "1"):
            mode = "enforcing" if runtime.strip() == "1" else "permissive"
            return mode, [evidence("/sys/fs/selinux/enforce", runtime.strip() + f" ({mode}, running kernel)")]
    mode = None
    for number, text in meaningful(read_lines(ctx, SELINUX_CONFIG) or []):
        key, eq, value = text.partition("=")
        if eq and key.strip() == "SELINUX":
            mode = unquote(value).lower()
            ev = [evidence(SELINUX_CONFIG, text, number)]
    if mode is None:
        return None, []
    if mode not in ("enforcing", "permissive", "disabled"):
        raise ProbeError(f"{SELINUX_CONFIG}: unknown SELINUX mode {mode!r}",
                         f"{SELINUX_CONFIG}：未知的 SELINUX 模式 {mode!r}")
    if _param(words, "selinux") == "0" or not _lsm_allows(words, "selinux"):
        return "disabled", ev + [evidence("kernel command line", "SELinux switched off on the kernel command line")]
    if _param(words, "enforcing") == "0" and mode == "enforcing":
        return "permissive", ev + [evidence("kernel command line", "enforcing=0: boots permissive")]
    return mode, ev


def _kysec(ctx: ProbeContext, words: list[str]) -> tuple[bool, list[Evidence]]:
    if ctx.host.live:
        lsm = ctx.host.read_optional("/sys/kernel/security/lsm")
        if lsm is not None:
            return "kysec" in lsm.split(","), [evidence("/sys/kernel/security/lsm", lsm.strip())]
    if not ctx.host.is_dir(KYSEC_DIR):
        return False, []
    ev = [evidence(KYSEC_DIR, "KYSEC configuration directory present")]
    if _param(words, "kysec") == "0" or (_param(words, "security") not in (None, "kysec")) or \
            (_param(words, "lsm") is not None and "kysec" not in (_param(words, "lsm") or "").split(",")):
        return False, ev + [evidence("kernel command line", "KYSEC not selected on the kernel command line")]
    if _param(words, "security") == "kysec" or "kysec" in (_param(words, "lsm") or "").split(","):
        return True, ev + [evidence("kernel command line", "security/lsm selects kysec")]
    for path in conf_dir_files(ctx, KYSEC_DIR):
        for number, text in meaningful(read_lines(ctx, path) or []):
            m = _KYSEC_KEY.match(text)
            if m and m.group(2).lower() in _ON | _OFF:
                return m.group(2).lower() in _ON, ev + [evidence(path, text, number)]
    return False, ev + [evidence(KYSEC_DIR, "no status setting and not selected on the kernel command line")]


def _apparmor(ctx: ProbeContext, words: list[str]) -> tuple[bool, list[Evidence]]:
    if ctx.host.live:
        flag = ctx.host.read_optional("/sys/module/apparmor/parameters/enabled")
        if flag is None:
            return False, []
        return flag.strip().upper().startswith("Y"), [evidence("/sys/module/apparmor/parameters/enabled", flag.strip())]
    from .packages import find_installed

    try:
        hits, db = find_installed(ctx, ["apparmor"])
        ev = [evidence(db.source, "apparmor package " + (hits[0].label if hits else "not installed"))]
        installed = bool(hits)
    except ProbeError:
        parsers = [p for p in ("/sbin/apparmor_parser", "/usr/sbin/apparmor_parser") if ctx.host.exists(p)]
        installed = bool(parsers)
        ev = [evidence(parsers[0] if parsers else "/usr/sbin/apparmor_parser",
                       "present (no package database)" if parsers else "absent (no package database)")]
    if not installed:
        return False, []
    if _param(words, "apparmor") == "0" or not _lsm_allows(words, "apparmor"):
        return False, ev + [evidence("kernel command line", "AppArmor switched off on the kernel command line")]
    return True, ev


@probe("mac.status", NoParams)
def mac_status(ctx: ProbeContext, params: NoParams) -> Observation:
    """selinux:enforcing|permissive|disabled, kysec:enabled, apparmor:enabled, or none."""
    words, cmd_ev = kernel_cmdline(ctx)
    selinux, se_ev = _selinux(ctx, words)
    if selinux in ("enforcing", "permissive"):
        return Observation(observed=f"selinux:{selinux}", evidence=se_ev)
    kysec, ky_ev = _kysec(ctx, words)
    if kysec:
        return Observation(observed="kysec:enabled", evidence=ky_ev + cmd_ev)
    apparmor, aa_ev = _apparmor(ctx, words)
    if apparmor:
        return Observation(observed="apparmor:enabled", evidence=aa_ev + cmd_ev)
    ev = se_ev + ky_ev + aa_ev + cmd_ev
    if selinux == "disabled":
        return Observation(observed="selinux:disabled", evidence=ev)
    if not ev:
        ev = [evidence(SELINUX_CONFIG, "no such file; no AppArmor or KYSEC found")]
    return Observation(observed="none", evidence=ev)
