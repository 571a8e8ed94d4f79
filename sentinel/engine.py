"""Run a baseline's checks over a host view and score them into a HostReport.

A check never crashes the run: a probe that cannot determine its fact yields `error` with the reason,
one that does not apply yields `not_applicable`, and an unexpected exception inside a probe is reported as
`error` naming the probe (a bug to fix, but never a silent pass).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Optional

from pydantic import ValidationError

from . import scoring
from .expect import Reason, explain
from .expected_words import expected_zh
from .hostview import HostView, LiveOnly, NotApplicable, ProbeError
from .model import (
    Baseline,
    BaselineRef,
    CheckResult,
    CheckSpec,
    ControlSpec,
    Evidence,
    HostReport,
    ItemSpec,
    ObjectRef,
    Status,
)
from .osinfo import host_info
from .probe import ProbeContext, registry


def run_check(ctx: ProbeContext, baseline: Baseline, control: ControlSpec, item: ItemSpec,
              check: CheckSpec) -> CheckResult:
    start = time.perf_counter()
    status, observed, reason, evidence = _evaluate(ctx, baseline, check)
    offline = status == Status.NOT_APPLICABLE and isinstance(reason, _Unseen)
    return CheckResult(
        check_id=check.id, clause=control.clause, item=item.item, key=item.key, title=check.title, status=status,
        severity=check.severity, high_risk=check.high_risk, observed=observed,
        expected=check.expect.describe(), expected_zh=expected_zh(check.expect),
        reason=reason.en if reason else None, reason_zh=reason.zh if reason else None, evidence=evidence,
        remediation=check.remediation,
        waiver=check.waiver, advisory=check.advisory, duration_ms=round((time.perf_counter() - start) * 1000, 3),
        offline=offline,
    )


class _Unseen(Reason):
    """The reason of a live-host fact that an offline root cannot show (the result's `offline`)."""


def _said(exc: Exception, prefix: str = "") -> Reason:
    """A probe's exception as a reason; its Chinese wording when the probe gave one (else the English)."""
    en = f"{prefix}{exc}"
    zh = getattr(exc, "zh", None)
    return Reason(en, f"{prefix}{zh}" if zh else en)


def _declared(said: Reason, exc: Exception, baseline: Baseline, check: CheckSpec) -> Reason:
    """A reason that a missing site declaration gives, with where to declare it: the check's params in a site file
    extending the baseline in force."""
    if not getattr(exc, "declaration", False):
        return said
    return Reason(f"{said.en} (baseline {baseline.id}: declare it in a site file's override of {check.id}: params)",
                  f"{said.zh}（基线 {baseline.id}：请在站点文件的 override 中为 {check.id} 设置 params）")


def _evaluate(ctx: ProbeContext, baseline: Baseline,
              check: CheckSpec) -> tuple[Status, Any, Optional[Reason], list[Evidence]]:
    families = check.os_families or baseline.os_families
    if ctx.family is not None and ctx.family not in families:
        fam = "/".join(families)
        return Status.NOT_APPLICABLE, None, Reason(f"applies to {fam} hosts; this host is {ctx.family}",
                                                   f"仅适用于 {fam} 系主机，本机为 {ctx.family} 系"), []
    if ctx.family is None and check.os_families:
        return Status.NOT_APPLICABLE, None, Reason(
            "OS family could not be determined from os-release or package database",
            "无法从 os-release 或软件包数据库判断操作系统类别"), []
    pdef = registry()[check.probe]
    if (check.live_only or pdef.live_only) and not ctx.host.live:
        return Status.NOT_APPLICABLE, None, _Unseen("live-host fact; not available for an offline root",
                                                    "只能在运行中的主机上查看，离线根目录不适用"), []
    try:
        params = pdef.params.model_validate(check.params)
        obs = pdef.func(ctx, params)
    except ProbeError as exc:
        return Status.ERROR, exc.observed, _declared(_said(exc), exc, baseline, check), []
    except LiveOnly as exc:
        said = _declared(_said(exc), exc, baseline, check)
        return Status.NOT_APPLICABLE, None, _Unseen(said.en, said.zh), []
    except NotApplicable as exc:
        return Status.NOT_APPLICABLE, None, _said(exc), []
    except (FileNotFoundError, PermissionError, OSError) as exc:
        return Status.ERROR, None, _said(exc, f"{check.probe}: "), []
    except ValidationError as exc:
        return Status.ERROR, None, _said(Exception(f"invalid params: {exc.errors()[0]['msg']}"),
                                         f"{check.probe}: "), []
    except Exception as exc:  # a probe bug must surface as an error result, never as a pass or a crash
        return Status.ERROR, None, _said(Exception(f"internal error in probe {check.probe}: "
                                                   f"{type(exc).__name__}: {exc}")), []
    # The value is named by the key a probe reads (PASS_MAX_DAYS, ClientAliveInterval, a sysctl) when it has one.
    key = check.params.get("key")
    subject = key if isinstance(key, str) else ""
    reason = explain(check.expect, obs.observed, subject, check.probe)
    if reason is None:
        note = Reason(obs.note, obs.note_zh or obs.note) if obs.note else None
        return Status.PASS, obs.observed, note, obs.evidence
    return Status.FAIL, obs.observed, reason, obs.evidence


def run_baseline(baseline: Baseline, host: HostView, report_id: Optional[str] = None,
                 target: Optional[ObjectRef] = None) -> HostReport:
    """`target`: the 测评对象 instance the baseline judges (sentinel/discovery.py finds them); by default the
    baseline's object kind with no instance named (the OS, or the product's default instance)."""
    start = time.perf_counter()
    info = host_info(host)
    if target is None:
        target = ObjectRef(kind=baseline.object, name=info.hostname if baseline.object == "os" else "")
    elif target.kind != baseline.object:
        raise ValueError(f"baseline {baseline.id} judges {baseline.object} objects, not {target.kind}")
    ctx = ProbeContext(host=host, family=info.family, os_release=host.os_release(), target=target)
    results = [run_check(ctx, baseline, control, item, check) for control, item, check in baseline.iter_checks()]
    items = scoring.item_results(baseline, results)
    summary = scoring.summarize(items, results)
    return HostReport(
        report_id=report_id or str(uuid.uuid4()),
        duration_ms=round((time.perf_counter() - start) * 1000, 2),
        baseline=BaselineRef(id=baseline.id, version=baseline.version, level=baseline.level,
                             title=baseline.title, lineage=baseline.lineage),
        host=info, summary=summary, items=items, results=results, object=target,
    )
