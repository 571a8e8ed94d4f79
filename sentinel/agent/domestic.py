"""The 国产化 facts of a host (sentinel/domestic.py recognises them), read-only through the HostView.

OS from /etc/os-release; processor from /proc/cpuinfo (vendor_id on x86, CPU implementer on arm64, model name /
Model / cpu model, LoongArch's CPU Family) and DMI (/sys/class/dmi/id); databases and middleware from the
package database, the rules' install paths and, on a live host, processes and their command lines; 国密 from the
system TLS library's own answer (`openssl list`, `openssl ciphers`, live only) and from the servers' TLS
configuration lines that name SM suites or Tongsuo's NTLS. Sent as the inventory's `domestic` key.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Optional

from ..domestic import Component, DomesticIn, Facts, GmState, GmTls, Rules, default_rules, recognise, sm_suites
from ..hostview import HostView, NotApplicable, ProbeError

log = logging.getLogger(__name__)

DMI_DIR = "/sys/class/dmi/id"
DMI_FIELDS = ("sys_vendor", "product_name", "board_vendor", "board_name", "chassis_vendor", "bios_vendor")
_CPU_KEYS = {"vendor_id": "cpu_vendor", "cpu implementer": "cpu_implementer", "model name": "cpu_model",
             "model": "cpu_model", "cpu model": "cpu_model", "cpu family": "cpu_family"}
# TLS configurations where a server names its suites (the packages' default places)
TLS_CONFIGS = ("/etc/nginx/nginx.conf", "/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*",
               "/usr/local/nginx/conf/nginx.conf", "/etc/httpd/conf/httpd.conf", "/etc/httpd/conf.d/*.conf",
               "/etc/apache2/sites-enabled/*", "/etc/apache2/mods-enabled/ssl.conf", "/etc/ssl/openssl.cnf",
               "/etc/pki/tls/openssl.cnf")
_TLS_DIRECTIVE = re.compile(r"^\s*(ssl_ciphers|ssl_conf_command|SSLCipherSuite|CipherString|Ciphersuites|"
                            r"enable_ntls|ssl_ntls)\b(.*)$", re.IGNORECASE)
# algorithm names as `openssl list` prints them (OIDs of GM/T 0006: SM2 .301, SM3 .401, SM4 .104)
_ALGORITHMS = {"SM2": re.compile(r"\bSM2\b", re.I), "SM3": re.compile(r"\bSM3\b", re.I),
               "SM4": re.compile(r"\bSM4(-[A-Z0-9]+)?\b", re.I)}


def cpu_facts(text: str) -> dict[str, str]:
    """The first value of each processor field the rules read (keys compared without case: LoongArch writes
    `Model Name`, x86 `model name`; on x86 `model` is a number and is not the model)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        field = _CPU_KEYS.get(key)
        if not sep or not value or field is None or field in out:
            continue
        if key == "model" and value.isdigit():
            continue
        out[field] = value[:200]
    return out


def dmi_facts(host: HostView) -> dict[str, str]:
    out = {}
    for name in DMI_FIELDS:
        try:
            value = (host.read_optional(f"{DMI_DIR}/{name}") or "").strip()
        except (OSError, ProbeError):  # unreadable (product_serial-like modes): not a fact
            continue
        if value and value.lower() not in ("to be filled by o.e.m.", "default string", "not specified"):
            out[name] = value[:200]
    return out


def _package_names(host: HostView) -> list[str]:
    from ..checks.packages import package_db
    from ..osinfo import host_info
    from ..probe import ProbeContext

    ctx = ProbeContext(host=host, family=host_info(host).family, os_release=host.os_release())
    try:
        return sorted({p.name for p in package_db(ctx).packages})
    except ProbeError as exc:
        log.info("domestic: no package database: %s", exc)
        return []


def _existing(host: HostView, patterns: list[str]) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        try:
            found.extend(host.glob(pattern)[:5])
        except (OSError, ProbeError):
            continue
    return sorted(set(found))


def facts(host: HostView, rules: Rules) -> Facts:
    rel = host.os_release()
    cpu = cpu_facts(host.read_optional("/proc/cpuinfo") or "")
    f = Facts(os_id=rel.get("ID"), os_names=[n for n in (rel.get("NAME"), rel.get("PRETTY_NAME")) if n],
              cpu_vendor=cpu.get("cpu_vendor"), cpu_implementer=cpu.get("cpu_implementer"),
              cpu_model=cpu.get("cpu_model"), cpu_family=cpu.get("cpu_family"),
              dmi=dmi_facts(host), packages=_package_names(host), paths=_existing(host, rules.paths()))
    if host.live:
        try:
            procs = host.processes()
        except (NotApplicable, ProbeError, OSError):
            procs = []
        f.processes = sorted({p.name for p in procs} | {os.path.basename(p.exe) for p in procs if p.exe})
        # command lines only where a rule asks (Java servers); capped, and never sent: only the match is
        f.cmdlines = [" ".join(p.cmdline)[:4000] for p in procs if p.cmdline and len(p.cmdline) > 1]
        try:
            socks = host.listening()
        except (NotApplicable, ProbeError, OSError):
            socks = []
        f.listening = sorted({f"{s.port}/{s.process or '?'}" for s in socks if s.proto.startswith("tcp")})
    return f


def configured_suites(host: HostView) -> list[str]:
    """`file:line: directive` of each TLS configuration line that names SM suites or turns NTLS on."""
    out = []
    for path in _existing(host, list(TLS_CONFIGS)):
        text = host.read_optional(path) or ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0]
            m = _TLS_DIRECTIVE.match(line)
            if not m:
                continue
            directive, rest = m.group(1).lower(), m.group(2)
            ntls_on = directive in ("enable_ntls", "ssl_ntls") and re.search(r"\bon\b", rest, re.I)
            if ntls_on or sm_suites(rest):
                out.append(f"{path}:{number}: {line.strip()[:160]}")
    return out[:20]


def _library(host: HostView, binary: str) -> tuple[Optional[str], list[str], list[str], Optional[str]]:
    """(version line, SM algorithms, SM suites, error) as the library's own command reports them."""
    version = host.run([binary, "version"], timeout=10)
    if not version.ok:
        return None, [], [], f"`{binary} version` failed: {(version.stderr or '').strip()[:200] or version.returncode}"
    listed = ""
    for what in ("-public-key-algorithms", "-digest-algorithms", "-cipher-algorithms"):
        r = host.run([binary, "list", what], timeout=10)
        if not r.ok:
            return version.stdout.strip()[:200], [], [], f"`{binary} list {what}` failed"
        listed += r.stdout
    ciphers = host.run([binary, "ciphers", "-v", "ALL"], timeout=10)
    algs = [name for name, rx in _ALGORITHMS.items() if rx.search(listed)]
    return version.stdout.strip()[:200], algs, sm_suites(ciphers.stdout if ciphers.ok else ""), None


def gm_tls(host: HostView, components: list[Component]) -> GmTls:
    configured = configured_suites(host)
    gm_library = [c.name_en for c in components if c.category == "crypto" and c.origin == "domestic"]
    if not host.live:
        if configured:
            return GmTls(state="configured", configured=configured)
        if gm_library:
            return GmTls(state="capable", library=", ".join(gm_library)[:200])
        return GmTls(state="unknown", reason="an offline root: the TLS library's algorithms are known only by "
                                             "running it on the host")
    library: Optional[str] = None
    algs: list[str] = []
    suites: list[str] = []
    error: Optional[str] = None
    for binary in ("tongsuo", "gmssl", "openssl"):  # a 国密 build first: it is the one that offers SM suites
        try:
            library, algs, suites, error = _library(host, binary)
        except (OSError, ProbeError) as exc:
            library, algs, suites, error = None, [], [], f"{binary}: {exc}"
        if library is not None and error is None:
            break
    if library is None or error is not None:
        return GmTls(state="configured" if configured else "unknown", configured=configured,
                     reason=(error or "no TLS library command found")[:500])
    state: GmState = "configured" if configured else ("capable" if len(algs) == 3 or gm_library else "none")
    return GmTls(state=state, library=library, algorithms=algs, tls_suites=suites, configured=configured)


def collect(host: HostView, rules: Optional[Rules] = None) -> DomesticIn:
    rules = rules or default_rules()
    components = recognise(facts(host, rules), rules)
    return DomesticIn(components=components, gm_tls=gm_tls(host, components), rules=rules.sources[:4])
