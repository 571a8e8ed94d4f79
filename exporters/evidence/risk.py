"""Risk view: findings that meet the high-risk judgement guide, and the 2025 template's 重大风险隐患 view.

A finding is high risk when its check names a case of the 高风险判定指引 (T/ISEAA 001-2020 and the
implementation guide, cases 6.x.x.x) and it fails in the latest report: the same rule as
`sentinel.scoring.risk_level`. The guide's downgrade conditions (2FA, login restriction, not internet
facing ...) need facts a host check cannot see, so they are listed for the agency to judge.

The 2025 template (公网安〔2025〕1001号) replaces scoring with 重大风险隐患 (附录G). A 重大风险隐患 needs
相关性 (no mitigation), 严重性 and 高发性; only the first can be hinted at by a check, so every entry is a
*candidate* for the agency to confirm. The 附录G trigger numbers are not mapped: that appendix was not
available to this project, and a guessed number would be worse than none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sentinel import scoring
from sentinel.evidence.model import SystemEvidence

from .common import fmt_time, labels, scope_text
from .wording import gap, seen

# Host/network-checkable cases of the high-risk guide: (issue zh, issue en, minimum level, downgrade zh, en).
# Source: research notes /work/shared/reference/dengbao-2.0.md §4.4 ([S7][S8]).
CASES: dict[str, tuple[str, str, int, str, str]] = {
    "6.4.1.1": ("存在空口令、弱口令或通用口令，或无身份鉴别", "empty, weak or shared passwords, or no authentication",
                2, "仅本地登录或已采用双因素认证", "local-only login, or two-factor authentication"),
    "6.4.1.2": ("远程管理时鉴别信息明文传输", "credentials sent in plaintext during remote management", 2,
                "已采用双因素认证", "two-factor authentication"),
    "6.4.1.3": ("未采用双因素认证", "no two-factor authentication", 3, "仅本地或带外管理",
                "local or out-of-band management only"),
    "6.4.2.1": ("默认账户默认口令未修改", "default account with its default password", 2,
                "已采用双因素认证或登录地址限制", "two-factor authentication or login address restriction"),
    "6.4.3.1": ("开启多余的服务、默认共享或高危端口且可远程访问",
                "unnecessary services, shares or high-risk ports reachable remotely", 2,
                "已限制登录地址或部署主机入侵检测", "login address restriction or host intrusion detection"),
    "6.4.3.2": ("存在可被利用的高危漏洞", "exploitable high-risk vulnerability", 2,
                "内网且有防护措施（互联网设备不可降级）", "internal with protections (never for internet-facing)"),
    "6.4.4.1": ("无恶意代码防范措施、授权过期或病毒库超过一个月未更新",
                "no anti-malware, licence expired, or signatures older than a month", 2,
                "非Windows、不面向互联网且有白名单或入侵检测", "non-Windows, not internet-facing, whitelist or IDS"),
    "6.4.5.1": ("重要数据传输未加密", "important data in plaintext in transit", 3, "—", "—"),
    "6.4.5.2": ("重要数据存储未加密", "important data in plaintext at rest", 3, "—", "—"),
    "6.4.6.1": ("无本地数据备份，或备份至互联网网盘", "no local backup, or backup to an internet drive", 3, "—", "—"),
    "6.3.3.1": ("无外部攻击防范措施", "no defence against external attacks", 2, "—", "—"),
    "6.3.3.2": ("无内部攻击防范措施，或规则库超过六个月未更新",
                "no defence against internal attacks, or rules older than six months", 3, "—", "—"),
    "6.2.2.1": ("重要数据网络传输未加密", "important data sent over the network in plaintext", 3, "—", "—"),
    "6.5.1.2": ("审计日志留存不足六个月", "audit records kept for less than six months", 3, "—", "—"),
}


@dataclass
class RiskEntry:
    no: int
    object: str
    clause: str
    item: str
    check_id: str
    case: str
    issue: str  # the guide's wording for the case, "" if the case is not in CASES
    title: str
    observed: str  # 结果记录: what was seen (wording.seen)
    problem: str  # 问题描述: the gap (wording.gap)
    remediation: str
    min_level: Optional[int]
    applies: Optional[bool]  # the system's level reaches the case's level; None if the case is unknown
    downgrade: str
    first_seen: str


def high_risk_entries(ev: SystemEvidence, lang: str = "zh") -> list[RiskEntry]:
    opened = {(f.object, f.check_id): f for f in ev.findings if f.open}
    out: list[RiskEntry] = []
    for obj, rep in ev.reports():
        for r in rep.results:
            if scoring.risk_level(r) != "high":
                continue
            case = CASES.get(r.high_risk or "")
            zh = lang == "zh"
            finding = opened.get((obj.name, r.check_id))
            out.append(RiskEntry(
                no=0, object=obj.name, clause=r.clause, item=r.item, check_id=r.check_id, case=r.high_risk or "",
                issue=(case[0] if zh else case[1]) if case else "", title=r.title.get(lang),
                observed=seen(r, lang), problem=gap(r, lang), remediation=r.remediation.get(lang),
                min_level=case[2] if case else None, applies=(ev.system.level >= case[2]) if case else None,
                downgrade=(case[3] if zh else case[4]) if case else "",
                first_seen=fmt_time(finding.first_seen) if finding else ""))
    out.sort(key=lambda e: (e.case, e.object, e.check_id))
    for n, e in enumerate(out, 1):
        e.no = n
    return out


def major_hazard_entries(ev: SystemEvidence, lang: str = "zh") -> list[RiskEntry]:
    """Candidates for the 2025 template's 重大风险隐患: high-risk findings whose case applies at this level."""
    out = [e for e in high_risk_entries(ev, lang) if e.applies is not False]
    for n, e in enumerate(out, 1):
        e.no = n
    return out


def paste_text(ev: SystemEvidence, lang: str = "zh") -> str:
    """Both lists as plain numbered text an agency can paste into its report."""
    lab = labels(lang)
    zh = lang == "zh"
    high = high_risk_entries(ev, lang)
    hazards = major_hazard_entries(ev, lang)
    lines = [f"{lab['risk_title']} — {ev.system.name} ({ev.system.label or ev.system.level})",
             f"{lab['scope']}: {scope_text(ev, lang)}", ""]
    lines.append("一、高风险问题（依据《网络安全等级保护测评高风险判定指引》）" if zh
                 else "1. High-risk findings (high-risk judgement guide)")
    if not high:
        lines.append(lab["none"])
    for e in high:
        case = f"{e.case} {e.issue}".strip()
        lvl = ""
        if e.applies is False:
            lvl = (f"（本案例适用于第{e.min_level}级及以上，本系统为第{ev.system.level}级）" if zh
                   else f" (case applies from level {e.min_level}; this system is level {ev.system.level})")
        seen = f"；{lab['first_seen']} {e.first_seen}" if zh and e.first_seen else (
            f"; {lab['first_seen']} {e.first_seen}" if e.first_seen else "")
        sep = "；" if zh else "; "
        lines.append(f"{e.no}. [{case}] {e.object} {e.clause}{e.item} {e.problem}{sep}{lab['record']}: {e.observed}"
                     f"{seen}{sep}{lab['remediation']}: {e.remediation}{sep}{lab['downgrade']}: {e.downgrade or '—'}"
                     f"{lvl}")
    lines += ["", "二、重大风险隐患（《网络安全等级测评报告模版（2025版）》）候选" if zh
              else "2. Major risk hazard candidates (2025 report template)"]
    if not hazards:
        lines.append(lab["none"])
    for e in hazards:
        lines.append(f"{e.no}. {e.object}: {e.issue or e.title}（{e.clause}{e.item}，{e.case}）——"
                     "相关性、严重性、高发性待测评机构确认" if zh else
                     f"{e.no}. {e.object}: {e.issue or e.title} ({e.clause}{e.item}, case {e.case}) — relevance, "
                     "severity and likelihood to be confirmed by the testing agency")
    return "\n".join(lines) + "\n"
