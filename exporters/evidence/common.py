"""Shared by the evidence exporters: labels in zh/en and the rows every format shows.

The rows are computed once here so the XLSX, HTML and PDF show the same content; risk levels come
from `sentinel.scoring.risk_level`, never from a rule of their own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from sentinel import scoring
from sentinel.evidence.model import (
    FindingRecord,
    ItemRecord,
    ObjectEvidence,
    ReportEvidence,
    SectionRecord,
    SystemEvidence,
)
from sentinel.evidence.sections import LAYERS, SECTIONS, covered_layers
from sentinel.model import CheckResult, Verdict
from sentinel.store.findings import FindingState
from sentinel.store.findings import counts as finding_counts

from .wording import gap, seen

LANGS = ("zh", "en")

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "网络安全等级保护测评记录", "summary": "汇总", "system": "定级对象", "department": "主管部门",
        "level": "安全保护等级", "label": "定级 (S/A)", "owner": "责任单位", "range": "时间范围",
        "collector": "采集方", "key": "签名公钥指纹", "baselines": "基线模板", "generated": "生成时间",
        "objects": "测评对象数", "score": "综合得分", "pass_rate": "检查通过率", "conclusion": "结论",
        "verdicts": "测评项符合情况", "statuses": "检查结果", "high_risk": "高风险问题",
        "problems": "问题汇总", "manual": "人工核查", "rectification": "整改跟踪", "history": "得分趋势",
        "risk_view": "重大风险隐患", "notes": "说明", "no": "序号", "object": "测评对象",
        "clause": "安全控制点编号", "control": "安全控制点", "item": "测评项", "record": "结果记录",
        "verdict": "符合情况", "weight": "权重", "source": "判定方式", "checks": "检查项", "problem": "问题描述",
        "remediation": "整改建议", "risk": "风险等级", "case": "高风险判定指引条款", "assessor": "核查人",
        "time": "时间", "note": "核查说明", "attachments": "附件 (文件名 + SHA-256)", "effective": "当前有效",
        "first_seen": "首次发现", "fixed_at": "整改完成", "status": "状态", "age": "已存在 (天)",
        "before": "整改前证据", "after": "整改后证据", "os": "操作系统", "addresses": "地址", "report": "报告",
        "automated": "自动检查", "manual_src": "人工核查", "yes": "是", "no_": "否", "open": "未整改",
        "now_advisory": "转为参考项（不计入判定）", "advisory_mark": "参考项，不计入判定",
        "fixed": "已整改", "waived": "已豁免", "observed": "观测", "expected": "期望", "evidence": "依据",
        "reason": "说明", "none": "无", "pending_items": "待核查项", "chain": "结果哈希链",
        "zombie": "僵尸信息系统判定", "zombie_window": "判定窗口", "zombie_review": "审核",
        "zombie_idle": "资源闲置", "zombie_stale": "运维停止", "zombie_unused": "少人使用",
        "zombie_state_yes": "是", "zombie_state_no": "否", "zombie_state_unknown": "未知",
        "domestic": "国产化情况", "domestic_category": "类别", "domestic_rate_host": "国产化率（按主机）",
        "domestic_rate_component": "国产化率（按组件）", "domestic_gm": "国密 TLS", "domestic_components": "组件",
        "dr": "数据备份恢复（恢复点目标）", "dr_rpo": "恢复点目标 (小时)", "dr_copies": "备份副本",
        "dr_newest": "最新备份", "dr_age": "距今 (小时)", "dr_offsite": "异地", "dr_replication": "数据库复制",
        "dr_checked": "检查时间", "dr_where": "位置",
        "dr_realtime": "异地实时备份", "dr_failover": "切换目标（异地灾难备份中心的数据部分，由测评人员判断）",
        "dr_lag": "复制延迟 (秒)", "dr_tool": "工具", "dr_site": "场地", "dr_backups": "备份数",
        "dr_evaluated": "判定时间", "dr_copy": "副本",
        "dr_rt_met": "满足", "dr_rt_not_met": "未满足", "dr_rt_unknown": "未知", "dr_rt_none": "未声明",
        "runs": "报告数", "anchor": "链起点", "head": "链末端", "to_now": "至导出时",
        "from_start": "自首次报告", "host": "主机", "zone": "网络区域", "count": "数量",
        "applies": "适用等级", "downgrade": "可降级情形", "confirm": "待测评机构确认",
        "system_score": "系统综合得分", "undetermined": "待定", "raw_bodies": "原始报告",
        "rect_title": "整改报告", "risk_title": "高风险问题与重大风险隐患清单",
        "rect_ref": "每个问题的首次发现、整改时间及整改前后证据见整改报告 (rectification.html)。",
        "system_items": "系统测评项汇总", "network": "网络",
        "host_findings": "主机检查问题", "services": "网络服务 (网络扫描发现)", "port": "端口", "service": "服务",
        "closed_at": "关闭时间", "svc_closed": "已关闭", "svc_open_ok": "开放，无不通过检查",
        "svc_closed_title": "已关闭的服务", "svc_open_title": "仍开放的服务",
        "svc_before": "开放时的证据 (最后一次发现)", "svc_after": "扫描 #{scan} ({at}) 未发现该端口开放",
        "svc_summary": "网络服务",
        "scope": "覆盖范围", "title_col": "标题", "scoped_conclusion": "结论 (覆盖范围内)", "chapters": "报告章节",
        "to_fill": "待填写", "filled": "已填写", "from_data": "数据部分", "written_by": "填写人",
        "to_write": "由测评人员填写", "chapter": "章节", "content": "内容",
        "objects_list": "测评对象 (数据覆盖)", "kind": "类别", "control_summary": "安全控制点测评项符合情况",
        "scope_conclusion": "覆盖范围内的综合得分 {score}，结论 {conclusion}。",
        "record_sheet": "测评记录表", "system_under": "被测系统", "ip": "IP 地址", "extension": "扩展标准",
        "method": "测评方法",
        "score_col": "分值", "remark": "备注", "version": "版本", "runs_on": "所在主机", "purpose": "用途",
        "basis": "测评依据", "how": "测评方式", "assessed_at": "测评日期", "assessors": "测评人员",
        "reviewer": "复核人", "confirmed": "被测单位确认", "to_fill_mark": "【待填写】",
        "m_check": "核查（自动采集）", "m_scan": "测试（网络扫描）", "m_manual": "人工核查",
        "m_pending": "人工核查（待实施）",
        "how_agent": "自动采集：代理报告 {report}（run {run}），采集方 {collector}",
        "how_scan": "网络扫描 #{scan}（采集方 {collector} 发起）", "checks_col": "检查项",
        "findings_fixed": "问题已整改", "findings_open": "问题未整改",
        "findings_other": "已关闭未计整改 (豁免、转为参考项)",
        "svc_closed_n": "网络服务已关闭", "svc_failing_n": "网络服务未整改 (有不通过检查)",
        "svc_ok_n": "网络服务开放 (无不通过检查)",
        "verify": "核验方法",
        "verify_how": "向采集端运维方线下索取其签名公钥或指纹 (采集端执行 sentinel key show)，核对与上列指纹一致后执行 "
                      "sentinel verify <证据包> --fingerprint {fp}；结果为 INTACT 方可认定证据出自该采集端且未被改动，"
                      "指纹不一致或未核对 (UNVERIFIED) 均不能作为依据。签名亦可用 openssl pkeyutl -verify -rawin "
                      "(manifest.sig.bin) 或 ssh-keygen -Y verify (manifest.sshsig) 核验。",
    },
    "en": {
        "title": "Classified protection (MLPS 2.0) assessment record", "summary": "Summary",
        "system": "System", "department": "Department", "level": "Protection level", "label": "Grading (S/A)",
        "owner": "Owner", "range": "Time range", "collector": "Collector", "key": "Signing key fingerprint",
        "baselines": "Baselines", "generated": "Generated", "objects": "Assessment objects",
        "score": "Composite score", "pass_rate": "Check pass rate", "conclusion": "Conclusion",
        "verdicts": "Item verdicts", "statuses": "Check results", "high_risk": "High-risk findings",
        "problems": "Problems", "manual": "Manual assessments", "rectification": "Rectification",
        "history": "Score history", "risk_view": "Major risk hazards", "notes": "Notes", "no": "No.",
        "object": "Object", "clause": "Clause", "control": "Control point", "item": "Requirement item",
        "record": "Result record", "verdict": "Verdict", "weight": "Weight", "source": "Decided by",
        "checks": "Checks", "problem": "Problem", "remediation": "Remediation", "risk": "Risk level",
        "case": "High-risk guide case", "assessor": "Assessor", "time": "Time", "note": "Note",
        "attachments": "Attachments (name + SHA-256)", "effective": "Effective", "first_seen": "First seen",
        "fixed_at": "Fixed at", "status": "Status", "age": "Age (days)", "before": "Evidence before",
        "after": "Evidence after", "os": "OS", "addresses": "Addresses", "report": "Report",
        "automated": "automated", "manual_src": "manual", "yes": "yes", "no_": "no", "open": "open",
        "now_advisory": "now advisory (not counted)", "advisory_mark": "advisory, not counted",
        "fixed": "fixed", "waived": "waived", "observed": "observed", "expected": "expected",
        "evidence": "evidence", "reason": "reason", "none": "none", "pending_items": "Items pending review",
        "chain": "Result hash chain", "runs": "Reports", "anchor": "Chain anchor", "head": "Chain head",
        "zombie": "Zombie-system verdict", "zombie_window": "Window", "zombie_review": "Review",
        "zombie_idle": "idle resources", "zombie_stale": "maintenance stopped", "zombie_unused": "little use",
        "zombie_state_yes": "yes", "zombie_state_no": "no", "zombie_state_unknown": "unknown",
        "domestic": "Domestic products (国产化)", "domestic_category": "Category",
        "domestic_rate_host": "Domestic rate (hosts)", "domestic_rate_component": "Domestic rate (components)",
        "domestic_gm": "SM (国密) TLS", "domestic_components": "Components",
        "dr": "Disaster recovery (recovery point objective)", "dr_rpo": "RPO (hours)", "dr_copies": "Backup copies",
        "dr_newest": "Newest backup", "dr_age": "Age (hours)", "dr_offsite": "off-site",
        "dr_replication": "Database replication", "dr_checked": "Checked", "dr_where": "Where",
        "dr_realtime": "Off-site real-time backup",
        "dr_failover": "Failover targets (the data part of a DR centre, judged by the assessor)",
        "dr_lag": "Replication lag (s)", "dr_tool": "Tool", "dr_site": "Site", "dr_backups": "Backups",
        "dr_evaluated": "Judged at", "dr_copy": "Copy",
        "dr_rt_met": "met", "dr_rt_not_met": "not met", "dr_rt_unknown": "unknown", "dr_rt_none": "not declared",
        "to_now": "until export", "from_start": "from the first report", "host": "host", "zone": "network zone",
        "count": "Count", "applies": "Applies at level", "downgrade": "May be downgraded if",
        "confirm": "to be confirmed by the testing agency", "system_score": "System composite score",
        "undetermined": "undetermined", "raw_bodies": "Raw reports", "rect_title": "Rectification report",
        "risk_title": "High-risk findings and major risk hazards",
        "rect_ref": "first seen, fixed at and the evidence before and after for each finding are in the "
                    "rectification report (rectification.html).",
        "system_items": "System item verdicts", "network": "network",
        "host_findings": "Host check findings", "services": "Network services (found by network scans)",
        "port": "Port", "service": "Service", "closed_at": "Closed at", "svc_closed": "closed",
        "svc_open_ok": "open, no failing check", "svc_closed_title": "Closed services",
        "svc_open_title": "Services still open", "svc_before": "Evidence while open (last seen)",
        "svc_after": "scan #{scan} ({at}) found the port no longer open", "svc_summary": "Network services",
        "scope": "Scope", "title_col": "Title", "scoped_conclusion": "Conclusion (within the scope)",
        "chapters": "Report chapters",
        "to_fill": "to be filled in", "filled": "written", "from_data": "From data", "written_by": "Written by",
        "to_write": "to be written by the assessor", "chapter": "Chapter", "content": "Content",
        "objects_list": "Assessment objects (covered by data)", "kind": "Kind",
        "control_summary": "Item verdicts per control point",
        "scope_conclusion": "Within the scope: composite score {score}, conclusion {conclusion}.",
        "record_sheet": "Assessment record", "system_under": "System under assessment", "ip": "IP addresses",
        "extension": "Requirement part", "method": "Method", "score_col": "Weight", "remark": "Remarks",
        "version": "Version", "runs_on": "Runs on host", "purpose": "Purpose", "basis": "Basis",
        "how": "How assessed", "assessed_at": "Assessed on", "assessors": "Assessors", "reviewer": "Reviewed by",
        "confirmed": "Confirmed by the assessed unit", "to_fill_mark": "[to be filled in]",
        "m_check": "examination (collected automatically)", "m_scan": "testing (network scan)",
        "m_manual": "manual review", "m_pending": "manual review (to do)",
        "how_agent": "collected automatically: agent report {report} (run {run}), collector {collector}",
        "how_scan": "network scan #{scan} (run by collector {collector})", "checks_col": "Checks",
        "findings_fixed": "Findings fixed", "findings_open": "Findings open",
        "findings_other": "Closed, not counted as fixed (waived, now advisory)",
        "svc_closed_n": "Network services closed", "svc_failing_n": "Network services open, failing a check",
        "svc_ok_n": "Network services open, none failing",
        "verify": "How to check",
        "verify_how": "obtain the collector's signing key or fingerprint from its operator out of band (`sentinel key "
                      "show` on the collector), compare it with the fingerprint above, then run sentinel verify "
                      "<bundle> --fingerprint {fp}; only INTACT shows the evidence comes unaltered from that "
                      "collector, a different fingerprint or an unpinned check (UNVERIFIED) proves nothing. "
                      "The signature also verifies with openssl pkeyutl -verify -rawin (manifest.sig.bin) or "
                      "ssh-keygen -Y verify (manifest.sshsig).",
    },
}

RISK_LABEL = {"zh": {"high": "高", "medium": "中", "low": "低", None: "待定"},
              "en": {"high": "high", "medium": "medium", "low": "low", None: "undetermined"}}
STATUS_LABEL = {"zh": {"pass": "通过", "fail": "不通过", "error": "无法判定", "not_applicable": "不适用"},
                "en": {"pass": "pass", "fail": "fail", "error": "error", "not_applicable": "not applicable"}}
VERDICTS = [v.value for v in Verdict]


def lang_code(lang: str) -> Literal["zh", "en"]:
    """`lang` as the Literal the models declare; ValueError for any other, as labels() says."""
    if lang == "zh":
        return "zh"
    if lang == "en":
        return "en"
    raise ValueError(f"language {lang!r}: expected zh or en")


def labels(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise ValueError(f"language {lang!r}: expected zh or en")
    return LABELS[lang]


def scope_text(ev: SystemEvidence, lang: str) -> str:
    """What the data covers and what it does not, from the clauses of the items and the objects: printed on the
    cover and beside every conclusion, so a score is never read as the system's assessment conclusion."""
    layers = covered_layers(i.clause for i in ev.items) or covered_layers(
        i.clause for _, rep in ev.reports() for i in rep.items)
    covered = [LAYERS[k].get(lang) for k in layers]
    missing = [LAYERS[k].get(lang) for k in LAYERS if k not in layers]
    hosts = sum(1 for o in ev.objects if is_os(o))
    others = sum(1 for o in ev.objects if o.kind == "host" and not is_os(o))
    zones = sum(1 for o in ev.objects if o.kind != "host")
    if lang == "zh":
        what = (f"{hosts} 台主机的操作系统" + (f"、{others} 个数据库、中间件或 Web 服务器" if others else "")
                + (f"及 {zones} 个网络区域的网络扫描" if zones else ""))
        return (f"本报告的数据仅覆盖{'、'.join(covered) or '（无）'} "
                f"(GB/T 22239-2019 第 {ev.system.level} 级安全通用要求)：{what}。"
                f"{'、'.join(missing)}未覆盖，须由测评机构另行测评；得分与结论仅针对所覆盖范围，不是系统的等级测评结论。")
    what = (f"the operating systems of {hosts} host(s)"
            + (f", {others} database, middleware or web server object(s)" if others else "")
            + (f" and network scans of {zones} zone(s)" if zones else ""))
    return (f"The data in this report covers only {', '.join(covered) or '(nothing)'} (GB/T 22239-2019 level "
            f"{ev.system.level} general requirements): {what}. Not covered, to be assessed by the agency: "
            f"{', '.join(missing)}; the score and conclusion are for the covered scope only, not the system's "
            "assessment conclusion.")


@dataclass(frozen=True)
class Figures:
    """The counts a cover shows (report.html/.pdf, the workbook's 汇总 sheet, rectification.html), each with the one
    definition of docs/metrics.md "What the figures count": score, pass rate, conclusion, item verdicts and the
    high-risk count are the system roll-up's Summary (`scoring.summarize`, as the assessment API and /metrics
    have them); findings by state are `sentinel.store.findings.counts`, the tally behind sentinel_system_findings."""

    score: Optional[float]
    pass_rate: Optional[float]
    conclusion: str
    high_risk: int
    verdicts: dict[str, int]
    findings: dict[FindingState, int]  # open, fixed, waived, advisory (closed but not fixed)
    services_closed: int
    services_failing: int  # open, with a failing check
    services_ok: int  # open, no check failed

    @property
    def closed_not_fixed(self) -> int:
        return self.findings["waived"] + self.findings["advisory"]


def figures(ev: SystemEvidence) -> Figures:
    s = ev.summary
    still = [f for f in ev.service_findings if f.open]
    return Figures(score=s.score, pass_rate=s.pass_rate, conclusion=s.conclusion, high_risk=s.high_risk,
                   verdicts={v: s.verdicts.get(v, 0) for v in VERDICTS},
                   findings=finding_counts((f.resolved_at, f.resolution, 1) for f in ev.findings),
                   services_closed=len(ev.service_findings) - len(still),
                   services_failing=sum(1 for f in still if f.risk), services_ok=sum(1 for f in still if not f.risk))


#: GB/T 22239-2019's parts by the second number of a clause (8.1 安全通用要求, 8.2 云计算安全扩展要求 ...): the
#: 扩展标准 column of an agency's 测评记录表
PARTS = {"zh": {"1": "安全通用要求", "2": "云计算安全扩展要求", "3": "移动互联安全扩展要求", "4": "物联网安全扩展要求",
                "5": "工业控制系统安全扩展要求"},
         "en": {"1": "general requirements", "2": "cloud computing extension", "3": "mobile internet extension",
                "4": "IoT extension", "5": "industrial control extension"}}


def part_label(clause: str, lang: str) -> str:
    parts = clause.split(".")
    return PARTS[lang].get(parts[1], "") if len(parts) > 1 else ""


def sections_of(ev: SystemEvidence) -> list[SectionRecord]:
    """Every chapter a person writes, in template order; an evidence without them (older) shows all 待填写."""
    have = {s.key: s for s in ev.sections}
    return [have.get(spec.key) or SectionRecord(key=spec.key, number=spec.number, title=spec.title)
            for spec in SECTIONS]


@dataclass
class ControlRow:
    clause: str
    control: str
    counts: dict


def control_point_rows(ev: SystemEvidence, lang: str) -> list[ControlRow]:
    """单项测评 data: the system's item verdicts counted per control point."""
    rows: dict[str, ControlRow] = {}
    for i in ev.items:
        row = rows.setdefault(i.clause, ControlRow(i.clause, i.control.get(lang), {v: 0 for v in VERDICTS}))
        row.counts[i.verdict.value] += 1
    return [rows[k] for k in sorted(rows, key=lambda c: [int(x) if x.isdigit() else x for x in c.split(".")])]


def verify_hint(ev: SystemEvidence, lang: str) -> str:
    """How the agency checks who made the bundle, with this bundle's fingerprint: printed on every cover."""
    return labels(lang)["verify_how"].replace("{fp}", ev.collector.fingerprint)


def verdict_label(verdict: Verdict | str, lang: str) -> str:
    v = Verdict(verdict)
    return v.value if lang == "zh" else v.en


def conclusion_label(conclusion: str, lang: str) -> str:
    return conclusion if lang == "zh" else scoring.CONCLUSION_EN.get(conclusion, conclusion)


def fmt_time(t: Optional[datetime]) -> str:
    if t is None:
        return ""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_score(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.2f}"


def fmt_rate(v: Optional[float]) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def short(value: Any, limit: int = 300) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def range_text(ev: SystemEvidence, lang: str) -> str:
    lab = labels(lang)
    start = fmt_time(ev.range.start) if ev.range.start else lab["from_start"]
    return f"{start} — {fmt_time(ev.range.end)}"


def reason_text(r: CheckResult, lang: str) -> str:
    """A result's reason in `lang` (reports made before reason_zh existed have only the English)."""
    return (r.reason_zh if lang == "zh" and r.reason_zh else r.reason) or ""


def result_line(r: CheckResult, lang: str) -> str:
    """One check's result as an assessor records it: where and what was seen, and whether that meets the
    requirement (wording.seen). The raw observed value and the probe's expression stay in evidence.json.
    An advisory check says so, so its failure does not read as a gap of the host."""
    if r.advisory and not r.waiver:
        return f"{seen(r, lang)}（{labels(lang)['advisory_mark']}）" if lang == "zh" else \
            f"{seen(r, lang)} ({labels(lang)['advisory_mark']})"
    return seen(r, lang)


def item_record(item: ItemRecord, results: list[CheckResult], lang: str) -> str:
    """The 结果记录 cell: each check's observation, then the assessor's note if there is one."""
    lab = labels(lang)
    lines = [result_line(r, lang) for r in results]
    if item.manual is not None:
        how = lab["manual_src"] if item.source == "manual" else lab["note"]
        lines.append(f"{how} ({item.manual.assessor}, {fmt_time(item.manual.at)}): {item.manual.note or '—'}")
    if not lines:
        lines.append(lab["pending_items"] if item.verdict == Verdict.PENDING else "—")
    return "\n".join(lines)


@dataclass
class ItemRow:
    no: int
    clause: str
    control: str
    item: str
    text: str
    record: str
    verdict: str  # label in the export's language
    verdict_zh: str  # the Verdict value, for styling and data validation
    weight: float
    source: str
    checks: str


def item_rows(rep: ReportEvidence, lang: str) -> list[ItemRow]:
    lab = labels(lang)
    by_item: dict[tuple[str, str], list[CheckResult]] = {}
    for r in rep.results:
        by_item.setdefault((r.clause, r.item), []).append(r)
    rows = []
    for n, item in enumerate(rep.items, 1):
        record = item_record(item, by_item.get((item.clause, item.item), []), lang)
        source = lab["manual_src"] if item.source == "manual" else lab["automated"]
        rows.append(ItemRow(no=n, clause=item.clause, control=item.control.get(lang), item=item.item,
                            text=item.text.get(lang), record=record, verdict=verdict_label(item.verdict, lang),
                            verdict_zh=item.verdict.value, weight=item.weight, source=source,
                            checks=", ".join(item.checks)))
    return rows


@dataclass
class ProblemRow:
    no: int
    object: str
    clause: str
    item: str
    problem: str
    remediation: str
    risk: Optional[str]  # high / medium / low, None when undetermined (a manual verdict)
    risk_label: str
    case: str


def problem_rows(ev: SystemEvidence, lang: str) -> list[ProblemRow]:
    """Every failing counted check of the latest reports, and every item a person judged nonconforming."""
    rows: list[ProblemRow] = []
    manual: dict[tuple[str, str], tuple[ItemRecord, list[str]]] = {}
    order = {"high": 0, "medium": 1, "low": 2, None: 3}
    for obj, rep in ev.reports():
        for r in rep.results:
            level = scoring.risk_level(r)
            if level is None:
                continue
            rows.append(ProblemRow(0, obj.name, r.clause, r.item, gap(r, lang), r.remediation.get(lang), level,
                                   RISK_LABEL[lang][level], r.high_risk or ""))
        for item in rep.items:
            if item.source == "manual" and item.verdict in (Verdict.NONCONFORM, Verdict.PARTIAL):
                manual.setdefault((item.clause, item.item), (item, []))[1].append(obj.name)
    # A manual verdict is given for the system, so it is one problem, naming the objects it covers.
    for (clause, letter), (item, names) in manual.items():
        note = item.manual.note if item.manual else ""
        judged = (f"经人工核查判定为{verdict_label(item.verdict, lang)}：{note or '未填写核查说明'}"
                  f"（测评项：{item.text.get(lang)}）") if lang == "zh" else \
            (f"judged {verdict_label(item.verdict, lang)} on manual review: {note or 'no note given'} "
             f"(requirement: {item.text.get(lang)})")
        rows.append(ProblemRow(0, ", ".join(names), clause, letter, judged, "", None, RISK_LABEL[lang][None], ""))
    rows.sort(key=lambda p: (order[p.risk], p.object, p.clause, p.item))
    for n, row in enumerate(rows, 1):
        row.no = n
    return rows


#: what a 测评对象 on a host is, as a record's asset list groups them (操作系统 / 数据库 / 中间件 / Web 服务器)
OBJECT_KINDS = {"zh": {"os": "主机", "mysql": "数据库", "postgresql": "数据库", "redis": "数据库",
                       "tomcat": "中间件", "nginx": "Web 服务器", "httpd": "Web 服务器"},
                "en": {"os": "host", "mysql": "database", "postgresql": "database", "redis": "database",
                       "tomcat": "middleware", "nginx": "web server", "httpd": "web server"}}
_KIND_ORDER = {"os": 0, "mysql": 1, "postgresql": 1, "redis": 1, "tomcat": 2, "nginx": 3, "httpd": 3}


def is_os(obj: ObjectEvidence) -> bool:
    """A host's OS (bundles made before objects name no object kind: their hosts are OSes)."""
    return obj.kind == "host" and obj.object in (None, "os")


def object_kind_label(obj: ObjectEvidence, lang: str) -> str:
    if obj.kind != "host":
        return labels(lang)["zone"]
    return OBJECT_KINDS[lang][obj.object or "os"]


def objects_by_kind(ev: SystemEvidence) -> list[ObjectEvidence]:
    """The objects as the asset list shows them: hosts' OSes, databases, middleware, web servers, then zones."""
    return sorted(ev.objects, key=lambda o: (o.kind != "host", _KIND_ORDER.get(o.object or "os", 9), o.name))


def object_title(obj: ObjectEvidence, lang: str) -> str:
    """The title of an object's 测评记录: a host's OS by the host, any other object by its 测评对象 name."""
    lab = labels(lang)
    if obj.kind == "host" and not is_os(obj):
        return obj.name
    return f"{lab['host'] if obj.kind == 'host' else lab['zone']} {obj.name}"


def finding_age_days(f: FindingRecord, as_of: datetime) -> float:
    end = f.resolved_at or as_of
    return round(max((end - f.first_seen).total_seconds(), 0) / 86400, 1)


def finding_state(f: FindingRecord, lang: str) -> str:
    lab = labels(lang)
    if f.resolved_at is None:
        return lab["open"]
    return {"waived": lab["waived"], "advisory": lab["now_advisory"]}.get(f.resolution or "", lab["fixed"])


def evidence_text(r: Optional[CheckResult], lang: str) -> str:
    """A check result for before/after columns: where and what was seen (the places carry the excerpts; all
    of them, verbatim, are in evidence/<object>/*.txt), and the judgement."""
    if r is None:
        return "—"
    return result_line(r, lang)
