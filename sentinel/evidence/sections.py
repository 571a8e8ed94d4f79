"""The chapters of the 2021 等级测评报告 template that a person writes, and the scope of what sentinel covers.

sentinel fills from data what data can give: grading (定级), the objects, per-item 结果记录, the problems, risk
levels, 整改建议, the hash chain. The rest — the project overview, the business and topology, the 单项测评小结
an assessor writes per control point, 整体测评 (compensation across control points, layers and areas), the
risk analysis by threat and impact, and the formal 等级测评结论 — is recorded per system by a person, through
`PUT /api/v1/systems/{id}/report-sections/{key}` or `sentinel report-section set`, append-only like manual
assessments (the latest per key counts). An export shows every chapter, its text, or 待填写 until written.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Optional

from ..model import Text

if TYPE_CHECKING:  # the store is imported where it is used, as at run time
    from sqlmodel import Session

    from ..store.models import ReportSection

MAX_SECTION_CHARS = 100_000  # one chapter; a whole report is rarely more than this


@dataclass(frozen=True)
class SectionSpec:
    key: str
    number: str  # the chapter in the 2021 template
    title: Text
    hint: Text  # what the assessor writes here
    data: Optional[Text]  # what the export adds from data beside the text (None: nothing)


def _t(zh: str, en: str) -> Text:
    return Text(zh=zh, en=en)


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("overview", "1", _t("测评项目概述", "Assessment project overview"),
                _t("测评目的、测评依据、测评过程 (时间、人员、方法)、报告分发范围。",
                   "Purpose, basis, process (dates, people, methods) and distribution of the report."), None),
    SectionSpec("business", "2.1", _t("被测对象描述：业务和采用的技术", "Target: business and technology"),
                _t("承载的业务、服务对象、采用的技术 (含云、移动、物联网等)。",
                   "The business carried, who it serves, the technology used (cloud, mobile, IoT ...)."),
                _t("定级结果见封面。", "The grading is on the cover.")),
    SectionSpec("topology", "2.2", _t("被测对象描述：网络结构", "Target: network structure"),
                _t("网络拓扑、区域划分与边界、与外部的连接；可附拓扑图 (人工核查附件)。",
                   "Topology, zones and boundaries, external connections; attach the diagram to a manual item."),
                _t("网络区域取自系统登记的区域与扫描范围。",
                   "Zones are the system's registered zones and scan scope.")),
    SectionSpec("assets", "2.3", _t("被测对象描述：测评对象 (按类别)", "Target: assessment objects by kind"),
                _t("物理机房、网络设备、安全设备、服务器/存储、终端、系统管理软件、业务应用、数据类别、安全相关人员、安全管理文档中"
                   "本报告数据未覆盖者。",
                   "Machine rooms, network and security devices, servers/storage, terminals, management software, "
                   "applications, data classes, staff and documents that the data here does not cover."),
                _t("已覆盖的测评对象 (主机操作系统、网络扫描) 由数据列出。",
                   "The objects covered (host operating systems, network scans) are listed from data.")),
    SectionSpec("single_summary", "3", _t("单项测评小结", "Per-control-point summary"),
                _t("逐个安全控制点的小结：主要问题及其影响。",
                   "For each control point: the main problems and their effect."),
                _t("各安全控制点的测评项符合情况由数据统计。",
                   "Item verdicts per control point are counted from data.")),
    SectionSpec("overall", "4", _t("整体测评", "Overall assessment"),
                _t("安全控制点间、层面间、区域间的补偿与关联：哪些不符合项由其他措施弥补，风险是否因此降低。",
                   "Compensation across control points, layers and areas: which gaps other measures make up for, "
                   "and whether that lowers the risk."), None),
    SectionSpec("risk_analysis", "5", _t("安全问题风险分析", "Risk analysis of the problems"),
                _t("按威胁来源、可能性和影响分析各问题的风险，必要时调整风险等级。",
                   "Each problem's risk by threat, likelihood and impact; adjust the levels where needed."),
                _t("问题清单与按检查严重程度给出的风险等级由数据列出。",
                   "The problems and their risk levels by check severity are listed from data.")),
    SectionSpec("conclusion", "6", _t("等级测评结论", "Assessment conclusion"),
                _t("测评机构对被测系统的等级测评结论 (符合/基本符合/不符合) 及依据。",
                   "The agency's conclusion for the system (conforms / basically conforms / does not) and why."),
                _t("覆盖范围内的综合得分与结论由数据计算，不是系统的等级测评结论。",
                   "The score and conclusion over the covered scope are computed from data; they are not the "
                   "system's assessment conclusion.")),
    SectionSpec("advice", "7", _t("安全问题整改建议", "Rectification advice"),
                _t("对数据所列整改建议的补充：优先次序、管理措施、跨对象的整改。",
                   "Beyond the listed remediation: priorities, management measures, changes across objects."),
                _t("每个问题的整改建议由数据列出。", "Each problem's remediation is listed from data.")),
)
BY_KEY = {s.key: s for s in SECTIONS}

# GB/T 22239-2019 general requirements, by the third number of the clause (8.1.4.x: 安全计算环境 at level 3).
LAYERS = {"1": _t("安全物理环境", "physical environment"), "2": _t("安全通信网络", "communication network"),
          "3": _t("安全区域边界", "area boundary"), "4": _t("安全计算环境", "computing environment"),
          "5": _t("安全管理中心", "management centre"), "6": _t("安全管理制度", "management policies"),
          "7": _t("安全管理机构", "management organisation"), "8": _t("安全管理人员", "management staff"),
          "9": _t("安全建设管理", "construction management"), "10": _t("安全运维管理", "operation management")}


class SectionError(ValueError):
    """A section key or text that cannot be recorded; the message names what and why."""


def spec(key: str) -> SectionSpec:
    s = BY_KEY.get(key)
    if s is None:
        raise SectionError(f"report section {key!r}: expected one of {', '.join(BY_KEY)}")
    return s


def check_text(text: str) -> str:
    if not text.strip():
        raise SectionError("text: empty; write the chapter's content (an empty text would read as written)")
    if len(text) > MAX_SECTION_CHARS:
        raise SectionError(f"text: {len(text)} characters, more than the {MAX_SECTION_CHARS} a chapter may hold")
    if "\x00" in text:
        raise SectionError("text: contains a NUL character")
    return text


def layer_of(clause: str) -> Optional[str]:
    """The general-requirement layer key of a clause (`8.1.4.2` -> `4`), None for extensions (8.2...)."""
    parts = clause.split(".")
    if len(parts) >= 3 and parts[1] == "1" and parts[2] in LAYERS:
        return parts[2]
    return None


def covered_layers(clauses: Iterable[str]) -> list[str]:
    return sorted({k for k in (layer_of(c) for c in clauses) if k}, key=int)


def latest_sections(session: Session, system_id: int, end: Optional[datetime] = None) -> dict[str, ReportSection]:
    """key -> the latest ReportSection row as of `end` (all of them without it)."""
    from sqlmodel import select

    from ..store.models import ReportSection

    stmt = select(ReportSection).where(ReportSection.system_id == system_id)
    if end is not None:
        stmt = stmt.where(ReportSection.at <= end)
    out: dict[str, ReportSection] = {}
    for row in session.exec(stmt.order_by(ReportSection.id)):
        out[row.key] = row
    return out
