#!/usr/bin/env python3
"""Generate sentinel's Grafana dashboards (JSON) into deploy/grafana/dashboards/.

    python deploy/grafana/generate.py            # rewrite the JSON files
    python deploy/grafana/generate.py --check    # exit 1 if the committed JSON differs from what this makes

The JSON is committed so Grafana's file provisioning can load it as is; tests/test_dashboards.py checks that
the files match this script, that every query parses and returns data in a real Prometheus, and that every
metric a query names is one exporters/prometheus.py exports. Titles are bilingual: 中文 / English.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "sentinel"

SYS = 'department=~"$department", system=~"$system"'
DEPT = 'department=~"$department"'
HOST = 'department=~"$department", system=~"$system", host=~"$host"'

CONCLUSION_MAPPING = [{"type": "value", "options": {
    "0": {"text": "差 poor", "color": "red"}, "1": {"text": "中 fair", "color": "orange"},
    "2": {"text": "良 good", "color": "yellow"}, "3": {"text": "优 excellent", "color": "green"}}}]
UP_MAPPING = [{"type": "value", "options": {"0": {"text": "失联 silent", "color": "red"},
                                            "1": {"text": "在线 up", "color": "green"}}}]
SCORE_THRESHOLDS = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "orange", "value": 70},
                                                  {"color": "yellow", "value": 80}, {"color": "green", "value": 90}]}
COUNT_BAD_THRESHOLDS = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}

# sentinel_system_conclusion as one number per system: 3 优, 2 良, 1 中, 0 差 (undetermined: no value)
CONCLUSION_CODE = ('max by (department, system) ('
                   '(sentinel_system_conclusion{%s, conclusion="excellent"} == 1) * 3 or '
                   '(sentinel_system_conclusion{%s, conclusion="good"} == 1) * 2 or '
                   '(sentinel_system_conclusion{%s, conclusion="fair"} == 1) * 1 or '
                   '(sentinel_system_conclusion{%s, conclusion="poor"} == 1) * 0)')


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False, ref: str = "A") -> dict:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    if table:
        t["format"] = "table"
    return t


def panel(kind: str, title: str, targets: list[dict], *, w: int = 6, h: int = 6, unit: str = "",
          desc: str = "", minv: Optional[float] = None, maxv: Optional[float] = None,
          thresholds: Optional[dict] = None, mappings: Optional[list] = None, options: Optional[dict] = None,
          transformations: Optional[list] = None, overrides: Optional[list] = None) -> dict:
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    if thresholds:
        defaults["thresholds"] = thresholds
        defaults["color"] = {"mode": "thresholds"}
    if mappings:
        defaults["mappings"] = mappings
    p: dict[str, Any] = {"type": kind, "title": title, "datasource": DS, "targets": targets,
                         "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
                         "options": options or {}, "gridPos": {"w": w, "h": h}}
    if desc:
        p["description"] = desc
    if transformations:
        p["transformations"] = transformations
    return p


def stat(title: str, expr: str, **kw: Any) -> dict:
    kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""},
                              "colorMode": "background", "graphMode": "none", "textMode": "auto"})
    return panel("stat", title, [target(expr, instant=True)], **kw)


def timeseries(title: str, targets: list[dict], **kw: Any) -> dict:
    kw.setdefault("w", 12)
    kw.setdefault("h", 8)
    kw.setdefault("options", {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
                              "tooltip": {"mode": "multi", "sort": "desc"}})
    return panel("timeseries", title, targets, **kw)


def table(title: str, targets: list[dict], *, rename: Optional[dict] = None, hide: tuple[str, ...] = (),
          **kw: Any) -> dict:
    kw.setdefault("w", 24)
    kw.setdefault("h", 9)
    excluded = {"Time": True, "__name__": True, "job": True, "instance": True, **{k: True for k in hide}}
    transformations = [{"id": "merge", "options": {}} if len(targets) > 1 else {"id": "labelsToFields", "options": {}},
                       {"id": "organize", "options": {"excludeByName": excluded, "renameByName": rename or {}}}]
    kw.setdefault("options", {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}})
    return panel("table", title, targets, transformations=transformations, **kw)


def bars(title: str, expr: str, legend: str, **kw: Any) -> dict:
    kw.setdefault("w", 12)
    kw.setdefault("h", 8)
    kw.setdefault("options", {"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
                              "reduceOptions": {"calcs": ["lastNotNull"], "values": False, "fields": ""}})
    return panel("bargauge", title, [target(expr, legend, instant=True)], **kw)


def var_query(name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True) -> dict:
    v: dict[str, Any] = {"name": name, "label": label, "type": "query", "datasource": DS,
                         "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
                         "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
                         "current": {}, "options": [], "hide": 0}
    if include_all:
        v["allValue"] = ".*"
    return v


DATASOURCE_VAR = {"name": "datasource", "label": "数据源 Data source", "type": "datasource", "query": "prometheus",
                  "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}
V_DEPT = var_query("department", "部门 Department", "label_values(sentinel_system_info, department)")
V_SYS = var_query("system", "系统 System", 'label_values(sentinel_system_info{department=~"$department"}, system)')
V_SYS_ONE = var_query("system", "系统 System", 'label_values(sentinel_system_info{department=~"$department"}, system)',
                      multi=False, include_all=False)
V_HOST_ONE = var_query("host", "主机 Host", f'label_values(sentinel_host_info{{{SYS}}}, host)',
                       multi=False, include_all=False)


def layout(panels: list[dict]) -> list[dict]:
    """Places panels left to right, wrapping at 24 columns; assigns ids."""
    x = y = row_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y = 0, y + row_h
            row_h = 0
        p = {**p, "id": i, "gridPos": {"x": x, "y": y, "w": w, "h": h}}
        out.append(p)
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return out


def dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict],
              time_from: str = "now-7d") -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": [TAG, "等保2.0", "compliance"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "refresh": "1m", "time": {"from": time_from, "to": "now"},
        "templating": {"list": [DATASOURCE_VAR, *variables]},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": [TAG], "asDropdown": True, "title": "Sentinel 仪表盘 dashboards",
                   "includeVars": True, "keepTime": True}],
        "panels": layout(panels),
    }


# ---- the dashboards --------------------------------------------------------------------------------


def overview() -> dict:
    return dashboard(
        "sentinel-overview", "等保合规总览 / Compliance overview",
        "All departments and systems: scores, conclusions, high-risk findings and their trend (态势感知).",
        [V_DEPT],
        [
            stat("定级系统 / Systems", f"count(sentinel_system_info{{{DEPT}}}) or vector(0)", w=4, unit="none"),
            stat("平均得分 / Average score", f"avg(sentinel_system_score{{{DEPT}}})", w=4, unit="none", minv=0,
                 maxv=100, thresholds=SCORE_THRESHOLDS),
            stat("高风险问题 / High-risk findings", f"sum(sentinel_system_high_risk_findings{{{DEPT}}}) or vector(0)",
                 w=4, thresholds=COUNT_BAD_THRESHOLDS),
            stat("禁止端口开放 / Forbidden services", f"sum(sentinel_system_forbidden_services{{{DEPT}}}) or vector(0)",
                 w=4, thresholds=COUNT_BAD_THRESHOLDS),
            stat("失联主机 / Silent hosts", f"count(sentinel_host_up{{{DEPT}}} == 0) or vector(0)", w=4,
                 thresholds=COUNT_BAD_THRESHOLDS),
            stat("未整改问题 / Open findings", f'sum(sentinel_system_findings{{{DEPT}, state="open"}}) or vector(0)',
                 w=4, thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                {"color": "orange", "value": 1}]}),
            bars("各系统得分 / Score by system", f"sentinel_system_score{{{DEPT}}}", "{{department}} / {{system}}",
                 unit="none", minv=0, maxv=100, thresholds=SCORE_THRESHOLDS, h=10),
            panel("piechart", "测评结论分布 / Conclusions",
                  [target(f"sum by (conclusion) (sentinel_system_conclusion{{{DEPT}}})", "{{conclusion}}",
                          instant=True)],
                  w=6, h=10, options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                                      "pieType": "donut", "legend": {"displayMode": "table", "placement": "bottom",
                                                                     "values": ["value"]}},
                  desc="excellent=优 good=良 fair=中 poor=差 undetermined=待定"),
            bars("各部门平均得分 / Average score by department",
                 f"avg by (department) (sentinel_system_score{{{DEPT}}})", "{{department}}", w=6, h=10,
                 unit="none", minv=0, maxv=100, thresholds=SCORE_THRESHOLDS),
            timeseries("得分趋势 / Score trend", [target(f"sentinel_system_score{{{DEPT}}}", "{{system}}")],
                       unit="none", minv=0, maxv=100),
            timeseries("高风险问题趋势 / High-risk findings trend",
                       [target(f"sum by (department) (sentinel_system_high_risk_findings{{{DEPT}}})",
                               "{{department}}")]),
            timeseries("未通过检查项（按严重程度）/ Failing checks by severity",
                       [target(f"sum by (severity) (sentinel_system_failing_checks{{{DEPT}}})", "{{severity}}")],
                       options={"legend": {"displayMode": "list", "placement": "bottom"},
                                "tooltip": {"mode": "multi"}}, w=24,
                       overrides=[{"matcher": {"id": "byName", "options": n},
                                   "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}]}
                                  for n, c in (("critical", "dark-red"), ("high", "red"), ("medium", "orange"),
                                               ("low", "yellow"))]),
            table("系统一览 / Systems",
                  [target(f"sentinel_system_info{{{DEPT}}}", table=True, instant=True, ref="A"),
                   target(f"sentinel_system_score{{{DEPT}}}", table=True, instant=True, ref="B"),
                   target(CONCLUSION_CODE % (DEPT, DEPT, DEPT, DEPT), table=True, instant=True, ref="C"),
                   target(f"sentinel_system_high_risk_findings{{{DEPT}}}", table=True, instant=True, ref="D")],
                  rename={"department": "部门 Department", "system": "系统 System", "level": "等级 Level",
                          "label": "定级 S/A", "Value #A": "", "Value #B": "得分 Score",
                          "Value #C": "结论 Conclusion", "Value #D": "高风险 High risk"},
                  hide=("Value #A",),
                  overrides=[{"matcher": {"id": "byName", "options": "Value #C"},
                              "properties": [{"id": "mappings", "value": CONCLUSION_MAPPING},
                                             {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}]),
            # 僵尸信息系统 (docs/zombie.md): what is suspected, and whether a person has reviewed it (审)
            stat("疑似僵尸系统 / Suspected zombie systems",
                 f'count(sentinel_system_zombie_verdict{{{DEPT}, verdict=~"suspect|zombie"}} == 1) or vector(0)',
                 w=6, h=9, thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                    {"color": "orange", "value": 1}]},
                 desc="suspect=疑似僵尸 zombie=僵尸: idle resources, stopped maintenance, little use "
                      "(GET /api/v1/zombie for the evidence)"),
            table("僵尸信息系统 / Zombie-system verdicts",
                  [target(f'sentinel_system_zombie_verdict{{{DEPT}, verdict=~"suspect|zombie"}} == 1', table=True,
                          instant=True, ref="A"),
                   target(f'max by (department, system) (sentinel_host_idle_seconds{{{DEPT}}}) / 86400', table=True,
                          instant=True, ref="B"),
                   target(f'sum by (department, system) (sentinel_system_zombie_reviewed{{{DEPT}}})', table=True,
                          instant=True, ref="C")],
                  w=18, rename={"department": "部门 Department", "system": "系统 System", "verdict": "判定 Verdict",
                                "Value #A": "", "Value #B": "最长闲置天数 Most idle days (host)",
                                "Value #C": "已审 Reviewed"},
                  hide=("Value #A",),
                  overrides=[{"matcher": {"id": "byName", "options": "verdict"},
                              "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                                  "suspect": {"text": "疑似僵尸 suspect", "color": "orange"},
                                  "zombie": {"text": "僵尸 zombie", "color": "red"}}}]},
                                             {"id": "custom.cellOptions", "value": {"type": "color-background"}}]},
                             {"matcher": {"id": "byName", "options": "Value #C"},
                              "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                                  "0": {"text": "未审 not reviewed", "color": "orange"},
                                  "1": {"text": "已审 reviewed", "color": "green"}}}]}]}]),
            # 数据备份恢复 (docs/backups.md): which systems miss their recovery point objective, by department
            stat("未满足RPO系统 / Systems missing their RPO",
                 f'count(sentinel_system_backup_rpo_verdict{{{DEPT}, verdict="misses"}} == 1) or vector(0)',
                 w=6, h=9, thresholds=COUNT_BAD_THRESHOLDS,
                 desc="a host's newest local or off-site backup is older than the RPO its site declares "
                      "(GET /api/v1/dr?verdict=misses for the evidence)"),
            bars("各部门未满足RPO系统 / Systems missing their RPO by department",
                 f'count by (department) (sentinel_system_backup_rpo_verdict{{{DEPT}, verdict="misses"}} == 1)',
                 "{{department}}", w=18, h=9, thresholds=COUNT_BAD_THRESHOLDS),
            table("数据备份恢复 / Disaster recovery (RPO)",
                  [target(f'sentinel_system_backup_rpo_verdict{{{DEPT}, verdict=~"misses|unknown"}} == 1',
                          table=True, instant=True, ref="A"),
                   target(f'sentinel_system_backup_rpo_seconds{{{DEPT}}} / 3600', table=True, instant=True, ref="B"),
                   # by (department, system): the scope and state labels would keep the merged rows apart
                   target(f'max by (department, system) (time() - sentinel_system_backup_newest_timestamp_seconds'
                          f'{{{DEPT}, scope="local"}}) / 3600', table=True, instant=True, ref="C"),
                   target(f'max by (department, system) (time() - sentinel_system_backup_newest_timestamp_seconds'
                          f'{{{DEPT}, scope="offsite"}}) / 3600', table=True, instant=True, ref="D"),
                   target(f'sentinel_system_backup_copies{{{DEPT}}}', table=True, instant=True, ref="E"),
                   target(f'sentinel_system_backup_offsite_copies{{{DEPT}}}', table=True, instant=True, ref="F"),
                   target(f'max by (department, system) (sentinel_system_replication_hosts{{{DEPT}, state="broken"}})',
                          table=True, instant=True, ref="G"),
                   target(f'sentinel_system_replication_lag_seconds{{{DEPT}}}', table=True, instant=True, ref="H")],
                  rename={"department": "部门 Department", "system": "系统 System", "verdict": "判定 Verdict",
                          "Value #A": "", "Value #B": "RPO (h)", "Value #C": "本地最新备份 Local newest (h ago)",
                          "Value #D": "异地最新备份 Off-site newest (h ago)", "Value #E": "副本 Copies",
                          "Value #F": "异地副本 Off-site copies", "Value #G": "复制中断主机 Broken replication",
                          "Value #H": "复制延迟 Replication lag (s)"},
                  hide=("Value #A",),
                  overrides=[{"matcher": {"id": "byName", "options": "verdict"},
                              "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                                  "misses": {"text": "未满足 misses", "color": "red"},
                                  "unknown": {"text": "未知 unknown", "color": "orange"}}}]},
                                             {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}]),
            # the 通报 loop (docs/notices.md): each department's notified problems, open, fixed and overdue
            table("通报整改 / Notified problems by department",
                  [target(f'sum by (department) (sentinel_system_notice_problems{{{DEPT}, state="{state}"}})',
                          table=True, instant=True, ref=ref)
                   for ref, state in (("A", "open"), ("B", "fixed"), ("C", "overdue"))],
                  rename={"department": "部门 Department", "Value #A": "未整改 Open", "Value #B": "已整改 Fixed",
                          "Value #C": "逾期 Overdue"},
                  overrides=[{"matcher": {"id": "byName", "options": "Value #C"},
                              "properties": [{"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                  {"color": "green", "value": None}, {"color": "red", "value": 1}]}},
                                             {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}]),
        ])


def system() -> dict:
    return dashboard(
        "sentinel-system", "系统详情 / System drill-down",
        "One system: score, conclusion, control points with failing checks, failing items by severity, hosts.",
        [V_DEPT, V_SYS_ONE],
        [
            stat("得分 / Score", f"sentinel_system_score{{{SYS}}}", w=4, minv=0, maxv=100,
                 thresholds=SCORE_THRESHOLDS),
            stat("通过率 / Pass ratio", f"sentinel_system_pass_ratio{{{SYS}}}", w=4, unit="percentunit", minv=0,
                 maxv=1),
            stat("测评结论 / Conclusion", CONCLUSION_CODE % (SYS, SYS, SYS, SYS), w=4, mappings=CONCLUSION_MAPPING),
            stat("高风险问题 / High-risk findings", f"sentinel_system_high_risk_findings{{{SYS}}}", w=4,
                 thresholds=COUNT_BAD_THRESHOLDS),
            stat("主机数 / Hosts", f"count(sentinel_host_up{{{SYS}}}) or vector(0)", w=4),
            stat("失联主机 / Silent hosts", f"count(sentinel_host_up{{{SYS}}} == 0) or vector(0)", w=4,
                 thresholds=COUNT_BAD_THRESHOLDS),
            bars("控制点未通过项 / Failing checks by control point",
                 f"sentinel_system_control_failing_checks{{{SYS}}} > 0", "{{clause}}", h=10,
                 desc="GB/T 22239-2019 clause numbers, e.g. 8.1.4.1 身份鉴别"),
            bars("未通过检查项（按严重程度）/ Failing checks by severity",
                 f"sentinel_system_failing_checks{{{SYS}}}", "{{severity}}", h=10),
            timeseries("得分与通过率趋势 / Score and pass ratio trend",
                       [target(f"sentinel_system_score{{{SYS}}}", "得分 score"),
                        target(f"sentinel_system_pass_ratio{{{SYS}}} * 100", "通过率 pass %", ref="B")],
                       minv=0, maxv=100, w=24),
            table("主机 / Hosts",
                  [target(f"sentinel_host_score{{{SYS}}}", table=True, instant=True, ref="A"),
                   target(f"sentinel_host_pass_ratio{{{SYS}}}", table=True, instant=True, ref="B"),
                   target(f"sentinel_host_high_risk_findings{{{SYS}}}", table=True, instant=True, ref="C"),
                   target(f"sentinel_host_up{{{SYS}}}", table=True, instant=True, ref="D"),
                   target(f"time() - sentinel_host_last_report_timestamp_seconds{{{SYS}}}", table=True,
                          instant=True, ref="E")],
                  rename={"host": "主机 Host", "Value #A": "得分 Score", "Value #B": "通过率 Pass ratio",
                          "Value #C": "高风险 High risk", "Value #D": "状态 State",
                          "Value #E": "距上次上报 Since last report"},
                  hide=("department", "system"),
                  overrides=[{"matcher": {"id": "byName", "options": "Value #D"},
                              "properties": [{"id": "mappings", "value": UP_MAPPING}]},
                             {"matcher": {"id": "byName", "options": "Value #E"},
                              "properties": [{"id": "unit", "value": "s"}]},
                             {"matcher": {"id": "byName", "options": "Value #B"},
                              "properties": [{"id": "unit", "value": "percentunit"}]}]),
        ])


def host() -> dict:
    return dashboard(
        "sentinel-host", "主机详情 / Host drill-down",
        "One host: its latest run, failing checks and history. The per-check table needs per-check series "
        "(opt-in on the collector).",
        [V_DEPT, V_SYS_ONE, V_HOST_ONE],
        [
            stat("得分 / Score", f"sentinel_host_score{{{HOST}}}", w=4, minv=0, maxv=100,
                 thresholds=SCORE_THRESHOLDS),
            stat("通过率 / Pass ratio", f"sentinel_host_pass_ratio{{{HOST}}}", w=4, unit="percentunit"),
            stat("高风险问题 / High-risk findings", f"sentinel_host_high_risk_findings{{{HOST}}}", w=4,
                 thresholds=COUNT_BAD_THRESHOLDS),
            stat("代理状态 / Agent", f"sentinel_host_up{{{HOST}}}", w=4, mappings=UP_MAPPING),
            stat("距上次上报 / Since last report", f"time() - sentinel_host_last_report_timestamp_seconds{{{HOST}}}",
                 w=4, unit="s"),
            stat("检查耗时 / Run duration", f"sentinel_host_run_duration_seconds{{{HOST}}}", w=4, unit="s"),
            # 僵尸信息系统 (docs/zombie.md): the host's verdict and its idle days in the rules' window
            stat("僵尸判定 / Zombie verdict", " or ".join(
                f'(sentinel_host_zombie_verdict{{{HOST}, verdict="{v}"}} == 1) * {i}'
                for i, v in enumerate(("in_use", "suspect", "zombie", "unknown"))), w=4,
                 mappings=[{"type": "value", "options": {
                     "0": {"text": "在用 in use", "color": "green"},
                     "1": {"text": "疑似僵尸 suspect", "color": "orange"},
                     "2": {"text": "僵尸 zombie", "color": "red"}, "3": {"text": "未知 unknown", "color": "text"}}}]),
            stat("闲置天数 / Idle days", f"sentinel_host_idle_seconds{{{HOST}}} / 86400", w=4,
                 desc="Idle days in the zombie rules' window (default the last 14 whole days); a day without "
                      "enough samples is not idle"),
            bars("未通过检查项（按严重程度）/ Failing checks by severity",
                 f"sentinel_host_failing_checks{{{HOST}}}", "{{severity}}"),
            timeseries("得分趋势 / Score trend", [target(f"sentinel_host_score{{{HOST}}}", "{{host}}")],
                       minv=0, maxv=100),
            table("未通过的检查 / Failing checks (per-check series)",
                  [target(f'sentinel_check_result{{{HOST}, status=~"fail|error", advisory="false"}}', table=True,
                          instant=True)],
                  rename={"check": "检查项 Check", "clause": "条款 Clause", "severity": "严重程度 Severity",
                          "status": "状态 Status"},
                  hide=("department", "system", "host", "advisory", "Value"),
                  desc="Empty unless the collector exports per-check series (per_check=True). Advisory checks "
                       "(参考项, advisory=\"true\") are left out: they decide no verdict, so their fail is no "
                       "failure."),
            panel("piechart", "主机操作系统 / OS",
                  [target(f"count by (os) (sentinel_host_info{{{SYS}}})", "{{os}}", instant=True)], w=8, h=8,
                  options={"reduceOptions": {"calcs": ["lastNotNull"]}, "pieType": "pie"}),
            table("主机信息 / Host info", [target(f"sentinel_host_info{{{HOST}}}", table=True, instant=True)],
                  rename={"os": "操作系统 OS", "baseline": "基线 Baseline", "agent_version": "代理版本 Agent"},
                  hide=("department", "system", "Value"), w=16, h=8),
            # the host's other 测评对象 (docs/objects.md): one row each, its figures merged on its labels
            table("测评对象 / Objects (databases, middleware, web servers)",
                  [target(expr, table=True, instant=True, ref=ref) for ref, expr in (
                      ("A", f"sentinel_object_info{{{HOST}}}"),
                      ("B", f"sentinel_object_score{{{HOST}}}"),
                      ("C", f"sentinel_object_pass_ratio{{{HOST}}}"),
                      ("D", f"sentinel_object_high_risk_findings{{{HOST}}}"),
                      ("E", f"sum by (department, system, host, object, object_instance) "
                            f"(sentinel_object_failing_checks{{{HOST}}})"),
                      ("F", f"sentinel_object_conclusion{{{HOST}}} == 1"),
                      ("G", f"sentinel_object_run_duration_seconds{{{HOST}}}"))],
                  rename={"object": "类别 Kind", "object_instance": "实例 Instance", "name": "测评对象 Object",
                          "baseline": "基线 Baseline", "conclusion": "结论 Conclusion", "Value #B": "得分 Score",
                          "Value #C": "通过率 Pass ratio", "Value #D": "高风险 High risk",
                          "Value #E": "未通过 Failing", "Value #G": "耗时 Duration (s)"},
                  hide=("department", "system", "host", "Value #A", "Value #F"), h=8,
                  desc="The host's 测评对象 besides its OS, each judged by its own baseline; the host's figures "
                       "above are its OS's."),
        ], time_from="now-30d")


def exposure() -> dict:
    return dashboard(
        "sentinel-exposure", "网络暴露面 / Network exposure",
        "Open and forbidden services found by network scans, TLS certificate expiry, scan health.",
        [V_DEPT, V_SYS],
        [
            stat("开放服务 / Open services", f"sum(sentinel_system_open_services{{{SYS}}}) or vector(0)", w=6),
            stat("禁止的服务 / Forbidden services", f"sum(sentinel_system_forbidden_services{{{SYS}}}) or vector(0)",
                 w=6, thresholds=COUNT_BAD_THRESHOLDS),
            stat("30 天内到期证书 / Certificates expiring in 30 d",
                 f"count(sentinel_tls_certificate_expiry_timestamp_seconds{{{SYS}}} - time() < 30 * 86400) "
                 "or vector(0)", w=6, thresholds=COUNT_BAD_THRESHOLDS),
            stat("扫描失败的系统 / Systems whose last scan failed",
                 f"count(sentinel_scan_last_run_success{{{SYS}}} == 0) or vector(0)", w=6,
                 thresholds=COUNT_BAD_THRESHOLDS),
            table("禁止开放的服务 / Forbidden services open",
                  [target(f"sentinel_forbidden_service_open{{{SYS}}}", table=True, instant=True)],
                  rename={"department": "部门 Department", "system": "系统 System", "host": "地址 Host",
                          "port": "端口 Port", "protocol": "协议 Protocol", "service": "服务 Service"},
                  hide=("Value",), h=8),
            timeseries("开放与禁止服务趋势 / Open and forbidden services",
                       [target(f"sum by (system) (sentinel_system_open_services{{{SYS}}})", "{{system}} open"),
                        target(f"sum by (system) (sentinel_system_forbidden_services{{{SYS}}})",
                               "{{system}} forbidden", ref="B")]),
            table("证书剩余有效期 / Certificate time left",
                  [target(f"sentinel_tls_certificate_expiry_timestamp_seconds{{{SYS}}} - time()", table=True,
                          instant=True)],
                  rename={"system": "系统 System", "host": "地址 Host", "port": "端口 Port",
                          "Value": "剩余 Time left"},
                  hide=("department",), w=12, h=8,
                  overrides=[{"matcher": {"id": "byName", "options": "Value"},
                              "properties": [{"id": "unit", "value": "s"},
                                             {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                                 {"color": "red", "value": None},
                                                 {"color": "orange", "value": 7 * 86400},
                                                 {"color": "green", "value": 30 * 86400}]}},
                                             {"id": "custom.cellOptions", "value": {"type": "color-text"}}]}]),
            table("扫描 / Scans",
                  [target(f"sentinel_scan_last_run_success{{{SYS}}}", table=True, instant=True, ref="A"),
                   target(f"time() - sentinel_scan_last_success_timestamp_seconds{{{SYS}}}", table=True,
                          instant=True, ref="B"),
                   target(f"sentinel_scan_last_duration_seconds{{{SYS}}}", table=True, instant=True, ref="C"),
                   target(f"sentinel_scan_failures_total{{{SYS}}}", table=True, instant=True, ref="D")],
                  rename={"system": "系统 System", "Value #A": "上次成功 Last OK",
                          "Value #B": "距上次成功 Since success", "Value #C": "耗时 Duration",
                          "Value #D": "失败次数 Failures"},
                  hide=("department",), w=12, h=8,
                  overrides=[{"matcher": {"id": "byName", "options": n}, "properties": [{"id": "unit", "value": "s"}]}
                             for n in ("Value #B", "Value #C")]),
        ])


def agents() -> dict:
    return dashboard(
        "sentinel-agents", "代理与采集健康 / Agent and collector health",
        "Agents reporting or silent, report age, run durations, ingest rates and rejections, collector state.",
        [V_DEPT, V_SYS],
        [
            stat("在线 / Up", f"count(sentinel_host_up{{{SYS}}} == 1) or vector(0)", w=4),
            stat("失联 / Silent", f"count(sentinel_host_up{{{SYS}}} == 0) or vector(0)", w=4,
                 thresholds=COUNT_BAD_THRESHOLDS),
            stat("采集端状态 / Collector state", "min(sentinel_up)", w=4,
                 mappings=[{"type": "value", "options": {"0": {"text": "存储不可读 store unreadable", "color": "red"},
                                                         "1": {"text": "正常 OK", "color": "green"}}}]),
            stat("状态读取耗时 / Snapshot time", "max(sentinel_snapshot_duration_seconds)", w=4, unit="s"),
            stat("上报速率 / Reports per minute", "sum(rate(sentinel_ingest_reports_total[$__rate_interval])) * 60",
                 w=4, unit="none"),
            stat("拒绝速率 / Rejections per minute", "sum(rate(sentinel_ingest_errors_total[$__rate_interval])) * 60",
                 w=4, thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                {"color": "red", "value": 0.01}]}),
            table("失联代理 / Silent agents",
                  [target(f"time() - sentinel_host_last_report_timestamp_seconds{{{SYS}}} "
                          f"and on (department, system, host) (sentinel_host_up{{{SYS}}} == 0)",
                          table=True, instant=True)],
                  rename={"department": "部门 Department", "system": "系统 System", "host": "主机 Host",
                          "Value": "距上次上报 Since last report"}, h=7,
                  overrides=[{"matcher": {"id": "byName", "options": "Value"},
                              "properties": [{"id": "unit", "value": "s"}]}]),
            timeseries("距上次上报 / Time since last report",
                       [target(f"time() - sentinel_host_last_report_timestamp_seconds{{{SYS}}}", "{{host}}")],
                       unit="s"),
            timeseries("检查耗时 / Check run duration",
                       [target(f"sentinel_host_run_duration_seconds{{{SYS}}}", "{{host}}")], unit="s"),
            timeseries("上报与拒绝 / Reports and rejections",
                       [target("sum by (kind) (rate(sentinel_ingest_reports_total[$__rate_interval]))", "{{kind}}"),
                        target("sum by (reason) (rate(sentinel_ingest_errors_total[$__rate_interval]))",
                               "rejected: {{reason}}", ref="B")], unit="reqps"),
            timeseries("检查耗时 P95（按探针）/ Check duration p95 by probe",
                       [target("histogram_quantile(0.95, sum by (le, probe) "
                               "(rate(sentinel_check_duration_seconds_bucket[$__rate_interval])))", "{{probe}}")],
                       unit="s"),
            panel("table", "版本 / Versions",
                  [target("sentinel_build_info", table=True, instant=True, ref="A"),
                   target(f"count by (agent_version) (sentinel_host_info{{{SYS}}})", table=True, instant=True,
                          ref="B")],
                  w=24, h=6, options={"showHeader": True},
                  transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}}]),
        ], time_from="now-24h")


def rectification() -> dict:
    fixed_ratio = (f'sentinel_system_findings{{{SYS}, state="fixed"}} / ignoring (state) '
                   f'(sum without (state) (sentinel_system_findings{{{SYS}}}) > 0)')
    return dashboard(
        "sentinel-rectification", "整改进度 / Rectification progress",
        "Findings opened and fixed per system (the rectification trail, 整改跟踪), and high-risk findings left.",
        [V_DEPT, V_SYS],
        [
            stat("未整改 / Open", f'sum(sentinel_system_findings{{{SYS}, state="open"}}) or vector(0)', w=6,
                 thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                           {"color": "orange", "value": 1}]}),
            stat("已整改 / Fixed", f'sum(sentinel_system_findings{{{SYS}, state="fixed"}}) or vector(0)', w=6),
            stat("整改完成率 / Fixed ratio",
                 # no findings at all: nothing left to fix, 100 % (not NaN from 0/0)
                 f'sum(sentinel_system_findings{{{SYS}, state="fixed"}}) '
                 f"/ (sum(sentinel_system_findings{{{SYS}}}) > 0) or vector(1)",
                 w=6, unit="percentunit", minv=0, maxv=1,
                 thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None},
                                                           {"color": "yellow", "value": 0.6},
                                                           {"color": "green", "value": 0.9}]}),
            stat("高风险未整改 / High risk open", f"sum(sentinel_system_high_risk_findings{{{SYS}}}) or vector(0)", w=6,
                 thresholds=COUNT_BAD_THRESHOLDS),
            bars("各系统整改完成率 / Fixed ratio by system", fixed_ratio, "{{department}} / {{system}}",
                 unit="percentunit", minv=0, maxv=1, h=10),
            bars("各系统未整改问题 / Open findings by system", f'sentinel_system_findings{{{SYS}, state="open"}}',
                 "{{department}} / {{system}}", h=10),
            timeseries("未整改与已整改趋势 / Open and fixed over time",
                       [target(f'sum by (state) (sentinel_system_findings{{{SYS}}})', "{{state}}")], w=12),
            timeseries("高风险问题趋势 / High-risk findings over time",
                       [target(f"sentinel_system_high_risk_findings{{{SYS}}}", "{{system}}")], w=12),
        ], time_from="now-90d")


def websites() -> dict:
    vetoed = f"sentinel_website_vetoed{{{SYS}}}"
    return dashboard(
        "sentinel-websites", "网站群监测 / Government websites",
        "Declared websites judged by the national inspection rules (政府网站与政务新媒体检查指标): vetoes, open "
        "findings, availability over the rule's week, certificates, monitoring rounds (docs/websites.md).",
        [V_DEPT, V_SYS],
        [
            stat("单项否决的网站 / Vetoed websites", f"count({vetoed} == 1) or vector(0)", w=6,
                 thresholds=COUNT_BAD_THRESHOLDS),
            stat("未整改网站问题 / Open website findings",
                 f"sum(sentinel_website_open_findings{{{SYS}}}) or vector(0)", w=6,
                 thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                           {"color": "orange", "value": 1}]}),
            stat("可用率低于 95% / Availability below 95 %",
                 f"count(sentinel_website_availability_ratio{{{SYS}}} < 0.95) or vector(0)", w=6,
                 thresholds=COUNT_BAD_THRESHOLDS),
            stat("30 天内到期证书 / Certificates expiring in 30 d",
                 f"count(sentinel_website_certificate_expiry_timestamp_seconds{{{SYS}}} - time() < 30 * 86400) "
                 "or vector(0)", w=6, thresholds=COUNT_BAD_THRESHOLDS),
            table("网站 / Websites",
                  [target(f"sentinel_website_info{{{SYS}}}", table=True, instant=True, ref="A"),
                   target(vetoed, table=True, instant=True, ref="B"),
                   target(f"sentinel_website_availability_ratio{{{SYS}}}", table=True, instant=True, ref="C"),
                   target(f"time() - sentinel_website_last_round_timestamp_seconds{{{SYS}}}", table=True,
                          instant=True, ref="D"),
                   target(f"sentinel_website_last_round_duration_seconds{{{SYS}}}", table=True, instant=True,
                          ref="E")],
                  rename={"system": "系统 System", "website": "网站 Website", "url": "首页 Home page",
                          "Value #B": "单项否决 Vetoed", "Value #C": "可用率 Availability",
                          "Value #D": "距上次监测 Since round", "Value #E": "耗时 Duration"},
                  hide=("department", "Value #A"), h=9,
                  overrides=[{"matcher": {"id": "byName", "options": "Value #C"},
                              "properties": [{"id": "unit", "value": "percentunit"}]},
                             *({"matcher": {"id": "byName", "options": n}, "properties": [{"id": "unit", "value": "s"}]}
                               for n in ("Value #D", "Value #E"))]),
            bars("各网站未整改问题 / Open findings by website",
                 f"sum by (system, website) (sentinel_website_open_findings{{{SYS}}})", "{{system}} / {{website}}"),
            bars("按规则类别 / Open findings by kind",
                 f"sum by (kind) (sentinel_website_open_findings{{{SYS}}})", "{{kind}}"),
            table("网站证书剩余有效期 / Website certificate time left",
                  [target(f"sentinel_website_certificate_expiry_timestamp_seconds{{{SYS}}} - time()", table=True,
                          instant=True)],
                  rename={"system": "系统 System", "website": "网站 Website", "origin": "站点 Origin",
                          "Value": "剩余 Time left"},
                  hide=("department",), w=12, h=8,
                  overrides=[{"matcher": {"id": "byName", "options": "Value"},
                              "properties": [{"id": "unit", "value": "s"}]}]),
            timeseries("可用率趋势 / Availability over time",
                       [target(f"sentinel_website_availability_ratio{{{SYS}}}", "{{website}}")], w=12,
                       unit="percentunit", minv=0, maxv=1),
        ])


def domestic() -> dict:
    def rate(category: str, by: str = "") -> str:
        grp = f" by ({by})" if by else ""
        return (f'sum{grp} (sentinel_system_domestic_hosts{{{SYS}, category="{category}"}}) / '
                f'sum{grp} (sentinel_system_domestic_counted_hosts{{{SYS}, category="{category}"}})')

    # a share: with no host selected it is 0/0, no data (not 0), like the rates above
    gm = (f'sum (sentinel_system_gm_tls_hosts{{{SYS}, state="configured"}}) / '
          f'sum (sentinel_system_gm_tls_hosts{{{SYS}, state!="unknown"}})')
    cats = (("os", "操作系统 OS"), ("cpu", "处理器 CPU"), ("database", "数据库 Database"),
            ("middleware", "中间件 Middleware"))
    pct = {"unit": "percentunit", "minv": 0, "maxv": 1}
    return dashboard(
        "sentinel-domestic", "国产化情况 / Domestic products",
        "Shares of hosts whose OS, CPU, databases and middleware are domestic (国产化率, by host; docs/domestic.md), "
        "components by origin and 国密 TLS, per department and system, from the hosts' latest inventories.",
        [V_DEPT, V_SYS],
        [
            *(stat(f"{title} 国产化率 / domestic share", rate(cat), w=4, **pct) for cat, title in cats),
            stat("国密 TLS 已配置 / SM suites configured", gm, w=4, **pct,
                 desc="hosts whose TLS configuration names SM suites or NTLS / hosts whose state is known"),
            stat("未识别组件 / Unrecognised components",
                 f'sum(sentinel_system_domestic_components{{{SYS}, origin="unrecognised"}}) or vector(0)', w=4,
                 desc="facts no rule knows: add a site rule (docs/domestic.md)"),
            *(bars(f"各部门{title.split()[0]}国产化率 / {title.split()[1]} by department", rate(cat, "department"),
                   "{{department}}", w=6, h=8, **pct) for cat, title in cats),
            timeseries("国产化率趋势 / Domestic share over time",
                       [target(rate(cat), title, ref="ABCD"[i]) for i, (cat, title) in enumerate(cats)], w=12,
                       **pct),
            bars("组件来源 / Components by origin",
                 f"sum by (category, origin) (sentinel_system_domestic_components{{{SYS}}})",
                 "{{category}} {{origin}}", w=12),
            table("各系统国产化率 / Systems",
                  [target(rate(cat, "department, system"), table=True, instant=True, ref="ABCD"[i])
                   for i, (cat, _) in enumerate(cats)],
                  rename={"department": "部门 Department", "system": "系统 System",
                          **{f"Value #{'ABCD'[i]}": title for i, (_, title) in enumerate(cats)}},
                  w=24, h=9,
                  overrides=[{"matcher": {"id": "byName", "options": title},
                              "properties": [{"id": "unit", "value": "percentunit"}]} for _, title in cats]),
        ])


DASHBOARDS = {"overview": overview, "system": system, "host": host, "exposure": exposure, "agents": agents,
              "rectification": rectification, "websites": websites,
              "domestic": domestic}


def render_all() -> dict[str, str]:
    return {f"sentinel-{name}.json": json.dumps(make(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            for name, make in DASHBOARDS.items()}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        stale = [n for n, text in files.items()
                 if not (OUT / n).is_file() or (OUT / n).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"out of date: {stale}; not generated: {extra}; run deploy/grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
