"""Scoring service findings against a zone baseline at one level of the standard: check results, item verdicts per
host (each host is a 测评对象) and rolled up, a summary.

What each check judges is code here; what a check *is* (its item, severity, high-risk case, title, remediation)
is data (sentinel/network/checks.py), and which clause, letter, text and weight an item has is the catalogue's
for the level scored (sentinel/catalogue.py). A check whose item the level does not have (level 2: no 数据保密性,
no 两种或两种以上组合的鉴别技术) is still evaluated, since what a probe saw is evidence, but its results are not
scored onto any clause: they are listed in `NetworkScore.not_scored`, each with the reason, and take part in no
verdict, score, high-risk count or exit code.

Everything here is a pure function of its inputs (no I/O, no clock except the coverage note's timestamp).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any, Optional

from pydantic import BaseModel, Field

from sentinel import catalogue
from sentinel.checks.network.findings import ServiceFinding
from sentinel.checks.network.services import MANAGEMENT, PLAINTEXT_MANAGEMENT, UNAUTH_SERVICES
from sentinel.expect import Reason
from sentinel.model import CheckResult, Evidence, ItemResult, Severity, Status, Summary, Text, Verdict, utcnow
from sentinel.scoring import counted, item_verdict, summarize, system_items

from .checks import NetCheck, shipped_checks
from .zones import ZoneBaseline

DEFAULT_LEVEL = 3  # a scan without a zone baseline or a level scores as `sentinel check` does by default
_LEVEL_ZH = {2: "二", 3: "三", 4: "四"}


class NotScored(BaseModel):
    """A check result the level does not score: its item is not one of the level's requirements."""

    check_id: str
    key: str  # the catalogue item the check counts for at the levels that have it
    levels: list[int]  # the levels that have that item
    target: str  # the finding (host:port/proto) or isolation rule the result is about
    status: Status  # what the check found, kept as evidence
    reason: Optional[str] = None  # the result's own reason (English), as it would have read
    reason_zh: Optional[str] = None
    why: Text  # why it is not scored


class NetworkScore(BaseModel):
    level: int
    findings: list[ServiceFinding]  # copies with results, forbidden, zone and high_risk filled in
    results: list[CheckResult]  # every scored result, findings' and isolation results, in a stable order
    items: list[ItemResult]  # the system roll-up of `objects` (sentinel.scoring.system_items)
    objects: dict[str, list[ItemResult]] = Field(default_factory=dict)  # per 测评对象 (host address)
    summary: Summary
    not_scored: list[NotScored] = Field(default_factory=list)


class Reachability(BaseModel):
    """What the scan covered, needed to judge the isolation matrix: which hosts were targeted, which ports."""

    scanner_zone: Optional[str] = None
    hosts: list[str] = Field(default_factory=list)
    tcp_ports: list[int] = Field(default_factory=list)
    udp_ports: list[int] = Field(default_factory=list)


class Judge:
    """The checks as one zone baseline and one level of the standard see them: makes each result with the
    catalogue's clause and letter for its item at that level, and keeps aside what the level does not score."""

    def __init__(self, baseline: Optional[ZoneBaseline], level: int,
                 checks: Optional[dict[str, NetCheck]] = None, cat: Optional[catalogue.Catalogue] = None):
        if level not in catalogue.LEVELS:
            raise ValueError(f"level {level}: the catalogue of {catalogue.STANDARD} has levels "
                             f"{', '.join(map(str, catalogue.LEVELS))}")
        self.baseline = baseline
        self.level = level
        self.checks = checks if checks is not None else shipped_checks()
        self.catalogue = cat or catalogue.load()
        self.not_scored: list[NotScored] = []

    def check(self, check_id: str) -> NetCheck:
        return self.checks[check_id]

    def result(self, check_id: str, status: Status, finding_label: str, observed: Any, expected: str,
               reason: Optional[Reason], evidence: list[Evidence], high_risk: Optional[str] = "default",
               severity: Optional[Severity] = None, key: Optional[str] = None) -> CheckResult:
        """A result of `check_id` on its item (or `key`), numbered as the level numbers it (clause "" when the
        level lacks the item: `keep_scored` takes such results out)."""
        check = self.checks[check_id]
        ov = self.baseline.override.get(check.id, {}) if self.baseline else {}
        case = check.high_risk if high_risk == "default" else high_risk
        item_key = key or check.item
        clause, letter = "", ""
        if self.catalogue.has(item_key, self.level):
            found = self.catalogue.item(item_key, self.level)
            clause, letter = found.clause, found.letter
        return CheckResult(
            check_id=check.id, clause=clause, item=letter, key=item_key, title=check.title,
            status=status, severity=ov.get("severity", severity or check.severity),
            high_risk=ov["high_risk"] if "high_risk" in ov else case,
            observed=observed, expected=expected,
            reason=f"{finding_label}: {reason.en}" if reason else None,
            reason_zh=f"{finding_label}：{reason.zh}" if reason else None, evidence=evidence,
            remediation=check.remediation, waiver=self.baseline.waive.get(check.id) if self.baseline else None)

    def keep_scored(self, target: str, results: list[CheckResult]) -> list[CheckResult]:
        """The results the level scores; the others are recorded in `not_scored` with the reason."""
        kept = []
        for r in results:
            if r.clause:
                kept.append(r)
                continue
            key = r.key or ""
            levels = list(self.catalogue.levels_of(key))
            named = self.catalogue.item(key, levels[0]) if levels else None
            control = named.control_name if named else Text(zh=key, en=key)
            shown = ", ".join(map(str, levels))
            self.not_scored.append(NotScored(
                check_id=r.check_id, key=key, levels=levels, target=target, status=r.status, reason=r.reason,
                reason_zh=r.reason_zh,
                why=Text(zh=f"第{_LEVEL_ZH[self.level]}级无此测评项：{control.zh}（{key}）仅见于第 {shown} 级，"
                            f"本结果不计入任何测评项、得分和结论",
                         en=f"level {self.level} has no such requirement: {control.en} ({key}) is in level(s) "
                            f"{shown}; this result counts for no item, score or conclusion")))
        return kept

    def item_result(self, key: str, results: list[CheckResult]) -> ItemResult:
        found = self.catalogue.item(key, self.level)
        return ItemResult(clause=found.clause, item=found.letter, key=key, unit=found.unit, control=found.control_name,
                          text=found.text, weight=found.weight, verdict=object_verdict(results),
                          checks=sorted({r.check_id for r in results}))


def _probe_said(error: str) -> Reason:
    """A probe's own message (English, from the probe or the server): framed in Chinese for zh output."""
    return Reason(error, f"探测未得出结果：{error}")


def _is_plaintext_login(f: ServiceFinding) -> bool:
    if f.tls is not None or f.tunnel == "ssl" or f.http is None:
        return False
    if f.http.location and f.http.location.lower().startswith("https://"):
        return False
    return f.http.login_form or f.http.basic_auth


def evaluate_finding(f: ServiceFinding, judge: Judge, zone: Optional[str],
                     scanner_zone: Optional[str]) -> ServiceFinding:
    """A copy of `f` with its check results, forbidden flag, zone and high-risk cases (results whose item the
    level lacks go to `judge.not_scored` instead)."""
    if not f.determined:
        return _evaluate_undetermined(f, judge, zone)
    label = f.label
    results: list[CheckResult] = []
    ev = f.evidence
    svc = f.service or "unknown"
    plaintext_login = _is_plaintext_login(f)

    login_page = f.http is not None and (f.http.login_form or f.http.basic_auth)
    # 8.1.4.1 c: remote management (and any login page) must not expose credentials.
    if svc in MANAGEMENT or login_page:
        plain = (svc in PLAINTEXT_MANAGEMENT and f.tls is None) or plaintext_login
        why = (Reason("HTTP login page without TLS", "登录页面未使用 TLS（以 HTTP 明文传输）") if plaintext_login
               else Reason(f"{svc} carries credentials in plaintext", f"{svc} 以明文传输鉴别信息"))
        results.append(judge.result("net-plaintext-mgmt", Status.FAIL if plain else Status.PASS, label,
                               {"service": svc, "tls": f.tls is not None}, "encrypted management protocol",
                               why if plain else None, ev))
    # 8.1.4.8 a: services that carry credentials/data in the clear.
    mysql_plain = svc in ("mysql", "postgresql") and f.starttls is False  # no in-band TLS offered
    if svc in PLAINTEXT_MANAGEMENT or plaintext_login or mysql_plain or f.tls is not None:
        plain = f.tls is None and (svc in PLAINTEXT_MANAGEMENT or plaintext_login or mysql_plain)
        results.append(judge.result("net-plaintext-transport", Status.FAIL if plain else Status.PASS, label,
                               {"service": svc, "tls": f.tls is not None}, "TLS or an encrypted protocol",
                               Reason(f"{svc} without TLS", f"{svc} 未使用 TLS 加密") if plain else None, ev))
    # 8.1.4.4 b: services allowed in the zone; high-risk ports are a high-risk finding (6.4.3.1).
    forbidden, high = False, False
    if judge.baseline is not None:
        forbidden, port_why, high = judge.baseline.port_verdict(zone, f.proto, f.port, svc)
        results.append(judge.result("net-forbidden-port", Status.FAIL if forbidden else Status.PASS, label,
                               {"zone": zone, "service": svc, "port": f"{f.proto}/{f.port}"},
                               f"allowed in zone {zone or '(none)'}", port_why, ev,
                               high_risk=judge.check("net-forbidden-port").high_risk if high else None))
    # Unauthenticated data services / default SNMP community.
    if svc in UNAUTH_SERVICES:
        check = "net-default-community" if svc == "snmp" else "net-unauth-access"
        if f.exposure is None:
            said = next((_probe_said(e) for e in f.errors if e.startswith(svc)),
                        Reason(f"no {svc} probe result", f"无 {svc} 探测结果"))
            results.append(judge.result(check, Status.ERROR, label, None, "authentication required", said, ev))
        else:
            results.append(judge.result(check, Status.FAIL if f.exposure.unauthenticated else Status.PASS, label,
                                   f.exposure.detail, "authentication required",
                                   Reason(f.exposure.detail, f"无需认证即可访问：{f.exposure.detail}")
                                   if f.exposure.unauthenticated else None, ev))
    # Opt-in credential probes (credentials.py): only present when the scan was run with them enabled.
    for a in f.credentials:
        tried = {"ftp": "net-anonymous-ftp", "mysql": "net-empty-password",
                 "snmp": "net-default-community", "http-basic": "net-default-console-password"}.get(a.protocol)
        if tried:
            results.append(judge.result(tried, Status.FAIL if a.accepted else Status.PASS, label,
                                   {"user": a.user, "accepted": a.accepted}, "the documented default is refused",
                                   Reason(a.detail, f"默认凭据被接受：{a.detail}") if a.accepted else None, ev))
    # A Basic-auth attempt that got no clear answer (credentials.http_basic) is undetermined, never a pass.
    undecided = [e for e in f.errors if e.startswith("credentials http-basic")]
    if undecided and not any(a.accepted for a in f.credentials if a.protocol == "http-basic"):
        results.append(judge.result("net-default-console-password", Status.ERROR, label, None,
                                    "the documented default is refused", _probe_said("; ".join(undecided)), ev))
    # TLS quality.
    if f.tls is not None:
        t = f.tls
        old = [p for p in t.protocols if p in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")]
        untested = {k: v for k, v in t.untested.items() if k in ("SSLv3", "TLSv1.0", "TLSv1.1")}
        status = Status.FAIL if old else (Status.ERROR if untested else Status.PASS)
        not_tested = "; ".join(f"{k}: {v}" for k, v in untested.items())
        tls_why = (Reason(f"offers {', '.join(old)}", f"支持 {', '.join(old)}") if old else
                   (Reason("could not test " + not_tested, "无法测试 " + not_tested) if untested else None))
        results.append(judge.result("net-tls-protocol", status, label, t.protocols, "TLSv1.2 or later only",
                               tls_why, ev))
        # NULL (no encryption) and anonymous (no server authentication: anyone in the path reads the traffic)
        # suites leave nothing of the channel's protection: high, where RC4/3DES/EXPORT stay medium.
        broken = [c for c in t.weak_ciphers if "_NULL_" in c or "_anon_" in c]
        results.append(judge.result("net-tls-weak-cipher", Status.FAIL if t.weak_ciphers else Status.PASS, label,
                               t.weak_ciphers, "no weak cipher suite",
                               Reason(f"accepts {', '.join(t.weak_ciphers)}",
                                      f"接受弱密码套件 {', '.join(t.weak_ciphers)}") if t.weak_ciphers else None,
                               ev,
                               severity=Severity.HIGH if broken else None))
        problems: list[Reason] = []
        if t.expired:
            problems.append(Reason(f"certificate expired {t.not_after:%Y-%m-%d}",
                                   f"证书已于 {t.not_after:%Y-%m-%d} 过期")
                            if t.not_after else Reason("certificate expired", "证书已过期"))
        if t.self_signed:
            problems.append(Reason("self-signed certificate", "自签名证书"))
        elif t.chain_valid is False:
            problems.append(Reason(f"chain not trusted: {t.chain_error}", f"证书链不受信任：{t.chain_error}"))
        cert_status = Status.FAIL if problems else (Status.ERROR if t.not_after is None else Status.PASS)
        results.append(judge.result("net-tls-certificate", cert_status, label,
                               {"subject": t.subject, "issuer": t.issuer, "not_after": str(t.not_after),
                                "self_signed": t.self_signed, "chain_valid": t.chain_valid},
                               "unexpired, CA-issued certificate",
                               Reason("; ".join(r.en for r in problems), "；".join(r.zh for r in problems)) if problems
                               else (Reason("no certificate could be read", "无法读取证书")
                                     if cert_status == Status.ERROR else None), ev))
    # SSH.
    if f.ssh is not None:
        s = f.ssh
        v1 = s.protocol not in ("2.0",)
        results.append(judge.result("net-ssh-protocol", Status.FAIL if v1 else Status.PASS, label, s.protocol,
                               "2.0", Reason(f"SSH protocol {s.protocol} allows version 1",
                                             f"SSH 协议版本为 {s.protocol}，允许使用 SSH-1") if v1 else None,
                               ev))
        weak = s.weak_kex + s.weak_host_key + s.weak_ciphers
        results.append(judge.result("net-ssh-weak-crypto", Status.FAIL if weak else Status.PASS, label, weak,
                               "no weak algorithm", Reason(f"offers {', '.join(weak)}", f"支持弱算法 {', '.join(weak)}")
                               if weak else None, ev))
        results.append(judge.result("net-ssh-weak-mac", Status.FAIL if s.weak_macs else Status.PASS, label,
                               s.weak_macs, "no weak MAC",
                               Reason(f"offers {', '.join(s.weak_macs)}", f"支持弱 MAC 算法 {', '.join(s.weak_macs)}")
                               if s.weak_macs else None, ev))
        # Authentication methods, from the server's answer to a `none` request (ssh.auth_methods).
        if s.auth_methods is None:
            said = next((_probe_said(e) for e in f.errors if e.startswith("ssh-auth")),
                        Reason("auth methods could not be read", "无法读取 SSH 认证方式"))
            results.append(judge.result("net-ssh-password-auth", Status.ERROR, label, None,
                                   "no password-only login", said, ev))
        elif s.auth_methods == ["none"]:
            results.append(judge.result("net-ssh-no-auth", Status.FAIL, label, s.auth_methods,
                                   "authentication required",
                                   Reason("the `none` request logged in without any credential",
                                          "以 `none` 方式请求即可登录，无需任何凭据"), ev))
        else:
            results.append(judge.result("net-ssh-no-auth", Status.PASS, label, s.auth_methods,
                                   "authentication required", None, ev))
            single = [m for m in s.auth_methods if m in ("password", "keyboard-interactive")]
            results.append(judge.result("net-ssh-password-auth", Status.FAIL if single else Status.PASS, label,
                                   s.auth_methods, "no password-only login",
                                   Reason(f"offers {', '.join(single)} as a method of its own "
                                          "(a password alone logs in)",
                                          f"单独提供 {', '.join(single)} 认证方式（仅凭口令即可登录）")
                                   if single else None, ev))
    elif svc == "ssh":
        said = next((_probe_said(e) for e in f.errors if e.startswith("ssh")),
                    Reason("SSH probe gave no result", "SSH 探测未得出结果"))
        results.append(judge.result("net-ssh-weak-crypto", Status.ERROR, label, None, "no weak algorithm",
                               said, ev))
    # 8.1.4.4 c: management reachable only from the zones the baseline allows.
    # A web login page is often the business application's own: only management protocols are judged here.
    if judge.baseline is not None and scanner_zone and zone and svc in MANAGEMENT:
        allowed_from = judge.baseline.management_from(zone)
        if allowed_from is not None:
            bad = scanner_zone not in allowed_from
            results.append(judge.result("net-mgmt-source", Status.FAIL if bad else Status.PASS, label,
                                   {"from_zone": scanner_zone, "to_zone": zone, "service": svc},
                                   f"reachable only from {', '.join(allowed_from) or 'nowhere'}",
                                   Reason(f"{svc} reachable from zone {scanner_zone}",
                                          f"{svc} 可从区域 {scanner_zone} 访问") if bad else None, ev))
    results = judge.keep_scored(label, results)
    high_risk = sorted({r.high_risk for r in results if r.status == Status.FAIL and r.high_risk and not r.waiver})
    plaintext = plaintext_login or (svc in PLAINTEXT_MANAGEMENT and f.tls is None)
    return f.model_copy(update={"results": results, "forbidden": forbidden, "zone": zone, "high_risk": high_risk,
                                "plaintext_management": plaintext})


def _evaluate_undetermined(f: ServiceFinding, judge: Judge, zone: Optional[str]
                           ) -> ServiceFinding:
    """An open|filtered port: whatever would be judged on it is `error` (undetermined), never pass or fail.

    Only a service the zone allows is a pass, since it is allowed whether it listens or not.
    """
    label, svc, ev = f.label, f.service or "unknown", f.evidence
    why = Reason(f"{f.proto}/{f.port} is {f.state}: neither nmap nor sentinel's {svc} probe got an answer, so "
                 f"whether {svc} listens cannot be told (a firewall dropping {f.proto.upper()} looks the same)",
                 f"{f.proto}/{f.port} 状态为 {f.state}：nmap 与 sentinel 的 {svc} 探测均未收到应答，无法判断 {svc} "
                 f"是否在监听（防火墙丢弃 {f.proto.upper()} 报文时表现相同）")
    results: list[CheckResult] = []
    if judge.baseline is not None:
        forbidden, _, _ = judge.baseline.judge_port(zone, f.proto, f.port, svc)
        results.append(judge.result("net-forbidden-port", Status.ERROR if forbidden else Status.PASS, label,
                               {"zone": zone, "service": svc, "port": f"{f.proto}/{f.port}", "state": f.state},
                               f"allowed in zone {zone or '(none)'}", why if forbidden else None, ev))
    if svc in UNAUTH_SERVICES:
        check = "net-default-community" if svc == "snmp" else "net-unauth-access"
        probe_error = next((e for e in f.errors if e.startswith(svc)), None)
        results.append(judge.result(check, Status.ERROR, label, {"state": f.state}, "authentication required",
                               Reason(f"{why.en}; {probe_error}", f"{why.zh}；{probe_error}") if probe_error else why,
                               ev))
    return f.model_copy(update={"results": judge.keep_scored(label, results), "forbidden": False, "zone": zone,
                                "high_risk": [],
                                "plaintext_management": False})


def isolation_results(findings: list[ServiceFinding], judge: Judge, zone_of: Callable[[str], Optional[str]],
                      reach: Reachability
                      ) -> list[tuple[str, CheckResult]]:
    """(host, result): one result per isolation rule from the scanner's zone, per targeted host in its zone."""
    out: list[tuple[str, CheckResult]] = []
    if not reach.scanner_zone:
        return out
    check = "net-isolation"
    open_by_host: dict[str, list[ServiceFinding]] = {}
    for f in findings:
        open_by_host.setdefault(f.host, []).append(f)
    if judge.baseline is None:
        return out
    for rule in judge.baseline.isolation:
        if rule.from_ != reach.scanner_zone:
            continue
        for host in sorted(reach.hosts, key=_host_sort):
            if zone_of(host) != rule.to:
                continue
            matching = [f for f in open_by_host.get(host, []) if rule.matches(f.proto, f.port)]
            hits = [f for f in matching if f.determined]
            unsure = [f for f in matching if not f.determined]  # open|filtered: no answer seen either way
            uncovered = rule.uncovered(reach.tcp_ports, reach.udp_ports)
            label = f"{host} ({rule.from_} -> {rule.to})"
            reason: Optional[Reason]
            if hits:
                ports = ", ".join(f"{f.proto}/{f.port}" for f in hits)
                status, reason = Status.FAIL, Reason("reachable: " + ports, "可达：" + ports)
            elif unsure:
                ports = ", ".join(f"{f.proto}/{f.port} {f.state}" for f in unsure)
                status, reason = Status.ERROR, Reason(
                    f"undetermined: {ports} (no answer: filtered, or open and silent)",
                    f"无法判定：{ports}（无应答：被过滤，或端口开放但不作应答）")
            elif uncovered:
                status, reason = Status.ERROR, Reason(f"the scan did not cover {uncovered}", f"扫描未覆盖 {uncovered}")
            else:
                status, reason = Status.PASS, None
            ev = [e for f in hits for e in f.evidence[:1]]
            result = judge.result(check, status, label, [f"{f.proto}/{f.port}" for f in hits],
                                  f"unreachable: {rule.describe_ports()}", reason, ev, key=rule.ref)
            out.extend((host, r) for r in judge.keep_scored(label, [result]))
    return out


def _host_sort(host: str) -> tuple[int, int, str]:
    try:
        addr = ipaddress.ip_address(host)
        return (addr.version, int(addr), "")
    except ValueError:
        return (99, 0, host)


def object_verdict(results: list[CheckResult]) -> Verdict:
    """One 测评对象's verdict on one item: a failing high-risk case (高风险判定指引) makes it 不符合 whatever else
    passes on that object (an unauthenticated Redis is not half made up for by a closed telnet port); otherwise
    the usual pass/fail mix (sentinel.scoring.item_verdict)."""
    if any(r.status == Status.FAIL and r.high_risk and counted(r) for r in results):
        return Verdict.NONCONFORM
    return item_verdict(results, True)


def level_of(zone_baseline: Optional[ZoneBaseline], level: Optional[int] = None) -> int:
    """The level a scan scores at: the one asked for (the system's), else the zone baseline's."""
    if level is not None:
        return level
    return zone_baseline.level if zone_baseline is not None else DEFAULT_LEVEL


def score_network(findings: Iterable[ServiceFinding], zone_baseline: Optional[ZoneBaseline],
                  zone: Optional[str] = None, reach: Optional[Reachability] = None,
                  coverage: Optional[str] = None, level: Optional[int] = None) -> NetworkScore:
    """Per-finding check results, isolation results, item verdicts per host and rolled up, and a summary.

    `zone`: the zone of every target (else each host's zone comes from the baseline's zone networks).
    `reach`: what was scanned and from where, for the management-source and isolation checks.
    `coverage`: what the scan covered, in words; added to the evidence of every result.
    `level`: the level to score at (the system's); None: the zone baseline's (`level_of`).

    Each host is its own 测评对象: its items are judged over its own results (`object_verdict`), then the
    hosts' verdicts are rolled up per item as a system's are (`sentinel.scoring.system_items`): one host with a
    critical unauthenticated service reads 不符合 on that host, whatever the other hosts do.
    """
    reach = reach or Reachability()
    judge = Judge(zone_baseline, level_of(zone_baseline, level))

    def zone_of(host: str) -> Optional[str]:
        return zone or (zone_baseline.zone_for(host) if zone_baseline else None)

    scored = [evaluate_finding(f, judge, zone_of(f.host), reach.scanner_zone)
              for f in sorted(findings, key=lambda f: (_host_sort(f.host), f.proto, f.port))]
    per_host: dict[str, list[CheckResult]] = {}
    for f in scored:
        per_host.setdefault(f.host, []).extend(f.results)
    for host, r in isolation_results(scored, judge, zone_of, reach):
        per_host.setdefault(host, []).append(r)
    if coverage:
        note = Evidence(source="scan coverage", excerpt=coverage, at=utcnow())
        for rs in per_host.values():
            for r in rs:
                r.evidence = [*r.evidence, note]
    results = [r for host in sorted(per_host, key=_host_sort) for r in per_host[host]]
    objects: dict[str, list[ItemResult]] = {}
    for host in sorted(per_host, key=_host_sort):
        by_key: dict[str, list[CheckResult]] = {}
        for r in per_host[host]:
            by_key.setdefault(r.key or "", []).append(r)
        # only the items something the scan saw bears on: the rest stay with the host checks / assessor
        mine = [judge.item_result(key, rs) for key, rs in by_key.items()]
        objects[host] = sorted(mine, key=lambda i: (tuple(int(p) for p in i.clause.split(".")), i.item))
    items = system_items(objects.values())
    return NetworkScore(level=judge.level, findings=scored, results=results, items=items, objects=objects,
                        summary=summarize(items, results), not_scored=judge.not_scored)
