"""HTML report (jinja2 templates shipped in exporters/evidence/templates/): Chinese by default, English
with lang="en"; readable on screen and printable (print CSS, A4 landscape); the score chart is inline
SVG, so nothing is fetched and no script runs."""
from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sentinel.evidence.model import SystemEvidence
from sentinel.evidence.sections import BY_KEY

from .chart import score_chart
from .common import (
    RISK_LABEL,
    VERDICTS,
    conclusion_label,
    control_point_rows,
    figures,
    fmt_rate,
    fmt_score,
    fmt_time,
    item_rows,
    labels,
    object_kind_label,
    object_title,
    objects_by_kind,
    problem_rows,
    range_text,
    scope_text,
    sections_of,
    verdict_label,
    verify_hint,
)
from .rectification import rectification_rows, service_rectification_rows
from .risk import high_risk_entries, paste_text


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("sentinel.exporters.evidence", "templates"),
                      autoescape=select_autoescape(["j2", "html"], default_for_string=True, default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(fmt_time=fmt_time, fmt_score=fmt_score, fmt_rate=fmt_rate, verdict_label=verdict_label,
                       conclusion_label=conclusion_label)
    return env


def _common(ev: SystemEvidence, lang: str) -> dict:
    """What every cover shows; `fig` holds its counts (common.figures: the definitions the metrics and the API
    count with), `conclusion` the scoped conclusion's label."""
    fig = figures(ev)
    return {"ev": ev, "lang": lang, "lab": labels(lang), "range_text": range_text(ev, lang),
            "verify_hint": verify_hint(ev, lang), "scope": scope_text(ev, lang), "fig": fig,
            "conclusion": conclusion_label(fig.conclusion, lang)}


def render_html(ev: SystemEvidence, lang: str = "zh") -> str:
    lab = labels(lang)
    objects = [{"obj": o, "title": object_title(o, lang),
                "reports": [{"rep": rep, "rows": item_rows(rep, lang)} for rep in o.reports]} for o in ev.objects]
    return environment().get_template("report.html.j2").render(
        **_common(ev, lang), still=[f for f in ev.findings if f.open], verdicts=VERDICTS, objects=objects,
        problems=problem_rows(ev, lang), high=high_risk_entries(ev, lang),
        risk_text=paste_text(ev, lang), risk_labels=RISK_LABEL[lang],
        chapters=[{"rec": rec, "spec": BY_KEY[rec.key]} for rec in sections_of(ev)],
        control_rows=control_point_rows(ev, lang), assets=objects_by_kind(ev), kind_label=object_kind_label,
        chart=score_chart(ev.score_history, f"{lab['history']} — {ev.system.name}", lab["none"]))


def render_rectification_html(ev: SystemEvidence, lang: str = "zh") -> str:
    resolved, still = rectification_rows(ev, lang)
    svc_closed, svc_open = service_rectification_rows(ev, lang)
    return environment().get_template("rectification.html.j2").render(**_common(ev, lang), resolved=resolved,
                                                                      still=still, svc_closed=svc_closed,
                                                                      svc_open=svc_open)
