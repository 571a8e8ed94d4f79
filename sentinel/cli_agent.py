"""`sentinel agent`, `sentinel enroll` and `sentinel up` (collector + agent on one machine)."""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

CONFIG_HELP = "Agent config file (YAML); default /etc/sentinel/agent.yaml when it exists."
STATE_HELP = ("State directory (identity, key, spool); default <SENTINEL_STATE_DIR>/agent, i.e. "
              "/var/lib/sentinel/agent (root) or ~/.local/state/sentinel/agent.")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise at INFO
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _settings(config: Optional[Path], **overrides):
    from .agent.config import ConfigError, load_settings

    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        _fail(str(exc))


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _announcing():
    """The agent, printing one line per baseline run on stderr whatever the log level: what ran, its result
    and where it was stored (the run id on the collector, or the spool while the collector cannot take it)."""
    from datetime import datetime

    from .agent.daemon import Agent

    class AnnouncingAgent(Agent):
        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            self._made: dict[str, str] = {}  # report id -> "what ran, result", until it is stored
            self._made_lock = threading.Lock()

        def run_baseline(self, schedule):
            report = super().run_baseline(schedule)
            if report is None:
                _say(f"baseline {schedule.baseline}: no report (the reason is logged above)")
                return None
            s = report.get("summary", {})
            counts = s.get("counts", {})
            score = "-" if s.get("score") is None else f"{s['score']:.1f}"
            result = (f"baseline {schedule.baseline}: score {score} {s.get('conclusion', '')}, "
                      f"{counts.get('fail', 0)} failed, {counts.get('error', 0)} error, "
                      f"{s.get('high_risk', 0)} high-risk")
            with self._made_lock:
                self._made[report.get("report_id", "")] = result
            return report

        def flush(self):
            outcome = super().flush()
            with self._made_lock:
                for answer in outcome.answers:
                    result = self._made.pop(answer.get("report_id", ""), None)
                    if result is not None:
                        _say(f"{result}; stored as run {answer.get('run_id')} on {self.client.url}")
                if outcome.blocked:
                    for report_id, result in self._made.items():
                        _say(f"{result}; kept in the spool {self.settings.spool_dir} until the collector takes "
                             f"it ({outcome.blocked})")
                    self._made.clear()
            return outcome

    def _say(line: str) -> None:
        typer.echo(f"{datetime.now().astimezone().isoformat(timespec='seconds')} {line}", err=True)

    return AnnouncingAgent


def agent(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=STATE_HELP),
    once: bool = typer.Option(False, "--once", help="Run every baseline once, deliver, and exit."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve this host's latest report at "
                                               "/metrics on this port (22239 by convention; binds metrics_address, "
                                               "default 127.0.0.1)."),
) -> None:
    """Run the agent: scheduled baselines, utilisation and inventory, signed and pushed to the collector.

    Exit (with --once) 0: every report made and delivered; 1: a run or the delivery failed; 2: configuration."""
    from .agent.client import ClientError
    from .agent.enroll import EnrollError
    from .agent.spool import SpoolError

    settings = _settings(config, state_dir=state_dir, metrics_port=metrics_port)
    _setup_logging(settings.log_level)
    try:
        daemon = _announcing()(settings)
    except (EnrollError, ClientError, SpoolError, ValueError) as exc:
        _fail(str(exc))
    try:
        if once:
            reports, flushed = daemon.run_once()
            daemon.close()
            if len(reports) < len(settings.baselines):
                _fail(f"{len(settings.baselines) - len(reports)} baseline run(s) produced no report (see log)", 1)
            if not flushed.complete:
                _fail(f"{flushed.remaining} envelope(s) left in the spool: {flushed.blocked}", 1)
            return
        daemon.run_forever(_stop_on_signals())
    except (EnrollError, OSError) as exc:  # OSError: the agent /metrics port cannot be bound
        _fail(str(exc))


def enroll(
    token: str = typer.Option(..., "--token", envvar="SENTINEL_ENROLL_TOKEN", show_envvar=True,
                              help="One-time enrollment token (or the SENTINEL_ENROLL_TOKEN variable, which keeps "
                                   "it out of the process list)."),
    collector: str = typer.Option(..., "--collector", help="Collector URL, e.g. https://collector:8443"),
    ca: Optional[Path] = typer.Option(None, "--ca", help="Collector CA certificate (PEM) to pin (copied to the state "
                                                         "dir); without it the system's trusted roots are used."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=STATE_HELP),
    force: bool = typer.Option(False, "--force", help="Enroll again with a new key, replacing the saved identity."),
) -> None:
    """Enroll this host's agent with a collector: make a key pair and register its public key."""
    from .agent.enroll import EnrollError
    from .agent.enroll import enroll as do_enroll

    settings = _settings(config, state_dir=state_dir)
    try:
        identity = do_enroll(settings, token, collector, ca_file=ca, force=force)
    except EnrollError as exc:
        _fail(f"enrollment failed: {exc}", 1)
    typer.echo(f"enrolled as agent {identity.agent_id} (system {identity.system}, department "
               f"{identity.department}) with {identity.collector_url}; state in {settings.state_dir}")


UP_PORT = 8470


def up(
    state_dir: Optional[Path] = typer.Option(None, "--state-dir",
                                             help="Where the database, keys and spool live; default "
                                                  "SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or "
                                                  "~/.local/state/sentinel: the one every command reads."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address for the local API (loopback only)."),
    port: Optional[int] = typer.Option(None, "--port", help=f"API port (default {UP_PORT}; with --once a free one)."),
    baseline: str = typer.Option("dengbao-l3-linux", "--baseline", "-b", help="Shipped baseline id or a YAML file."),
    interval: float = typer.Option(3600, "--interval", min=60, help="Seconds between baseline runs."),
    once: bool = typer.Option(False, "--once", help="Run one cycle (check, store, summary) and exit."),
    lang: str = typer.Option("zh", "--lang", help="zh | en (summary text)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the agent and collector do."),
    alerting_config: Optional[Path] = typer.Option(
        None, "--alerting-config", help="Push events to Alertmanager and chat robots as this file says "
                                        "(docs/alerting.md; or SENTINEL_COLLECTOR_ALERTING_CONFIG)."),
) -> None:
    """All in one: a local collector (SQLite) and an agent for this host, enrolled automatically.

    The collector serves its API and Prometheus /metrics on the same port (default 8470), on a loopback
    address only (plain HTTP). Other hosts need `sentinel collector` with TLS (README walkthrough).

    Exit (with --once) 0: every counted check passed; 1: this host has failing or undetermined checks (the
    usual result on a host not yet hardened), or a report was not made or stored; 2: usage or configuration."""
    from .agent.allinone import LocalCollector, UpError, install_site_baseline, refuse_old_layout, write_secret
    from .agent.client import ClientError
    from .agent.config import BaselineSchedule
    from .agent.enroll import EnrollError, private_dir
    from .agent.enroll import enroll as do_enroll
    from .agent.spool import SpoolError
    from .state import AGENT_SUBDIR, default_state_dir

    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    _setup_logging("INFO" if verbose else "WARNING")
    _check_baseline(baseline)
    state = (state_dir or default_state_dir()).absolute()
    settings = _settings(None, default_file=False, state_dir=state / AGENT_SUBDIR,
                         baselines=[BaselineSchedule(baseline=baseline, interval=interval)],
                         jitter=min(60.0, interval / 10))
    collector = None
    try:
        refuse_old_layout(state)
        private_dir(state)
        install_site_baseline(state, baseline)
        if port is None:
            port = 0 if once else UP_PORT  # a one-off run takes any free port
        collector = LocalCollector(state, host=host, port=port, alerting_config=alerting_config)
        collector.prepare()
        enrolled = settings.identity_file.exists() and collector.agent_usable(_saved_agent_id(settings))
        token_file = state / "admin-token"
        enroll_token, admin_secret = collector.bootstrap(want_token=not enrolled, want_admin=not token_file.exists())
        if admin_secret is not None:
            write_secret(token_file, admin_secret)
        collector.start()
        settings.collector_url = collector.url
        if not enrolled:
            do_enroll(settings, enroll_token, collector.url, force=True)
        daemon = _announcing()(settings)
    except (UpError, EnrollError, ClientError, SpoolError, OSError) as exc:
        if collector is not None:
            collector.close()
        _fail(f"sentinel up: {exc}")
    if once:
        typer.echo(f"sentinel up --once: checking this host with {baseline}; history in {state} "
                   "(`sentinel up` serves it; `sentinel department list`, `export`, ... read it too)", err=True)
        try:
            reports, flushed = daemon.run_once()
        except EnrollError as exc:  # another `sentinel up` holds this state directory
            _fail(f"sentinel up: {exc}")
        finally:
            daemon.close()
            collector.close()
        raise typer.Exit(_print_once(reports, flushed, len(settings.baselines), lang))
    typer.echo(f"sentinel up: collector API {collector.url}/api/v1 (OpenAPI schema {collector.url}/api/v1/openapi.json), "
               f"admin token in {token_file}; state in {state}", err=True)
    typer.echo(f"sentinel up: serving plain HTTP on loopback ({host}) only: other hosts cannot reach it; for agents "
               "on other hosts run `sentinel collector init` and `sentinel collector` (TLS)", err=True)
    from .collector.metrics import metrics_token_path

    token_path = metrics_token_path(collector.settings)
    typer.echo(f"sentinel up: Prometheus metrics at {collector.url}/metrics"
               + (f" (Authorization: Bearer, token in {token_path})" if token_path else "")
               + ("; pushing events as " + str(collector.settings.alerting_config)
                  if collector.settings.alerting_config else ""), err=True)
    typer.echo(f"sentinel up: checking this host with {baseline} every {interval:g} s, one line per run; "
               "Ctrl-C stops", err=True)
    try:
        daemon.run_forever(_stop_on_signals())
    except EnrollError as exc:
        _fail(f"sentinel up: {exc}")
    finally:
        collector.close()
    typer.echo("sentinel up: stopped", err=True)


def _check_baseline(ref: str) -> None:
    """Fail fast with file:line problems; the agent's child process would only log them."""
    from .baseline import BaselineError, load_baseline

    try:
        load_baseline(ref)
    except BaselineError as exc:
        _fail(str(exc))


def _saved_agent_id(settings) -> Optional[str]:
    from .agent.enroll import EnrollError, load_identity

    try:
        return load_identity(settings).agent_id
    except EnrollError:
        return None


SEVERITY_ORDER = ("critical", "high", "medium", "low")
SHOWN = 15


def _print_once(reports: list, flushed, expected: int, lang: str) -> int:
    """A summary per report, worst first, and the exit code as `sentinel check` has it (said in words)."""
    failing = undetermined = 0
    for report in reports:
        fails, errors = _print_summary(report, lang)
        failing, undetermined = failing + fails, undetermined + errors
    for answer in flushed.answers:
        if answer.get("run_id") is not None:
            typer.echo(f"stored as run {answer['run_id']}: {len(answer.get('new_failures', []))} new failure(s), "
                       f"{len(answer.get('fixed', []))} fixed since the previous run")
    if len(reports) < expected:
        typer.echo(f"exit 1: {expected - len(reports)} baseline run(s) produced no report (see the error above)",
                   err=True)
        return 1
    if not flushed.complete:
        typer.echo(f"exit 1: {flushed.remaining} envelope(s) not stored: {flushed.blocked}", err=True)
        return 1
    if failing or undetermined:
        typer.echo(f"exit 1: {failing} check(s) failed and {undetermined} could not be determined (error); "
                   "`sentinel up --once` exits 0 only when every counted check passes (1 = findings on this "
                   "host, not a fault of sentinel; 2 = usage or configuration error)", err=True)
        return 1
    typer.echo("exit 0: every counted check passed", err=True)
    return 0


def _print_summary(report: dict, lang: str) -> tuple[int, int]:
    """High-risk findings first (they cap the conclusion to 差), then failures by severity, then the items
    waiting for an assessor and the checks that could not run, with their reasons. Returns (fails, errors)."""
    s = report["summary"]
    counts = s.get("counts", {})
    base = report["baseline"]
    title = base["title"].get(lang) or base["id"]
    score = "-" if s.get("score") is None else f"{s['score']:.1f}"
    conclusion = s["conclusion"] if lang == "zh" else s.get("conclusion_en", s["conclusion"])
    typer.echo(f"{title} ({base['id']} {base['version']}) on {report['host']['hostname']}: score {score}, "
               f"{conclusion}; pass {counts.get('pass', 0)}, fail {counts.get('fail', 0)}, "
               f"error {counts.get('error', 0)}, n/a {counts.get('not_applicable', 0)}, "
               f"high-risk {s.get('high_risk', 0)}")
    counted = [r for r in report["results"] if not r.get("waiver")]
    fails = [r for r in counted if r["status"] == "fail"]
    errors = [r for r in counted if r["status"] == "error"]

    def name(r: dict) -> str:
        return f"{r['clause']}{r['item']} {r['check_id']}: {r['title'].get(lang) or r['check_id']}"

    high_risk = [r for r in fails if r.get("high_risk")]
    if high_risk:
        cap = "cap the conclusion to 差" if lang == "zh" else "cap the conclusion to poor (差)"
        typer.echo(f"  high-risk findings ({len(high_risk)}; they {cap}):")
        case = "高风险判定指引" if lang == "zh" else "high-risk guide case"
        for r in high_risk:
            typer.echo(f"    {r['severity']:8} {name(r)} [{case} {r['high_risk']}]")
    others = sorted((r for r in fails if not r.get("high_risk")), key=_severity_rank)
    if others:
        typer.echo(f"  other failures by severity ({len(others)}):")
        for r in others[:SHOWN]:
            typer.echo(f"    {r['severity']:8} {name(r)}")
        if len(others) > SHOWN:
            typer.echo(f"    ... and {len(others) - SHOWN} more (sentinel check --baseline {base['id']} shows all)")
    items = report.get("items", [])
    manual = sum(1 for i in items if i.get("verdict") == "待核查" and not i.get("checks"))
    if manual:
        typer.echo(f"  待核查: {manual} item(s) without an automated check wait for an assessor's verdict "
                   "(sentinel assess)")
    if errors:
        typer.echo(f"  could not run ({len(errors)} error; never counted as pass):")
        for r in errors[:SHOWN]:
            typer.echo(f"    {name(r)}: {r.get('reason') or 'no reason given'}")
        if len(errors) > SHOWN:
            typer.echo(f"    ... and {len(errors) - SHOWN} more")
    return len(fails), len(errors)


def _severity_rank(r: dict) -> tuple[int, str, str]:
    sev = r.get("severity")
    return (SEVERITY_ORDER.index(sev) if sev in SEVERITY_ORDER else len(SEVERITY_ORDER), r["clause"], r["item"])


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.command("enroll")(enroll)
    app.command("up")(up)
