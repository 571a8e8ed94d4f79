"""`sentinel agent`, `sentinel enroll` and `sentinel up` (collector + agent on one machine)."""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import NoReturn, Optional

import typer

CONFIG_HELP = "Agent config file (YAML); default /etc/sentinel/agent.yaml when it exists."
STATE_HELP = ("State directory (identity, key, spool); default <SENTINEL_STATE_DIR>/agent, i.e. "
              "/var/lib/sentinel/agent (root) or ~/.local/state/sentinel/agent.")


def _fail(message: str, code: int = 2) -> NoReturn:
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

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


MAX_ANNOUNCED = 1000  # reports remembered until stored, to say when they are


def _announcing(lang: str = "en", command: str = "agent"):
    """The agent, printing one line per baseline run on stderr whatever the log level: what ran, its result
    and where it was stored (the run id on the collector, or the spool while the collector cannot take it),
    in `lang`; and once, when not root and checks were denied permission, a hint to run as root."""
    from .agent.daemon import Agent
    from .cycle_lines import Announcer

    class AnnouncingAgent(Agent):
        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            self._say = Announcer(lang, command)
            # report id -> ("what ran, result", already said to wait in the spool), until it is stored
            self._made: dict[str, tuple[str, bool]] = {}
            self._made_lock = threading.Lock()

        def run_baseline(self, schedule, target=None):
            report = super().run_baseline(schedule, target)
            if report is None:
                self._say.no_report(schedule.baseline)
                return None
            result = self._say.made(schedule.baseline, report)
            with self._made_lock:
                self._made[report.get("report_id", "")] = (result, False)
                while len(self._made) > MAX_ANNOUNCED:  # the spool may have dropped the oldest meanwhile
                    self._made.pop(next(iter(self._made)))
            return report

        def flush(self):
            outcome = super().flush()
            with self._made_lock:
                for answer in outcome.answers:
                    made = self._made.pop(answer.get("report_id", ""), None)
                    if made is not None:
                        self._say.stored(made[0], answer.get("run_id"), self.client.url, made[1])
                if outcome.blocked:
                    for report_id, (result, said) in list(self._made.items()):
                        if not said:
                            self._say.kept(result, self.settings.spool_dir, outcome.blocked)
                            self._made[report_id] = (result, True)
            return outcome

    return AnnouncingAgent


def agent(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help=STATE_HELP),
    once: bool = typer.Option(False, "--once", help="Run every baseline once, deliver, and exit."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve this host's latest report at "
                                               "/metrics on this port (22239 by convention; binds metrics_address, "
                                               "default 127.0.0.1)."),
    lang: str = typer.Option("en", "--lang", help="en | zh (the line printed per baseline run)"),
) -> None:
    """Run the agent: scheduled baselines, utilisation and inventory, signed and pushed to the collector.

    Exit (with --once) 0: every report made and delivered; 1: a run or the delivery failed; 2: configuration."""
    from .agent.client import ClientError
    from .agent.enroll import EnrollError
    from .agent.spool import SpoolError
    from .wiring import exporters

    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    settings = _settings(config, state_dir=state_dir, metrics_port=metrics_port)
    _setup_logging(settings.log_level)
    try:
        daemon = _announcing(lang, "agent")(settings, metrics=exporters().metrics)
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
                                                  "state_dir of the collector config file, else "
                                                  "SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or "
                                                  "~/.local/state/sentinel: the one every command reads."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Collector config file (YAML, the one "
                                          "`sentinel collector` reads); default SENTINEL_CONFIG, else "
                                          "/etc/sentinel/collector.yaml when it exists."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address for the local API (loopback only)."),
    port: Optional[int] = typer.Option(None, "--port", help=f"API port (default {UP_PORT}; with --once a free one)."),
    baseline: str = typer.Option("dengbao-l3-linux", "--baseline", "-b", help="Shipped baseline id or a YAML file."),
    interval: float = typer.Option(3600, "--interval", min=60, help="Seconds between baseline runs."),
    once: bool = typer.Option(False, "--once", help="Run one cycle (check, store, summary) and exit."),
    lang: str = typer.Option("zh", "--lang", help="zh | en (summary and the line per run)"),
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
    from .agent.client import ClientError
    from .agent.config import BaselineSchedule
    from .agent.enroll import EnrollError, private_dir
    from .agent.enroll import enroll as do_enroll
    from .agent.spool import SpoolError
    from .allinone import LocalCollector, UpError, install_site_baseline, refuse_old_layout, write_secret
    from .state import AGENT_SUBDIR
    from .up_summary import print_once
    from .wiring import exporters

    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    _setup_logging("INFO" if verbose else "WARNING")
    _check_baseline(baseline)
    state = (state_dir or _collector_state_dir(config)).absolute()
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
        collector = LocalCollector(state, exporters(), host=host, port=port, alerting_config=alerting_config,
                                   config_file=config)
        collector.prepare()
        enrolled = settings.identity_file.exists() and collector.agent_usable(_saved_agent_id(settings))
        token_file = state / "admin-token"
        enroll_token, admin_secret = collector.bootstrap(want_token=not enrolled, want_admin=not token_file.exists())
        if admin_secret is not None:
            write_secret(token_file, admin_secret)
        collector.start()
        settings.collector_url = collector.url
        if not enrolled:
            assert enroll_token is not None  # bootstrap made one: want_token was set
            do_enroll(settings, enroll_token, collector.url, force=True)
        daemon = _announcing(lang, "up")(settings, metrics=exporters().metrics)
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
        raise typer.Exit(print_once(reports, flushed, len(settings.baselines), lang))
    typer.echo(f"sentinel up: collector API {collector.url}/api/v1 "
               f"(OpenAPI schema {collector.url}/api/v1/openapi.json), "
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


def _collector_state_dir(config: Optional[Path]) -> Path:
    """The state directory `sentinel collector` and the admin commands would use: SENTINEL_COLLECTOR_STATE_DIR,
    the config file's state_dir, SENTINEL_STATE_DIR or the default (docs/state.md)."""
    from .collector.settings import CollectorConfigError, load_collector_settings

    try:
        return load_collector_settings(config).state_dir
    except CollectorConfigError as exc:
        _fail(f"sentinel up: {exc}")
    raise AssertionError("unreachable")


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


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.command("enroll")(enroll)
    app.command("up")(up)
