"""`sentinel` command line. Exit codes: 0 no failures, 1 failures found, 2 usage or configuration error.

Each area keeps its commands in its own module (`sentinel/cli_*.py`) exposing `register(app)`; heavy
imports (web framework, ORM, nmap) happen inside the command functions so `sentinel check` stays lean.
"""
from __future__ import annotations

import importlib
import os
import sys

# sentinel uses no pydantic plugins; looking for them loads importlib.metadata (~35 ms on every start).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")

import typer

app = typer.Typer(
    name="sentinel",
    help="Continuous 等保 2.0 (GB/T 22239-2019) compliance: host checks, network scans, scoring, evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands; each has register(app: typer.Typer) -> None.
_COMMAND_MODULES = (
    "sentinel.cli_collector",
    "sentinel.cli_check",
    "sentinel.cli_agent",
    "sentinel.cli_scan_oneshot",
    "sentinel.cli_evidence",
    "sentinel.cli_system_scans",
    "sentinel.cli_plan",
)


_registered: list[str] = []


def _register() -> None:
    from .cli_help import install

    install()  # --help shows metavars, not <bool>/<list[str]> (sentinel/cli_help.py says why)
    # main() may run many times in one process (tests): add each module's commands once
    for name in _COMMAND_MODULES:
        if name not in _registered:
            importlib.import_module(name).register(app)
            _registered.append(name)


def _print_version(value: bool) -> None:
    # eager: runs while the options are parsed, before click asks for a subcommand ("Missing command.")
    if value:
        from . import __version__

        typer.echo(f"sentinel {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Options before the subcommand; --version is handled by its eager callback."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (usage errors: 2, printed by click)."""
    _register()
    try:
        app(args=argv, prog_name="sentinel")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
