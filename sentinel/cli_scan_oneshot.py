"""`sentinel scan`: one-shot network exposure scan within an explicit scope.

Exit codes: 0 no failing result, 1 failing or undetermined results, 2 usage/configuration error, a target
outside the scope (refused before any packet), or nmap missing.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import typer

from .model import Status

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID  # imported when a bar is shown: `scan` starts without rich

DEFAULT_ZONE_BASELINE = "zone-egov-default"
audit_log = logging.getLogger("sentinel.audit")
# A refusal is printed once, as the command's error; the audit record goes to whatever handlers the host's
# logging has. Without this, logging's last-resort handler printed the same refusal a second time on stderr.
audit_log.addHandler(logging.NullHandler())


# Scope fields by the option that sets them (a --scope-file names them itself: networks, hosts, ports)
_SCOPE_OPTIONS = {"networks": "--scope", "hosts": "--scope", "ports": "--scope-ports"}
_SCOPE_KEYS = {"networks": "networks", "hosts": "hosts", "ports": "ports"}


def _ports(option: str, text: Optional[str]):
    """parse_ports for one option; its error names the option and the value."""
    from sentinel.checks.network.scope import parse_ports

    if not text:
        return None
    try:
        return parse_ports(text)
    except ValueError as exc:
        raise ValueError(f"{option} {text!r}: {exc}") from None


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"sentinel scan: {message}", err=True)
    raise typer.Exit(code)


def scan(
    targets: list[str] = typer.Argument(..., metavar="TARGET",
                                        help="IP addresses, CIDR blocks or host names to scan."),
    scope: list[str] = typer.Option([], "--scope", metavar="CIDR|ADDRESS",
                                    help="Allowed network (CIDR) or address; repeat. Required unless --scope-file "
                                         "is given."),
    scope_file: Optional[Path] = typer.Option(None, "--scope-file", metavar="FILE",
                                              help="YAML scope: {name, networks, hosts, ports}."),
    scope_ports: Optional[str] = typer.Option(None, "--scope-ports", metavar="PORTS",
                                              help="Ports the scope allows (default all)."),
    zone_baseline: str = typer.Option(DEFAULT_ZONE_BASELINE, "--zone-baseline", metavar="ID|FILE",
                                      help="Zone baseline id or YAML file."),
    level: Optional[int] = typer.Option(None, "--level", min=2, max=4, metavar="2|3|4",
                                        help="Protection level of the system scanned: clauses, texts and weights "
                                             "are that level's (default: the zone baseline's level)."),
    zone: Optional[str] = typer.Option(None, "--zone", metavar="ZONE",
                                       help="Zone of the targets (else from the baseline's networks)."),
    scanner_zone: Optional[str] = typer.Option(None, "--scanner-zone", metavar="ZONE",
                                               help="Zone this scanner sits in: enables isolation checks."),
    ports: Optional[str] = typer.Option(None, "--ports", "-p", metavar="PORTS",
                                        help="TCP ports, e.g. 22,80,8000-8100 (default: nmap top 1000 + DB/cache/"
                                             "management ports)."),
    udp: bool = typer.Option(False, "--udp", help="Also scan UDP (slow; default ports incl. 161 for SNMP)."),
    udp_ports: Optional[str] = typer.Option(None, "--udp-ports", metavar="PORTS", help="UDP ports (implies --udp)."),
    rate: Optional[int] = typer.Option(None, "--rate", metavar="N",
                                       help="At most N packets per second (nmap --max-rate)."),
    min_rate: Optional[int] = typer.Option(None, "--min-rate", metavar="N",
                                           help="At least N packets per second (nmap --min-rate)."),
    max_hosts: Optional[int] = typer.Option(None, "--max-hosts", metavar="N",
                                            help="Hosts scanned in parallel (--max-hostgroup)."),
    timing: int = typer.Option(4, "--timing", "-T", min=0, max=5, metavar="N", help="nmap timing template 0-5."),
    no_version: bool = typer.Option(False, "--no-version", help="Skip nmap -sV service/version detection."),
    no_ping: bool = typer.Option(False, "--no-ping", help="Treat every target as up (nmap -Pn)."),
    connect_scan: bool = typer.Option(False, "--connect-scan",
                                      help="TCP connect scan (-sT) even with root (default as root: SYN scan -sS)."),
    icmp: bool = typer.Option(False, "--icmp", help="Also record ICMP reachability and TTL per host (scapy, root)."),
    credential_probes: bool = typer.Option(
        False, "--credential-probes",
        help="Also try the short documented list of empty/default credentials (anonymous FTP, MySQL root with an "
             "empty password, SNMP community private, default pairs on HTTP Basic-auth consoles: docs/network.md), "
             "once each, rate-limited and audited. Only with the system owner's authorisation; never on by "
             "default."),
    previous: Optional[Path] = typer.Option(None, "--previous", metavar="FILE",
                                            help="Earlier `--format json` report: emit diff events."),
    fmt: str = typer.Option("table", "--format", "-f", metavar="table|json", help="Output format."),
    lang: str = typer.Option("zh", "--lang", metavar="zh|en", help="Language of the table."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the report to FILE."),
) -> None:
    """Scan TARGETs for exposed services and score them against a zone baseline (targets must be in --scope)."""
    from pydantic import ValidationError

    from sentinel.checks.network.discovery import NmapError, NmapMissing, RateLimit, ScanOptions
    from sentinel.checks.network.findings import ServiceFinding
    from sentinel.checks.network.scope import Scope, ScopeError
    from sentinel.network.engine import run_scan
    from sentinel.network.zones import load_zone_baseline

    from .baseline import BaselineError
    from .cli_errors import validation_lines

    if fmt not in ("table", "json"):
        _fail(f"--format {fmt}: expected table or json")
    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    try:
        if scope_file is not None:
            import yaml

            data = yaml.safe_load(scope_file.read_text(encoding="utf-8")) or {}
            if scope:
                data.setdefault("networks", [])
                data["networks"] += [s for s in scope if "/" in s]
                data.setdefault("hosts", [])
                data["hosts"] += [s for s in scope if "/" not in s]
            if scope_ports:
                data["ports"] = scope_ports
            the_scope = Scope.model_validate(data)
        elif scope:
            the_scope = Scope.from_cli(scope, scope_ports)
        else:
            _fail("no scope: give --scope CIDR (repeatable) or --scope-file FILE; nothing is scanned without one")
        options = ScanOptions(
            tcp_ports=_ports("--ports", ports), udp=udp or bool(udp_ports),
            udp_ports=_ports("--udp-ports", udp_ports), version_detection=not no_version,
            host_discovery=not no_ping, rate=RateLimit(packets_per_second=rate, max_hosts=max_hosts),
            timing=timing, min_rate=min_rate, icmp=icmp, connect_scan=connect_scan,
            credential_probes=credential_probes)
    except ValidationError as exc:
        if scope_file is not None:  # the file's own keys name the field
            lines = [f"--scope-file {scope_file}: {line}" for line in validation_lines(exc, _SCOPE_KEYS)]
        else:
            lines = validation_lines(exc, _SCOPE_OPTIONS)
        _fail("\n".join(lines))
    except OSError as exc:
        _fail(f"--scope-file {scope_file}: {exc.strerror or exc}")
    except ValueError as exc:  # parse_ports and Scope.from_cli name the option's value themselves
        _fail(str(exc))
    try:
        baseline = load_zone_baseline(zone_baseline)
    except BaselineError as exc:
        _fail(str(exc))
    old = None
    if previous is not None:
        try:
            findings = json.loads(previous.read_text(encoding="utf-8"))["findings"]
            old = [ServiceFinding.model_validate(f) for f in findings]
        except (OSError, ValueError, KeyError, ValidationError) as exc:
            _fail(f"--previous {previous}: not a sentinel scan JSON report ({exc})")

    def refused(items: list[str]) -> None:
        audit_log.warning("scan refused: %s", "; ".join(items))

    try:
        with _progress(fmt == "table" and output is None) as progress:
            report = run_scan(targets, the_scope, options, zone_baseline=baseline, zone=zone,
                              scanner_zone=scanner_zone, previous=old, progress=progress, audit=refused, level=level)
    except ScopeError as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))
    except NmapMissing as exc:
        _fail(str(exc))
    except NmapError as exc:
        _fail(str(exc))
    if fmt == "json":
        text = report.model_dump_json(indent=2) + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            _write(output, text)
    else:
        if output is None:
            _print_table(report, lang)
        else:
            with output.open("w", encoding="utf-8") as fh:
                _print_table(report, lang, file=fh)
    bad = [r for r in report.results if not r.waiver and r.status in (Status.FAIL, Status.ERROR)]
    raise typer.Exit(1 if bad else 0)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"-o {path}: {exc.strerror or exc}")


class _progress:
    """A rich progress bar on stderr (only on a terminal); yields the engine's progress callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Optional[Progress] = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        self.bar.start()
        return self.update

    def update(self, phase: str, percent: float) -> None:
        assert self.bar is not None  # __enter__ hands out update only after it made the bar
        key = phase.split(":", 1)[0]
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(phase, total=100)
        self.bar.update(self.tasks[key], completed=percent, description=phase)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


_LABELS = {
    "zh": {"target": "目标", "service": "服务", "product": "产品/版本", "result": "结果", "risk": "高风险",
           "item": "测评项", "verdict": "结论", "checks": "检查", "events": "变化", "none": "未发现开放服务",
           "score": "得分", "conclusion": "结论", "pass_rate": "通过率", "errors": "未能判定",
           "head": "{hosts} 台主机在线，{services} 个开放服务，用时 {seconds:.1f} 秒",
           "before": "之前", "after": "之后"},
    "en": {"target": "target", "service": "service", "product": "product/version", "result": "result",
           "risk": "high risk", "item": "item", "verdict": "verdict", "checks": "checks", "events": "changes",
           "none": "no open service found", "score": "score", "conclusion": "conclusion", "pass_rate": "pass rate",
           "errors": "undetermined", "head": "{hosts} host(s) up, {services} open service(s), {seconds:.1f}s",
           "before": "before", "after": "after"},
}
# a result's status by its value, in each language
_STATUS_LABELS = {
    "zh": {"pass": "通过", "fail": "不通过", "error": "错误", "not_applicable": "不适用"},
    "en": {"pass": "pass", "fail": "fail", "error": "error", "not_applicable": "not applicable"},
}


def _reason(r, lang: str) -> str:
    """The Chinese reason in zh when the scorer gave one (reports stored before reason_zh have only English)."""
    return (r.reason_zh if lang == "zh" and r.reason_zh else r.reason) or ""


def _print_table(report, lang: str, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    L = _LABELS[lang]
    console = Console(file=file, width=160 if file else None)
    head = f"[bold]sentinel scan[/] {', '.join(report.targets)} — " + L["head"].format(
        hosts=len(report.hosts_up), services=len(report.findings), seconds=report.duration_ms / 1000)
    if report.zone_baseline:
        head += f" — {report.zone_baseline}" + (f" zone={report.zone}" if report.zone else "") + \
                (f" scanner-zone={report.scanner_zone}" if report.scanner_zone else "")
    if report.level is not None:  # the level whose clauses the items below carry
        head += f" — 第{'二三四'[report.level - 2]}级" if lang == "zh" else f" — level {report.level}"
    console.print(head)
    if report.coverage is not None:  # what was and was not looked at, incl. whether logins were tried
        console.print(report.coverage.note_zh if lang == "zh" else report.coverage.note)
    if report.coverage is not None and report.coverage.credential_probes:
        _print_attempts(console, report, lang)
    if not report.findings:
        console.print(L["none"])
    else:
        table = Table(L["target"], L["service"], L["product"], L["result"], L["risk"])
        for f in report.findings:
            fails = [r for r in f.results if r.status == Status.FAIL]
            errs = [r for r in f.results if r.status == Status.ERROR]
            if fails:
                text = "\n".join(f"[red]✗[/] {r.title.get(lang)}" for r in fails)
            elif errs:
                text = "\n".join(f"[yellow]?[/] {r.title.get(lang)}: {_reason(r, lang)}" for r in errs)
            else:
                text = "[green]✓[/]" if f.results else "-"
            table.add_row(f.label, f.service or "?", f.version_string or f.banner or "", text,
                          ", ".join(f.high_risk))
        console.print(table)
    iso = [r for r in report.results if r.check_id == "net-isolation"]
    if iso:
        t = Table(L["target"], L["checks"], L["result"])
        for r in iso:
            t.add_row(r.reason.split(":")[0] if r.reason else "", r.clause, _STATUS_LABELS[lang][r.status.value])
        console.print(t)
    items = Table(L["item"], L["verdict"], L["checks"])
    for it in report.items:
        verdict = it.verdict.value if lang == "zh" else it.verdict.en
        items.add_row(f"{it.clause} {it.item} {it.control.get(lang)}", verdict, ", ".join(it.checks))
    console.print(items)
    s = report.summary
    score = f"{s.score:.1f}" if s.score is not None else "-"
    rate = f"{100 * s.pass_rate:.0f}%" if s.pass_rate is not None else "-"
    console.print(f"{L['score']}: {score}  {L['pass_rate']}: {rate}  {L['risk']}: {s.high_risk}  "
                  f"{L['conclusion']}: {s.conclusion if lang == 'zh' else s.conclusion_en}")
    if report.events:
        ev = Table(L["events"], L["target"], L["before"], L["after"])
        for e in report.events:
            ev.add_row(e.kind, f"{e.host}:{e.port}/{e.proto}", e.before or "", e.after or "")
        console.print(ev)
    _print_not_scored(console, report, lang)
    for err in report.errors:
        console.print(f"[yellow]{err}[/]")


def _print_not_scored(console, report, lang: str) -> None:
    """Results of checks whose item the report's level does not have: shown, with why they count for nothing."""
    from rich.table import Table

    if not report.not_scored:
        return
    status = _STATUS_LABELS[lang]
    head = ("未计分（本级无此测评项）", "目标", "结果", "原因") if lang == "zh" else (
        "not scored (not a requirement of this level)", "target", "result", "why")
    t = Table(*head)
    for n in report.not_scored:
        own = (n.reason_zh if lang == "zh" and n.reason_zh else n.reason) or ""
        t.add_row(n.check_id, n.target, status[n.status.value] + (f": {own}" if own else ""), n.why.get(lang))
    console.print(t)


def _print_attempts(console, report, lang: str) -> None:
    """Every credential attempt made, with its outcome: the person who enabled them sees what was tried."""
    from rich.table import Table

    head = ("口令探测", "目标", "账户", "结果") if lang == "zh" else ("credential probe", "target", "account", "result")
    t = Table(*head)
    for f in report.findings:
        for a in f.credentials:
            ok = ("[red]接受[/]" if lang == "zh" else "[red]ACCEPTED[/]") if a.accepted else (
                "拒绝" if lang == "zh" else "refused")
            t.add_row(a.protocol, f.label, a.user, ok)
    if t.row_count:
        console.print(t)
    else:
        console.print("口令探测：没有适用的服务，未尝试登录" if lang == "zh"
                      else "credential probes: no applicable service, no login attempted")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
