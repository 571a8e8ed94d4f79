"""The graded-response table (分级响应): which incident grade an alert is handled as, from the kind of event and
the protection level (定级) of the system it is about. One table, used by the pushed events
(`sentinel.events.model.event_labels`), checked against the Prometheus rules (`tests/test_alerting_rules.py`:
every rule's `severity`/`grade` labels are `rule_labels(alert)`), and printed in docs/alerting.md
(`markdown_table()`; a test compares).

Why this shape: the national cyber-security incident emergency plan (国家网络安全事件应急预案) grades an
*incident* by how important the system is and how much was lost: 特别重大 (I) > 重大 (II) > 较大 (III) > 一般 (IV).
sentinel sees no losses, only weaknesses and blind spots, so what it raises is a warning of the incident they
could lead to. The system's importance comes from its protection level (GB/T 22239 / 定级: level 4 systems are
the especially important ones, level 3 the important ones), the size of the possible loss from the kind of
event. 特别重大 is never raised automatically: it needs a real, assessed loss, which people declare.
"""
from __future__ import annotations

from typing import Literal, Optional

Grade = Literal["特别重大", "重大", "较大", "一般"]
EventClass = Literal["exposure", "degradation", "notice", "platform"]

#: what an event says about the system, by how directly it can lead to an incident
CLASS_TEXT: dict[str, tuple[str, str]] = {
    "exposure": ("可被直接利用的弱点", "a weakness open to attack now"),
    "degradation": ("防护能力下降或失去监测", "protection weakened or no longer watched"),
    "notice": ("提示", "a notice: act before it becomes one of the above"),
    "platform": ("监测平台自身故障（与系统无关）", "the monitoring itself is failing (no system)"),
}

#: class -> protection level -> grade. Level 1 and 5 systems are graded as 2 and 4.
TABLE: dict[str, dict[int, Grade]] = {
    "exposure": {1: "一般", 2: "一般", 3: "较大", 4: "重大", 5: "重大"},
    "degradation": {1: "一般", 2: "一般", 3: "一般", 4: "较大", 5: "较大"},
    "notice": {1: "一般", 2: "一般", 3: "一般", 4: "一般", 5: "一般"},
}

#: platform alerts have no system and so no level: one grade, paged by the Alertmanager route by name
PLATFORM_GRADE: Grade = "较大"

#: the grade a level-less system event gets (its level could not be found): the highest it could have, so
#: a missing level never understates
UNKNOWN_LEVEL = 4

SEVERITY_OF_GRADE: dict[str, str] = {"特别重大": "critical", "重大": "high", "较大": "medium", "一般": "low"}

#: every event kind the collector pushes and every Prometheus rule alert, with its class. A pushed kind and
#: a rule alert about the same fact share one alertname (sentinel.events.model.SHARED_IDENTITY).
CLASS_OF: dict[str, EventClass] = {
    # pushed event kinds (sentinel/collector/ingest.py, scan_ingest.py, sentinel/websites/monitor.py)
    "high_risk_finding": "exposure",
    "new_forbidden_port": "exposure",
    "score_drop": "degradation",
    "scan_failed": "degradation",
    "drift": "degradation",
    "new_open_port": "notice",
    "closed_port": "notice",
    "version_change": "notice",
    # website monitoring (sentinel/websites/monitor.py): 挂马/篡改/暗链 are a compromise now; an unreachable or
    # unmaintained site is service weakened
    "website_security": "exposure",
    "website_veto": "degradation",
    # the 通报 loop (sentinel/notices/loop.py): a notified problem past its rectification deadline
    "notice_overdue": "degradation",
    # Prometheus rules (deploy/prometheus/sentinel-rules.yml)
    "SentinelHighRiskFinding": "exposure",
    "SentinelHighRiskFindingsIncreased": "exposure",
    "SentinelForbiddenServiceOpen": "exposure",
    "SentinelCertificateExpired": "exposure",
    "SentinelSystemScoreDropped": "degradation",
    "SentinelSystemConclusionPoor": "degradation",
    "SentinelCertificateExpiring": "degradation",
    "SentinelAgentSilent": "degradation",
    "SentinelScanFailing": "degradation",
    # 数据备份恢复 (docs/backups.md): recovery weakened, no weakness open to attack by itself
    "SentinelSystemMissesRPO": "degradation",
    "SentinelReplicationBroken": "degradation",
    # the 通报 loop: notified problems past their deadline, as the pushed notice_overdue (one alert identity)
    "SentinelNoticeProblemsOverdue": "degradation",
    "SentinelCertificateExpiringSoon": "notice",
    "SentinelScanStale": "notice",
    "SentinelSystemSuspectedZombie": "notice",  # 僵尸信息系统 to review (docs/zombie.md): no weakness by itself
    "SentinelCollectorDown": "platform",
    "SentinelCollectorMetricsAbsent": "platform",
    "SentinelStateUnreadable": "platform",
    "SentinelSnapshotStale": "platform",
    "SentinelReportsRejected": "platform",
    "SentinelAgentSpoolDropping": "platform",
    # website monitoring rules (网站群监测): as the pushed website_security / website_veto, and the certificate and
    # staleness rules as the hosts' and scans'
    "SentinelWebsiteCompromised": "exposure",
    "SentinelWebsiteCertificateExpired": "exposure",
    "SentinelWebsiteVetoed": "degradation",
    "SentinelWebsiteCertificateExpiring": "degradation",
    "SentinelWebsiteRoundStale": "notice",
}


def grade(kind: str, level: Optional[int]) -> Optional[Grade]:
    """The grade of an event kind or rule alert on a system of `level`; None for a kind not in the table
    (the dispatcher's severity mapping applies then)."""
    cls = CLASS_OF.get(kind)
    if cls is None:
        return None
    if cls == "platform":
        return PLATFORM_GRADE
    row = TABLE[cls]
    lv = UNKNOWN_LEVEL if level is None else min(max(int(level), min(row)), max(row))
    return row[lv]


def severity(g: str) -> str:
    return SEVERITY_OF_GRADE[g]


def _template(values: dict[int, str]) -> str:
    """A Prometheus label template choosing by the alert's `level` label (from sentinel_system_info)."""
    default = values[UNKNOWN_LEVEL]
    others: dict[str, list[int]] = {}
    for lv, v in sorted(values.items()):
        if v != default:
            others.setdefault(v, []).append(lv)
    if not others:
        return default
    out = ""
    for i, (v, levels) in enumerate(others.items()):
        tests = [f'(eq $labels.level "{lv}")' for lv in levels]
        cond = tests[0][1:-1] if len(tests) == 1 else "or " + " ".join(tests)
        out += ("{{ if " if i == 0 else "{{ else if ") + cond + " }}" + v
    return out + "{{ else }}" + default + "{{ end }}"


def rule_labels(alert: str) -> dict[str, str]:
    """The `severity` and `grade` labels a Prometheus rule for `alert` carries (templates on `level`)."""
    cls = CLASS_OF[alert]
    if cls == "platform":
        return {"severity": severity(PLATFORM_GRADE), "grade": PLATFORM_GRADE}
    row = TABLE[cls]
    return {"severity": _template({lv: severity(g) for lv, g in row.items()}), "grade": _template(dict(row))}


def markdown_table() -> str:
    """The table as docs/alerting.md prints it."""
    levels = (2, 3, 4)
    head = "| class | " + " | ".join(f"level {lv}" for lv in levels) + " | alerts and event kinds |\n"
    head += "| --- |" + " --- |" * len(levels) + " --- |\n"
    rows = []
    for cls, (zh, en) in CLASS_TEXT.items():
        names = ", ".join(f"`{k}`" for k, c in CLASS_OF.items() if c == cls)
        grades = [PLATFORM_GRADE] * len(levels) if cls == "platform" else [TABLE[cls][lv] for lv in levels]
        rows.append(f"| {cls}: {zh} / {en} | " + " | ".join(grades) + f" | {names} |\n")
    return head + "".join(rows)
