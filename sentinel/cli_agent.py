"""`sentinel agent`, `sentinel enroll` and `sentinel up` (collector + agent on one machine)."""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

CONFIG_HELP = "Agent config file (YAML); default /etc/sentinel/agent.yaml when it exists."
STATE_HELP = "State directory (identity, key, spool); default /var/lib/sentinel-agent."


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
    from .agent.daemon import Agent
    from .agent.enroll import EnrollError
    from .agent.spool import SpoolError

    settings = _settings(config, state_dir=state_dir, metrics_port=metrics_port)
    _setup_logging(settings.log_level)
    try:
        daemon = Agent(settings)
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
                                                  "/var/lib/sentinel-up (root) or ~/.local/state/sentinel-up."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address for the local API."),
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

    The collector serves its API and Prometheus /metrics on the same port (default 8470).

    Exit (with --once) 0: no failures; 1: failures or undetermined checks; 2: usage or configuration error."""
    from .agent.allinone import LocalCollector, UpError, default_state_dir, write_secret
    from .agent.client import ClientError
    from .agent.config import BaselineSchedule
    from .agent.daemon import Agent
    from .agent.enroll import EnrollError, private_dir
    from .agent.enroll import enroll as do_enroll
    from .agent.spool import SpoolError

    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    _setup_logging("INFO" if verbose else "WARNING")
    _check_baseline(baseline)
    state = (state_dir or default_state_dir()).absolute()
    settings = _settings(None, default_file=False, state_dir=state / "agent",
                         baselines=[BaselineSchedule(baseline=baseline, interval=interval)],
                         jitter=min(60.0, interval / 10))
    collector = None
    try:
        private_dir(state)
        if port is None:
            port = 0 if once else UP_PORT  # a one-off run takes any free port
        collector = LocalCollector(state / "collector", host=host, port=port, alerting_config=alerting_config)
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
        daemon = Agent(settings)
    except (UpError, EnrollError, ClientError, SpoolError, OSError) as exc:
        if collector is not None:
            collector.close()
        _fail(f"sentinel up: {exc}")
    if once:
        typer.echo(f"sentinel up --once: checking this host with {baseline}; history in {state} "
                   "(`sentinel up` serves it)", err=True)
        try:
            reports, flushed = daemon.run_once()
        except EnrollError as exc:  # another `sentinel up` holds this state directory
            _fail(f"sentinel up: {exc}")
        finally:
            daemon.close()
            collector.close()
        raise typer.Exit(_print_once(reports, flushed, len(settings.baselines), lang))
    typer.echo(f"sentinel up: collector API {collector.url}/api/v1 (docs {collector.url}/api/v1/docs), "
               f"admin token in {token_file}; state in {state}", err=True)
    typer.echo(f"sentinel up: Prometheus metrics at {collector.url}/metrics"
               + ("; pushing events as " + str(collector.settings.alerting_config)
                  if collector.settings.alerting_config else ""), err=True)
    typer.echo(f"sentinel up: checking this host with {baseline} every {interval:g} s; Ctrl-C stops", err=True)
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


def _print_once(reports: list, flushed, expected: int, lang: str) -> int:
    """A short summary per report; the exit code as `sentinel check` has it."""
    failing = False
    for report in reports:
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
        bad = [r for r in report["results"] if not r.get("waiver") and r["status"] in ("fail", "error")]
        failing = failing or bool(bad)
        for r in bad[:15]:
            typer.echo(f"  {r['status']:5} {r['severity']:8} {r['clause']}{r['item']} {r['check_id']}: "
                       f"{r['title'].get(lang, r['check_id'])}")
        if len(bad) > 15:
            typer.echo(f"  ... and {len(bad) - 15} more (sentinel check --baseline {base['id']} shows all)")
    for answer in flushed.answers:
        if answer.get("run_id") is not None:
            typer.echo(f"stored as run {answer['run_id']}: {len(answer.get('new_failures', []))} new failure(s), "
                       f"{len(answer.get('fixed', []))} fixed since the previous run")
    if len(reports) < expected:
        typer.echo(f"{expected - len(reports)} baseline run(s) produced no report (see the error above)", err=True)
        return 1
    if not flushed.complete:
        typer.echo(f"{flushed.remaining} envelope(s) not stored: {flushed.blocked}", err=True)
        return 1
    return 1 if failing else 0


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.command("enroll")(enroll)
    app.command("up")(up)
