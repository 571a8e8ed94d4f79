"""The 通报 as a document: DOCX (python-docx, the format offices pass on) and PDF (WeasyPrint, as the evidence
report), in Chinese, headed by the issuing authority (红头), with the document number, the date, the department
addressed and one numbered row per problem with its grade, deadline and verified state.

Here in the core rather than in exporters/ (which the core never imports): the collector serves these documents
itself. WeasyPrint is the `pdf` extra; without it the PDF is refused with the reason (PdfUnavailable)."""
from __future__ import annotations

import html
import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ..store.models import Department, Notice, NoticeItem, System

#: documents are dated as the office reads its calendar (the notice times are UTC in the store)
LOCAL = ZoneInfo("Asia/Shanghai")
STATE_ZH = {"open": "未整改", "fixed": "已整改（复核通过）", "overdue": "逾期未整改"}
COLUMNS = ("序号", "系统", "问题", "位置", "依据", "等级", "整改期限", "状态")


def cn_date(at: datetime) -> str:
    local = at.astimezone(LOCAL)
    return f"{local.year}年{local.month}月{local.day}日"


@dataclass
class NoticeDocument:
    notice: Notice
    department: Department
    items: list[NoticeItem]
    systems: dict[int, System]

    @property
    def title(self) -> str:
        if self.notice.kind == "event":
            return f"关于{self.addressee}网络安全事件的紧急通报"
        return f"关于{self.addressee}网络安全问题整改的通报"

    @property
    def addressee(self) -> str:
        return self.department.title or self.department.name

    def body(self) -> list[str]:
        n = self.notice
        overdue = sum(1 for i in self.items if i.state == "overdue")
        period = ""
        if n.period_start and n.period_end:
            period = f"{cn_date(n.period_start)}至{cn_date(n.period_end)}，"
        lines = []
        if n.kind == "event" and n.reason:
            lines.append(f"事由：{n.reason}")
        lines.append(f"{period}依据《信息安全技术 网络安全等级保护基本要求》（GB/T 22239-2019）及政府网站检查指标，"
                     f"经监测，你单位共有{len(self.items)}项网络安全问题尚未整改"
                     + (f"，其中{overdue}项已超过整改期限" if overdue else "") + "。")
        lines.append("请按下表所列期限完成整改，并通过监测平台逐项反馈整改情况（整改措施及证明材料）。"
                     "平台将在下一次检测中复核，复核通过的问题予以销号，逾期未整改的问题将予以升级通报。")
        return lines

    def rows(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for i in self.items:
            system = self.systems.get(i.system_id)
            out.append((str(i.seq), system.title or system.name if system else str(i.system_id), i.title.get("zh", ""),
                        i.location, i.basis, i.grade, cn_date(i.deadline), STATE_ZH.get(i.state, i.state)))
        return out


def to_docx(doc: NoticeDocument) -> bytes:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    d = Document()
    normal = d.styles["Normal"]
    normal.font.name = "SimSun"
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")  # Word picks CJK glyphs from the eastAsia font

    def centred(text: str, size: int, bold: bool = False, red: bool = False) -> None:
        p = d.add_paragraph()
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = p.add_run(text)
        run.font.size, run.bold = Pt(size), bold
        if red:
            run.font.color.rgb = RGBColor(0xC0, 0x00, 0x00)

    centred(doc.notice.authority, 26, bold=True, red=True)
    centred(doc.notice.number, 14)
    centred(doc.title, 18, bold=True)
    d.add_paragraph(f"{doc.addressee}：")
    for line in doc.body():
        d.add_paragraph(line)
    table = d.add_table(rows=1, cols=len(COLUMNS))
    table.style = "Table Grid"
    for cell, name in zip(table.rows[0].cells, COLUMNS, strict=True):
        cell.text = name
    for row in doc.rows():
        for cell, value in zip(table.add_row().cells, row, strict=True):
            cell.text = value
    d.add_paragraph("整改建议：")
    for i in doc.items:
        d.add_paragraph(f"{i.seq}. {i.remediation.get('zh', '')}")
    for text in (doc.notice.authority, cn_date(doc.notice.issued_at)):
        p = d.add_paragraph(text)
        p.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def to_html(doc: NoticeDocument) -> str:
    e = html.escape
    rows = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in doc.rows())
    advice = "".join(f"<p>{i.seq}. {e(i.remediation.get('zh', ''))}</p>" for i in doc.items)
    body = "".join(f"<p class='text'>{e(line)}</p>" for line in doc.body())
    return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{e(doc.notice.number)}</title>
<style>
@page {{ size: A4; margin: 2cm; }}
body {{ font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; font-size: 11pt; }}
.authority {{ color: #c00000; font-size: 26pt; font-weight: bold; text-align: center; }}
.number {{ text-align: center; border-bottom: 2px solid #c00000; padding-bottom: 6pt; }}
h1 {{ font-size: 16pt; text-align: center; }}
table {{ border-collapse: collapse; width: 100%; font-size: 9pt; }}
td, th {{ border: 1px solid #333; padding: 3pt; vertical-align: top; }}
.sign {{ text-align: right; }}
</style></head><body>
<div class="authority">{e(doc.notice.authority)}</div>
<div class="number">{e(doc.notice.number)}</div>
<h1>{e(doc.title)}</h1>
<p>{e(doc.addressee)}：</p>{body}
<table><thead><tr>{"".join(f"<th>{c}</th>" for c in COLUMNS)}</tr></thead><tbody>{rows}</tbody></table>
<p>整改建议：</p>{advice}
<p class="sign">{e(doc.notice.authority)}</p><p class="sign">{cn_date(doc.notice.issued_at)}</p>
</body></html>"""


class PdfUnavailable(RuntimeError):
    pass


def _refuse_fetch(url: str, *args: object, **kwargs: object) -> dict[str, object]:
    # the document is self-contained; anything it would fetch is a bug, and the collector never goes online for it
    raise ValueError(f"the notice must not load external resources ({url[:80]})")


def to_pdf(doc: NoticeDocument) -> bytes:
    try:
        import weasyprint
    except Exception as exc:  # ImportError, or OSError when Pango is missing
        raise PdfUnavailable(f"PDF needs WeasyPrint and Pango (pip install 'sentinel-dengbao[pdf]'): "
                             f"{type(exc).__name__}: {exc}") from None
    return weasyprint.HTML(string=to_html(doc), url_fetcher=_refuse_fetch).write_pdf()
