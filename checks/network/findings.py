"""Service findings, their diff between scans, and their scoring against a zone baseline.

Everything here is a pure function of its inputs (no I/O, no clock except where a timestamp is passed in),
so the collector can store findings, diff them against the previous scan and fold the verdicts into a
system's score without running a scan.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Literal, Optional

from pydantic import BaseModel, Field

from sentinel.expect import Reason
from sentinel.model import (CheckResult, Evidence, ItemResult, Severity, Status, Summary, Text, utcnow)

from .services import MANAGEMENT, PLAINTEXT_MANAGEMENT, UNAUTH_SERVICES

if TYPE_CHECKING:  # zones imports findings' models only at runtime through the scorer's arguments
    from .zones import ZoneBaseline


class TLSInfo(BaseModel):
    protocols: list[str] = Field(default_factory=list)  # accepted: SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3
    untested: dict[str, str] = Field(default_factory=dict)  # version -> why it could not be tested
    cipher: Optional[str] = None  # negotiated with the best protocol
    weak_ciphers: list[str] = Field(default_factory=list)  # accepted weak suites (IANA names)
    subject: Optional[str] = None
    issuer: Optional[str] = None
    not_before: Optional[datetime] = None
    not_after: Optional[datetime] = None
    expired: Optional[bool] = None
    days_left: Optional[int] = None
    self_signed: Optional[bool] = None
    chain_valid: Optional[bool] = None  # verified against the scanner's trust store
    chain_error: Optional[str] = None
    key: Optional[str] = None  # e.g. "RSA-2048", "EC-secp256r1"
    signature_hash: Optional[str] = None


class SSHInfo(BaseModel):
    banner: str
    protocol: str  # "2.0", "1.99", "1.5"
    software: str
    kex: list[str] = Field(default_factory=list)
    host_key: list[str] = Field(default_factory=list)
    ciphers: list[str] = Field(default_factory=list)  # client->server list
    macs: list[str] = Field(default_factory=list)
    compression: list[str] = Field(default_factory=list)
    weak_kex: list[str] = Field(default_factory=list)
    weak_host_key: list[str] = Field(default_factory=list)
    weak_ciphers: list[str] = Field(default_factory=list)
    weak_macs: list[str] = Field(default_factory=list)
    # Methods the server offers after a `none` userauth request (["none"]: it let us in without any
    # credential); None when that exchange could not be made (the reason is in the finding's errors).
    auth_methods: Optional[list[str]] = None


class HTTPInfo(BaseModel):
    status: Optional[int] = None
    server: Optional[str] = None
    title: Optional[str] = None
    login_form: bool = False  # an <input type=password> on the page
    basic_auth: bool = False  # WWW-Authenticate: Basic
    location: Optional[str] = None  # redirect target (an http -> https redirect is not a plaintext login)


class Exposure(BaseModel):
    """Result of a read-only unauthenticated-access probe (Redis PING, Docker /version, SNMP public...)."""

    protocol: str
    unauthenticated: bool  # True: the service answered a data request without credentials
    detail: str  # what was asked and what came back, in words
    version: Optional[str] = None
    tls: Optional[bool] = None  # the service offers in-band TLS (PostgreSQL SSLRequest); None: not asked


class CredentialAttempt(BaseModel):
    """One opt-in credential probe (credentials.py): the account or community tried, and what came back."""

    protocol: str
    user: str  # the account (or SNMP community) tried; the password is always the documented one
    accepted: bool
    detail: str


OPEN = "open"
OPEN_FILTERED = "open|filtered"


class ServiceFinding(BaseModel):
    host: str
    port: int
    proto: Literal["tcp", "udp"] = "tcp"
    # "open": an answer was seen (nmap's, or one of our probes'). "open|filtered": UDP only, nothing answered
    # (a firewall dropping UDP looks exactly like this): undetermined, neither open nor closed, and every
    # check on it is `error`, never a pass and never a finding of an open service.
    state: str = OPEN
    service: Optional[str] = None  # canonical name (see services.py)
    nmap_service: Optional[str] = None
    product: Optional[str] = None
    version: Optional[str] = None
    extrainfo: Optional[str] = None
    tunnel: Optional[str] = None  # "ssl" when the service runs inside TLS
    starttls: Optional[bool] = None  # the protocol announces an in-band TLS upgrade (MySQL CLIENT_SSL)
    banner: Optional[str] = None
    tls: Optional[TLSInfo] = None
    ssh: Optional[SSHInfo] = None
    http: Optional[HTTPInfo] = None
    exposure: Optional[Exposure] = None
    credentials: list[CredentialAttempt] = Field(default_factory=list)  # only with credential_probes on
    plaintext_management: bool = False
    zone: Optional[str] = None
    forbidden: bool = False
    results: list[CheckResult] = Field(default_factory=list)
    high_risk: list[str] = Field(default_factory=list)  # 高风险判定指引 cases of failing results
    errors: list[str] = Field(default_factory=list)  # probes that could not decide, with the reason
    evidence: list[Evidence] = Field(default_factory=list)
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)

    @property
    def determined(self) -> bool:
        """True when something answered on the port (see `state`)."""
        return self.state == OPEN

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.host, self.proto, self.port)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}/{self.proto}"

    @property
    def version_string(self) -> Optional[str]:
        text = " ".join(p for p in (self.product, self.version) if p)
        return text or None


class ScanEvent(BaseModel):
    kind: Literal["new_open_port", "closed_port", "version_change", "new_forbidden_port"]
    host: str
    port: int
    proto: str
    service: Optional[str] = None
    before: Optional[str] = None
    after: Optional[str] = None
    severity: Severity
    at: datetime


# ---- diff ------------------------------------------------------------------------------------------


def diff_findings(previous: Iterable[ServiceFinding], current: Iterable[ServiceFinding],
                  at: Optional[datetime] = None, scanned_hosts: Optional[Iterable[str]] = None) -> list[ScanEvent]:
    """Events between two scans of the same scope, ordered by host, proto, port.

    `scanned_hosts`: hosts the current scan actually covered; a previous finding on a host outside it is not
    reported closed (a partial scan says nothing about the rest). None: every previous host counts.
    """
    at = at or utcnow()
    # An open|filtered port is undetermined: it neither opens a port (no new_open_port / new_forbidden_port)
    # nor closes one that was open before (no closed_port): it is left out on both sides.
    before = {f.key: f for f in previous if f.determined}
    undetermined = {f.key for f in current if not f.determined}
    after = {f.key: f for f in current if f.determined}
    covered = None if scanned_hosts is None else set(scanned_hosts)
    events: list[ScanEvent] = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[0], k[1], k[2])):
        old, new = before.get(key), after.get(key)
        host, proto, port = key
        if old is not None and new is None and key in undetermined:
            continue
        if old is None and new is not None:
            events.append(ScanEvent(kind="new_open_port", host=host, port=port, proto=proto, service=new.service,
                                    after=new.version_string or new.service, at=at,
                                    severity=Severity.HIGH if new.forbidden else Severity.MEDIUM))
        elif new is None and old is not None:
            if covered is not None and host not in covered:
                continue
            events.append(ScanEvent(kind="closed_port", host=host, port=port, proto=proto, service=old.service,
                                    before=old.version_string or old.service, severity=Severity.LOW, at=at))
            continue
        elif old is not None and new is not None:
            if (old.version_string or None) != (new.version_string or None) or old.service != new.service:
                events.append(ScanEvent(kind="version_change", host=host, port=port, proto=proto,
                                        service=new.service, before=old.version_string or old.service,
                                        after=new.version_string or new.service, severity=Severity.LOW, at=at))
        if new is not None and new.forbidden and (old is None or not old.forbidden):
            events.append(ScanEvent(kind="new_forbidden_port", host=host, port=port, proto=proto,
                                    service=new.service, after=new.version_string or new.service,
                                    severity=Severity.CRITICAL if new.high_risk else Severity.HIGH, at=at))
    return events


def carry_first_seen(previous: Iterable[ServiceFinding], current: list[ServiceFinding]) -> list[ServiceFinding]:
    """Copies of `current` whose first_seen is the previous scan's for findings seen before."""
    old = {f.key: f for f in previous}
    return [f.model_copy(update={"first_seen": old[f.key].first_seen}) if f.key in old else f for f in current]


# ---- check catalog -------------------------------------------------------------------------------


class NetCheck(BaseModel):
    id: str
    clause: str
    item: str
    title: Text
    severity: Severity
    high_risk: Optional[str] = None
    remediation: Text


def _t(zh: str, en: str) -> Text:
    return Text(zh=zh, en=en)


# Control points and items that network scans inform. Weights: 8.1.4 from real level-3 records; 8.1.2/8.1.3
# items have no recorded weight in our sources, so the key ones get 1.0 and the rest 0.7.
ITEMS: dict[tuple[str, str], tuple[Text, Text, float]] = {
    ("8.1.2.2", "a"): (_t("通信传输", "Communication transmission"),
                       _t("应采用校验技术或密码技术保证通信过程中数据的完整性",
                          "Ensure integrity of data in transit with checksums or cryptography"), 0.7),
    ("8.1.2.2", "b"): (_t("通信传输", "Communication transmission"),
                       _t("应采用密码技术保证通信过程中数据的保密性",
                          "Ensure confidentiality of data in transit with cryptography"), 1.0),
    ("8.1.3.1", "a"): (_t("边界防护", "Boundary protection"),
                       _t("应保证跨越边界的访问和数据流通过边界设备提供的受控接口进行通信",
                          "Cross-boundary access passes through controlled interfaces of boundary devices"), 1.0),
    ("8.1.3.2", "a"): (_t("访问控制", "Access control"),
                       _t("应在网络边界或区域之间根据访问控制策略设置访问控制规则，默认情况下除允许通信外受控接口拒绝所有通信",
                          "Access rules between zones; by default everything not allowed is denied"), 1.0),
    ("8.1.4.1", "a"): (_t("身份鉴别", "Identification and authentication"),
                       _t("应对登录的用户进行身份标识和鉴别，身份标识具有唯一性，身份鉴别信息具有复杂度要求并定期更换",
                          "Identify and authenticate users who log in"), 0.7),
    ("8.1.4.1", "c"): (_t("身份鉴别", "Identification and authentication"),
                       _t("当进行远程管理时，应采取必要措施防止鉴别信息在网络传输过程中被窃听",
                          "Protect authentication data from eavesdropping during remote management"), 1.0),
    ("8.1.4.1", "d"): (_t("身份鉴别", "Identification and authentication"),
                       _t("应采用口令、密码技术、生物技术等两种或两种以上组合的鉴别技术对用户进行身份鉴别，且其中一种鉴别技术至少应使用密码技术来实现",
                          "Authenticate users with two or more combined techniques, one of them cryptographic"), 1.0),
    ("8.1.4.2", "a"): (_t("访问控制", "Access control"),
                       _t("应对登录的用户分配账户和权限", "Assign accounts and permissions to users who log in"), 0.7),
    ("8.1.4.2", "b"): (_t("访问控制", "Access control"),
                       _t("应重命名或删除默认账户，修改默认账户的默认口令",
                          "Rename or remove default accounts and change their default passwords"), 0.7),
    ("8.1.4.4", "b"): (_t("入侵防范", "Intrusion prevention"),
                       _t("应关闭不需要的系统服务、默认共享和高危端口",
                          "Close unneeded services, default shares and high-risk ports"), 1.0),
    ("8.1.4.4", "c"): (_t("入侵防范", "Intrusion prevention"),
                       _t("应通过设定终端接入方式或网络地址范围对通过网络进行管理的管理终端进行限制",
                          "Restrict management terminals by access method or address range"), 0.7),
    ("8.1.4.8", "a"): (_t("数据保密性", "Data confidentiality"),
                       _t("应采用密码技术保证重要数据在传输过程中的保密性",
                          "Protect confidentiality of important data in transit with cryptography"), 1.0),
}

CHECKS: dict[str, NetCheck] = {c.id: c for c in [
    NetCheck(id="net-plaintext-mgmt", clause="8.1.4.1", item="c", severity=Severity.HIGH, high_risk="6.4.1.2",
             title=_t("远程管理不使用明文协议", "No plaintext remote management"),
             remediation=_t("停用 Telnet/FTP/rsh/rlogin/VNC 明文管理及无 TLS 的 Web 登录，改用 SSH 或 HTTPS",
                            "Disable Telnet/FTP/rsh/rlogin/VNC and web logins without TLS; use SSH or HTTPS")),
    NetCheck(id="net-plaintext-transport", clause="8.1.4.8", item="a", severity=Severity.HIGH,
             title=_t("鉴别信息和重要数据不以明文传输", "Credentials and data are not sent in plaintext"),
             remediation=_t("为该服务启用 TLS 或改用加密协议", "Enable TLS for the service or use an encrypted protocol")),
    NetCheck(id="net-forbidden-port", clause="8.1.4.4", item="b", severity=Severity.HIGH, high_risk="6.4.3.1",
             title=_t("不开放区域基线禁止的服务和高危端口", "No service or high-risk port forbidden in the zone"),
             remediation=_t("关闭该服务，或在主机防火墙/安全组中限制其访问来源",
                            "Stop the service, or restrict who can reach it in the host firewall/security group")),
    NetCheck(id="net-unauth-access", clause="8.1.4.4", item="b", severity=Severity.CRITICAL, high_risk="6.4.1.1",
             title=_t("数据服务不允许未授权访问", "Data services require authentication"),
             remediation=_t("启用认证（如 Redis requirepass、MongoDB --auth、ES 安全功能），并仅监听内网地址",
                            "Enable authentication (Redis requirepass, MongoDB --auth, ES security) and bind "
                            "to internal addresses only")),
    NetCheck(id="net-default-community", clause="8.1.4.2", item="b", severity=Severity.HIGH, high_risk="6.4.2.1",
             title=_t("SNMP 不使用默认团体名", "SNMP does not accept a default community"),
             remediation=_t("修改默认团体名 public/private，或改用 SNMPv3 认证加密",
                            "Change the default communities public/private or use SNMPv3 with auth and privacy")),
    NetCheck(id="net-tls-protocol", clause="8.1.2.2", item="b", severity=Severity.MEDIUM,
             title=_t("不提供 SSLv3/TLS 1.0/TLS 1.1", "SSLv3, TLS 1.0 and TLS 1.1 are not offered"),
             remediation=_t("仅启用 TLS 1.2 及以上版本", "Enable TLS 1.2 and later only")),
    NetCheck(id="net-tls-weak-cipher", clause="8.1.2.2", item="b", severity=Severity.MEDIUM,
             title=_t("不接受弱加密套件", "No weak cipher suite is accepted"),
             remediation=_t("禁用 NULL/EXPORT/RC4/DES/3DES/匿名套件", "Disable NULL, EXPORT, RC4, DES, 3DES and anonymous suites")),
    NetCheck(id="net-tls-certificate", clause="8.1.2.2", item="a", severity=Severity.MEDIUM,
             title=_t("证书在有效期内且由可信机构签发", "Certificate is valid and issued by a trusted CA"),
             remediation=_t("更换为可信 CA 签发且未过期的证书", "Install an unexpired certificate issued by a trusted CA")),
    NetCheck(id="net-ssh-protocol", clause="8.1.4.1", item="c", severity=Severity.HIGH,
             title=_t("SSH 仅使用协议版本 2", "SSH offers protocol version 2 only"),
             remediation=_t("禁用 SSH 协议版本 1", "Disable SSH protocol version 1")),
    NetCheck(id="net-ssh-weak-crypto", clause="8.1.2.2", item="b", severity=Severity.MEDIUM,
             title=_t("SSH 不提供弱密钥交换、主机密钥和加密算法", "SSH offers no weak key exchange, host key or cipher"),
             remediation=_t("在 sshd_config 中设置 KexAlgorithms/HostKeyAlgorithms/Ciphers，去掉 group1/sha1、ssh-dss、CBC、arcfour、3des",
                            "Set KexAlgorithms/HostKeyAlgorithms/Ciphers in sshd_config without group1/sha1, "
                            "ssh-dss, CBC, arcfour, 3des")),
    NetCheck(id="net-ssh-weak-mac", clause="8.1.2.2", item="a", severity=Severity.MEDIUM,
             title=_t("SSH 不提供弱消息认证码", "SSH offers no weak MAC"),
             remediation=_t("在 sshd_config 中设置 MACs，去掉 hmac-md5*、*-96、umac-32",
                            "Set MACs in sshd_config without hmac-md5*, *-96 and umac-32")),
    NetCheck(id="net-ssh-password-auth", clause="8.1.4.1", item="d", severity=Severity.MEDIUM,
             title=_t("SSH 不允许仅凭口令登录", "SSH does not accept a password alone"),
             remediation=_t("在 sshd_config 中设置 PasswordAuthentication no（及 KbdInteractiveAuthentication no），"
                            "改用密钥，或以 AuthenticationMethods publickey,password 要求两种因素",
                            "Set PasswordAuthentication no (and KbdInteractiveAuthentication no) in sshd_config "
                            "and use keys, or require two factors with AuthenticationMethods publickey,password")),
    NetCheck(id="net-ssh-no-auth", clause="8.1.4.1", item="a", severity=Severity.CRITICAL, high_risk="6.4.1.1",
             title=_t("SSH 登录需要鉴别", "SSH login requires authentication"),
             remediation=_t("关闭无需鉴别的登录方式（PermitEmptyPasswords no，去掉 none 认证）",
                            "Disable logins without authentication (PermitEmptyPasswords no, no `none` method)")),
    NetCheck(id="net-anonymous-ftp", clause="8.1.4.2", item="a", severity=Severity.HIGH,
             title=_t("FTP 不允许匿名登录", "FTP does not accept anonymous logins"),
             remediation=_t("关闭匿名 FTP（vsftpd: anonymous_enable=NO），或改用 SFTP",
                            "Disable anonymous FTP (vsftpd: anonymous_enable=NO) or use SFTP")),
    NetCheck(id="net-empty-password", clause="8.1.4.1", item="a", severity=Severity.CRITICAL, high_risk="6.4.1.1",
             title=_t("数据库账户不使用空口令", "No database account with an empty password"),
             remediation=_t("为 root 设置强口令并禁止其远程登录", "Set a strong root password and refuse remote root logins")),
    NetCheck(id="net-mgmt-source", clause="8.1.4.4", item="c", severity=Severity.HIGH,
             title=_t("管理服务仅允许管理区访问", "Management services are reachable from management zones only"),
             remediation=_t("在边界或主机防火墙上限制管理端口的源地址为堡垒机/管理区",
                            "Restrict management ports to the bastion host / management zone at the boundary "
                            "or host firewall")),
    NetCheck(id="net-isolation", clause="8.1.3.2", item="a", severity=Severity.HIGH,
             title=_t("区域间隔离策略生效", "Zone isolation policy holds"),
             remediation=_t("在区域边界设置访问控制规则，默认拒绝", "Set access rules at the zone boundary, deny by default")),
]}


# ---- scoring -------------------------------------------------------------------------------------


class NetworkScore(BaseModel):
    findings: list[ServiceFinding]  # copies with results, forbidden, zone and high_risk filled in
    results: list[CheckResult]  # every result, findings' and isolation results, in a stable order
    items: list[ItemResult]  # the system roll-up of `objects` (sentinel.scoring.system_items)
    objects: dict[str, list[ItemResult]] = Field(default_factory=dict)  # per 测评对象 (host address)
    summary: Summary


class Reachability(BaseModel):
    """What the scan covered, needed to judge the isolation matrix: which hosts were targeted, which ports."""

    scanner_zone: Optional[str] = None
    hosts: list[str] = Field(default_factory=list)
    tcp_ports: list[int] = Field(default_factory=list)
    udp_ports: list[int] = Field(default_factory=list)


def _probe_said(error: str) -> Reason:
    """A probe's own message (English, from the probe or the server): framed in Chinese for zh output."""
    return Reason(error, f"探测未得出结果：{error}")


def _result(check: NetCheck, status: Status, finding_label: str, observed: Any, expected: str,
            reason: Optional[Reason], evidence: list[Evidence], baseline: Optional["ZoneBaseline"],
            high_risk: Optional[str] = "default", severity: Optional[Severity] = None,
            clause: Optional[str] = None, item: Optional[str] = None) -> CheckResult:
    ov = baseline.override.get(check.id, {}) if baseline else {}
    case = check.high_risk if high_risk == "default" else high_risk
    return CheckResult(
        check_id=check.id, clause=clause or check.clause, item=item or check.item, title=check.title,
        status=status, severity=ov.get("severity", severity or check.severity),
        high_risk=ov["high_risk"] if "high_risk" in ov else case,
        observed=observed, expected=expected,
        reason=f"{finding_label}: {reason.en}" if reason else None,
        reason_zh=f"{finding_label}：{reason.zh}" if reason else None, evidence=evidence,
        remediation=check.remediation, waiver=baseline.waive.get(check.id) if baseline else None)


def _is_plaintext_login(f: ServiceFinding) -> bool:
    if f.tls is not None or f.tunnel == "ssl" or f.http is None:
        return False
    if f.http.location and f.http.location.lower().startswith("https://"):
        return False
    return f.http.login_form or f.http.basic_auth


def evaluate_finding(f: ServiceFinding, baseline: Optional["ZoneBaseline"], zone: Optional[str],
                     scanner_zone: Optional[str]) -> ServiceFinding:
    """A copy of `f` with its check results, forbidden flag, zone and high-risk cases."""
    if not f.determined:
        return _evaluate_undetermined(f, baseline, zone)
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
        results.append(_result(CHECKS["net-plaintext-mgmt"], Status.FAIL if plain else Status.PASS, label,
                               {"service": svc, "tls": f.tls is not None}, "encrypted management protocol",
                               why if plain else None, ev, baseline))
    # 8.1.4.8 a: services that carry credentials/data in the clear.
    mysql_plain = svc in ("mysql", "postgresql") and f.starttls is False  # no in-band TLS offered
    if svc in PLAINTEXT_MANAGEMENT or plaintext_login or mysql_plain or f.tls is not None:
        plain = f.tls is None and (svc in PLAINTEXT_MANAGEMENT or plaintext_login or mysql_plain)
        results.append(_result(CHECKS["net-plaintext-transport"], Status.FAIL if plain else Status.PASS, label,
                               {"service": svc, "tls": f.tls is not None}, "TLS or an encrypted protocol",
                               Reason(f"{svc} without TLS", f"{svc} 未使用 TLS 加密") if plain else None, ev,
                               baseline))
    # 8.1.4.4 b: services allowed in the zone; high-risk ports are a high-risk finding (6.4.3.1).
    forbidden, why, high = (False, None, False)
    if baseline is not None:
        forbidden, port_why, high = baseline.port_verdict(zone, f.proto, f.port, svc)
        results.append(_result(CHECKS["net-forbidden-port"], Status.FAIL if forbidden else Status.PASS, label,
                               {"zone": zone, "service": svc, "port": f"{f.proto}/{f.port}"},
                               f"allowed in zone {zone or '(none)'}", port_why, ev, baseline,
                               high_risk=CHECKS["net-forbidden-port"].high_risk if high else None))
    # Unauthenticated data services / default SNMP community.
    if svc in UNAUTH_SERVICES:
        check = CHECKS["net-default-community" if svc == "snmp" else "net-unauth-access"]
        if f.exposure is None:
            said = next((_probe_said(e) for e in f.errors if e.startswith(svc)),
                        Reason(f"no {svc} probe result", f"无 {svc} 探测结果"))
            results.append(_result(check, Status.ERROR, label, None, "authentication required", said, ev, baseline))
        else:
            results.append(_result(check, Status.FAIL if f.exposure.unauthenticated else Status.PASS, label,
                                   f.exposure.detail, "authentication required",
                                   Reason(f.exposure.detail, f"无需认证即可访问：{f.exposure.detail}")
                                   if f.exposure.unauthenticated else None, ev, baseline))
    # Opt-in credential probes (credentials.py): only present when the scan was run with them enabled.
    for a in f.credentials:
        check = {"ftp": "net-anonymous-ftp", "mysql": "net-empty-password", "snmp": "net-default-community"}.get(
            a.protocol)
        if check:
            results.append(_result(CHECKS[check], Status.FAIL if a.accepted else Status.PASS, label,
                                   {"user": a.user, "accepted": a.accepted}, "the documented default is refused",
                                   Reason(a.detail, f"默认凭据被接受：{a.detail}") if a.accepted else None, ev,
                                   baseline))
    # TLS quality.
    if f.tls is not None:
        t = f.tls
        old = [p for p in t.protocols if p in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")]
        untested = {k: v for k, v in t.untested.items() if k in ("SSLv3", "TLSv1.0", "TLSv1.1")}
        status = Status.FAIL if old else (Status.ERROR if untested else Status.PASS)
        not_tested = "; ".join(f"{k}: {v}" for k, v in untested.items())
        tls_why = (Reason(f"offers {', '.join(old)}", f"支持 {', '.join(old)}") if old else
                   (Reason("could not test " + not_tested, "无法测试 " + not_tested) if untested else None))
        results.append(_result(CHECKS["net-tls-protocol"], status, label, t.protocols, "TLSv1.2 or later only",
                               tls_why, ev, baseline))
        # NULL (no encryption) and anonymous (no server authentication: anyone in the path reads the traffic)
        # suites leave nothing of the channel's protection: high, where RC4/3DES/EXPORT stay medium.
        broken = [c for c in t.weak_ciphers if "_NULL_" in c or "_anon_" in c]
        results.append(_result(CHECKS["net-tls-weak-cipher"], Status.FAIL if t.weak_ciphers else Status.PASS, label,
                               t.weak_ciphers, "no weak cipher suite",
                               Reason(f"accepts {', '.join(t.weak_ciphers)}",
                                      f"接受弱密码套件 {', '.join(t.weak_ciphers)}") if t.weak_ciphers else None,
                               ev, baseline,
                               severity=Severity.HIGH if broken else None))
        problems: list[Reason] = []
        if t.expired:
            problems.append(Reason(f"certificate expired {t.not_after:%Y-%m-%d}", f"证书已于 {t.not_after:%Y-%m-%d} 过期")
                            if t.not_after else Reason("certificate expired", "证书已过期"))
        if t.self_signed:
            problems.append(Reason("self-signed certificate", "自签名证书"))
        elif t.chain_valid is False:
            problems.append(Reason(f"chain not trusted: {t.chain_error}", f"证书链不受信任：{t.chain_error}"))
        cert_status = Status.FAIL if problems else (Status.ERROR if t.not_after is None else Status.PASS)
        results.append(_result(CHECKS["net-tls-certificate"], cert_status, label,
                               {"subject": t.subject, "issuer": t.issuer, "not_after": str(t.not_after),
                                "self_signed": t.self_signed, "chain_valid": t.chain_valid},
                               "unexpired, CA-issued certificate",
                               Reason("; ".join(r.en for r in problems), "；".join(r.zh for r in problems)) if problems
                               else (Reason("no certificate could be read", "无法读取证书")
                                     if cert_status == Status.ERROR else None), ev, baseline))
    # SSH.
    if f.ssh is not None:
        s = f.ssh
        v1 = s.protocol not in ("2.0",)
        results.append(_result(CHECKS["net-ssh-protocol"], Status.FAIL if v1 else Status.PASS, label, s.protocol,
                               "2.0", Reason(f"SSH protocol {s.protocol} allows version 1",
                                             f"SSH 协议版本为 {s.protocol}，允许使用 SSH-1") if v1 else None,
                               ev, baseline))
        weak = s.weak_kex + s.weak_host_key + s.weak_ciphers
        results.append(_result(CHECKS["net-ssh-weak-crypto"], Status.FAIL if weak else Status.PASS, label, weak,
                               "no weak algorithm", Reason(f"offers {', '.join(weak)}", f"支持弱算法 {', '.join(weak)}")
                               if weak else None, ev, baseline))
        results.append(_result(CHECKS["net-ssh-weak-mac"], Status.FAIL if s.weak_macs else Status.PASS, label,
                               s.weak_macs, "no weak MAC",
                               Reason(f"offers {', '.join(s.weak_macs)}", f"支持弱 MAC 算法 {', '.join(s.weak_macs)}")
                               if s.weak_macs else None, ev, baseline))
        # Authentication methods, from the server's answer to a `none` request (ssh.auth_methods).
        if s.auth_methods is None:
            said = next((_probe_said(e) for e in f.errors if e.startswith("ssh-auth")),
                        Reason("auth methods could not be read", "无法读取 SSH 认证方式"))
            results.append(_result(CHECKS["net-ssh-password-auth"], Status.ERROR, label, None,
                                   "no password-only login", said, ev, baseline))
        elif s.auth_methods == ["none"]:
            results.append(_result(CHECKS["net-ssh-no-auth"], Status.FAIL, label, s.auth_methods,
                                   "authentication required",
                                   Reason("the `none` request logged in without any credential",
                                          "以 `none` 方式请求即可登录，无需任何凭据"), ev, baseline))
        else:
            results.append(_result(CHECKS["net-ssh-no-auth"], Status.PASS, label, s.auth_methods,
                                   "authentication required", None, ev, baseline))
            single = [m for m in s.auth_methods if m in ("password", "keyboard-interactive")]
            results.append(_result(CHECKS["net-ssh-password-auth"], Status.FAIL if single else Status.PASS, label,
                                   s.auth_methods, "no password-only login",
                                   Reason(f"offers {', '.join(single)} as a method of its own (a password alone logs in)",
                                          f"单独提供 {', '.join(single)} 认证方式（仅凭口令即可登录）")
                                   if single else None, ev, baseline))
    elif svc == "ssh":
        said = next((_probe_said(e) for e in f.errors if e.startswith("ssh")),
                    Reason("SSH probe gave no result", "SSH 探测未得出结果"))
        results.append(_result(CHECKS["net-ssh-weak-crypto"], Status.ERROR, label, None, "no weak algorithm",
                               said, ev, baseline))
    # 8.1.4.4 c: management reachable only from the zones the baseline allows.
    # A web login page is often the business application's own: only management protocols are judged here.
    if baseline is not None and scanner_zone and zone and svc in MANAGEMENT:
        allowed_from = baseline.management_from(zone)
        if allowed_from is not None:
            bad = scanner_zone not in allowed_from
            results.append(_result(CHECKS["net-mgmt-source"], Status.FAIL if bad else Status.PASS, label,
                                   {"from_zone": scanner_zone, "to_zone": zone, "service": svc},
                                   f"reachable only from {', '.join(allowed_from) or 'nowhere'}",
                                   Reason(f"{svc} reachable from zone {scanner_zone}",
                                          f"{svc} 可从区域 {scanner_zone} 访问") if bad else None, ev, baseline))
    high_risk = sorted({r.high_risk for r in results if r.status == Status.FAIL and r.high_risk and not r.waiver})
    return f.model_copy(update={"results": results, "forbidden": forbidden, "zone": zone, "high_risk": high_risk,
                                "plaintext_management": plaintext_login or (svc in PLAINTEXT_MANAGEMENT and f.tls is None)})


def _evaluate_undetermined(f: ServiceFinding, baseline: Optional["ZoneBaseline"], zone: Optional[str]
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
    if baseline is not None:
        forbidden, _, _ = baseline.judge_port(zone, f.proto, f.port, svc)
        results.append(_result(CHECKS["net-forbidden-port"], Status.ERROR if forbidden else Status.PASS, label,
                               {"zone": zone, "service": svc, "port": f"{f.proto}/{f.port}", "state": f.state},
                               f"allowed in zone {zone or '(none)'}", why if forbidden else None, ev, baseline))
    if svc in UNAUTH_SERVICES:
        check = CHECKS["net-default-community" if svc == "snmp" else "net-unauth-access"]
        probe_error = next((e for e in f.errors if e.startswith(svc)), None)
        results.append(_result(check, Status.ERROR, label, {"state": f.state}, "authentication required",
                               Reason(f"{why.en}; {probe_error}", f"{why.zh}；{probe_error}") if probe_error else why,
                               ev, baseline))
    return f.model_copy(update={"results": results, "forbidden": False, "zone": zone, "high_risk": [],
                                "plaintext_management": False})


def isolation_results(findings: list[ServiceFinding], baseline: "ZoneBaseline", zone_of, reach: Reachability
                      ) -> list[tuple[str, CheckResult]]:
    """(host, result): one result per isolation rule from the scanner's zone, per targeted host in its zone."""
    out: list[tuple[str, CheckResult]] = []
    if not reach.scanner_zone:
        return out
    check = CHECKS["net-isolation"]
    open_by_host: dict[str, list[ServiceFinding]] = {}
    for f in findings:
        open_by_host.setdefault(f.host, []).append(f)
    for rule in baseline.isolation:
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
            out.append((host, _result(check, status, label, [f"{f.proto}/{f.port}" for f in hits],
                                      f"unreachable: {rule.describe_ports()}", reason, ev, baseline,
                                      clause=rule.clause, item=rule.item)))
    return out


def _host_sort(host: str):
    import ipaddress

    try:
        addr = ipaddress.ip_address(host)
        return (addr.version, int(addr), "")
    except ValueError:
        return (99, 0, host)


def object_verdict(results: list[CheckResult]) -> "Verdict":
    """One 测评对象's verdict on one item: a failing high-risk case (高风险判定指引) makes it 不符合 whatever else
    passes on that object (an unauthenticated Redis is not half made up for by a closed telnet port); otherwise
    the usual pass/fail mix (sentinel.scoring.item_verdict)."""
    from sentinel.model import Verdict
    from sentinel.scoring import counted, item_verdict

    if any(r.status == Status.FAIL and r.high_risk and counted(r) for r in results):
        return Verdict.NONCONFORM
    return item_verdict(results, True)


def score_network(findings: Iterable[ServiceFinding], zone_baseline: Optional["ZoneBaseline"],
                  zone: Optional[str] = None, reach: Optional[Reachability] = None,
                  coverage: Optional[str] = None) -> NetworkScore:
    """Per-finding check results, isolation results, item verdicts per host and rolled up, and a summary.

    `zone`: the zone of every target (else each host's zone comes from the baseline's zone networks).
    `reach`: what was scanned and from where, for the management-source and isolation checks.
    `coverage`: what the scan covered, in words; added to the evidence of every result.

    Each host is its own 测评对象: its items are judged over its own results (`object_verdict`), then the
    hosts' verdicts are rolled up per item as a system's are (`sentinel.scoring.system_items`): one host with a
    critical unauthenticated service reads 不符合 on that host, whatever the other hosts do.
    """
    from sentinel.scoring import summarize, system_items

    reach = reach or Reachability()

    def zone_of(host: str) -> Optional[str]:
        return zone or (zone_baseline.zone_for(host) if zone_baseline else None)

    scored = [evaluate_finding(f, zone_baseline, zone_of(f.host), reach.scanner_zone)
              for f in sorted(findings, key=lambda f: (_host_sort(f.host), f.proto, f.port))]
    per_host: dict[str, list[CheckResult]] = {}
    for f in scored:
        per_host.setdefault(f.host, []).extend(f.results)
    if zone_baseline is not None:
        for host, r in isolation_results(scored, zone_baseline, zone_of, reach):
            per_host.setdefault(host, []).append(r)
    if coverage:
        note = Evidence(source="scan coverage", excerpt=coverage, at=utcnow())
        for rs in per_host.values():
            for r in rs:
                r.evidence = [*r.evidence, note]
    results = [r for host in sorted(per_host, key=_host_sort) for r in per_host[host]]
    objects: dict[str, list[ItemResult]] = {}
    for host in sorted(per_host, key=_host_sort):
        by_item: dict[tuple[str, str], list[CheckResult]] = {}
        for r in per_host[host]:
            by_item.setdefault((r.clause, r.item), []).append(r)
        mine_items = []
        for (clause, item), (control, text, weight) in sorted(ITEMS.items(), key=lambda kv: _clause_key(kv[0])):
            mine = by_item.get((clause, item))
            if not mine:
                continue  # nothing the scan saw bears on this item: it stays with the host checks / assessor
            mine_items.append(ItemResult(clause=clause, item=item, control=control, text=text, weight=weight,
                                         verdict=object_verdict(mine), checks=sorted({r.check_id for r in mine})))
        objects[host] = mine_items
    items = system_items(objects.values())
    return NetworkScore(findings=scored, results=results, items=items, objects=objects,
                        summary=summarize(items, results))


def _clause_key(key: tuple[str, str]):
    return (tuple(int(p) for p in key[0].split(".")), key[1])
