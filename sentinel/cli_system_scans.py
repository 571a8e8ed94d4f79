"""`sentinel system scan-schedule` and `sentinel system scans`: a system's network scan settings and its scans,
on the collector's database as the local operator (audited as `cli:<user>`), like the other `system` commands.

The running collector (`sentinel collector`, `sentinel up`) reloads schedules within `scan_sync_seconds`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import typer

from .cli_collector import DatabaseUrl, StateDir, _admin, _fail, _settings, _validated


def scan_schedule(
    name: str = typer.Argument(..., help="System name."),
    interval: Optional[int] = typer.Option(None, "--interval", help="Seconds between scans (at least 60)."),
    jitter: Optional[int] = typer.Option(None, "--jitter", help="Up to this many seconds added to each run."),
    enable: Optional[bool] = typer.Option(None, "--enable/--disable", help="Run or stop the scheduled scans."),
    zone_baseline: Optional[str] = typer.Option(None, "--zone-baseline", help="Zone baseline id."),
    zone: Optional[str] = typer.Option(None, "--zone", help="Zone of the targets ('' clears it)."),
    scanner_zone: Optional[str] = typer.Option(None, "--scanner-zone",
                                               help="Zone the collector scans from ('' clears it)."),
    ports: Optional[str] = typer.Option(None, "--ports", help="TCP ports, e.g. 22,80,8000-8100 ('' = the defaults)."),
    udp_ports: Optional[str] = typer.Option(None, "--udp-ports", help="UDP ports ('' = no UDP scan)."),
    version: Optional[bool] = typer.Option(None, "--version-detection/--no-version-detection",
                                           help="nmap -sV on open ports."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Show a system's scan schedule, or change the settings given (the others are kept).

    The scan scope is always the system's scan_scope (`sentinel system add --scope`)."""
    from .collector import operations
    from .collector.scan_schemas import ScanScheduleIn
    from .collector.scanner import load_schedule, set_schedule

    given: dict[str, Optional[Union[bool, int, str]]] = {
        "interval_seconds": interval, "jitter_seconds": jitter, "enabled": enable, "zone_baseline": zone_baseline,
        "zone": zone, "scanner_zone": scanner_zone, "tcp_ports": ports, "udp_ports": udp_ports,
        "version_detection": version}
    # "" clears zone, scanner zone and ports (None below), so a change may be None
    changes: dict[str, Optional[Union[bool, int, str]]] = {k: v for k, v in given.items() if v is not None}
    for key in ("zone", "scanner_zone", "tcp_ports", "udp_ports"):
        if changes.get(key) == "":
            changes[key] = None
    settings = _settings(state_dir=state_dir, database_url=database_url)
    with _admin(state_dir, database_url) as ctx:
        system = operations.system_by_name(ctx.session, name)
        assert system.id is not None  # a stored row
        current = load_schedule(ctx.session.connection(), system.id)
        if changes:
            if "interval_seconds" in changes and "enabled" not in changes:
                changes["enabled"] = True  # giving an interval means: scan on it
            values = {k: getattr(current, k) for k in ScanScheduleIn.model_fields} | changes
            spec = _validated(ScanScheduleIn, **values)
            set_schedule(ctx, system.id, spec, settings)
            current = load_schedule(ctx.session.connection(), system.id)
        scope = ", ".join(system.scan_scope) or "(none registered: nothing is scanned)"
    when = (f"every {current.interval_seconds} s (+ up to {current.jitter_seconds} s)" if current.enabled
            else "not scheduled (scans only on request)")
    typer.echo(f"system {name}: {when}; scope {scope}")
    typer.echo(f"  zone baseline {current.zone_baseline}, zone {current.zone or '-'}, scanner zone "
               f"{current.scanner_zone or '-'}; tcp {current.tcp_ports or 'default'}, "
               f"udp {current.udp_ports or 'none'}, version detection {'on' if current.version_detection else 'off'}")


def scans(
    name: str = typer.Argument(..., help="System name."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """List a system's latest scan runs."""
    from sqlmodel import col, select

    from .collector import operations
    from .store.models import ScanRun

    with _admin(state_dir, database_url) as ctx:
        system = operations.system_by_name(ctx.session, name)
        rows = ctx.session.exec(select(ScanRun).where(ScanRun.system_id == system.id)
                                .order_by(col(ScanRun.id).desc()).limit(limit)).all()
        if not rows:
            _fail(f"system {name}: no scans yet", 1)
        for r in rows:
            took = f"{r.duration_ms / 1000:.1f} s" if r.duration_ms is not None else "-"
            outcome = (f"{r.services_open} open, {r.services_forbidden} forbidden, {r.conclusion}"
                       if r.status == "succeeded" else (r.error or ""))
            typer.echo(f"{r.id}\t{r.started_at:%Y-%m-%d %H:%M:%S}\t{r.status}\t{r.triggered_by}\t{took}\t{outcome}")


def register(app: typer.Typer) -> None:
    from .cli_collector import system_app

    system_app.command("scan-schedule")(scan_schedule)
    system_app.command("scans")(scans)
