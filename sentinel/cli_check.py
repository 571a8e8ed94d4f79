"""`sentinel check` and `sentinel baselines ...`: the host engine's commands."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer

DEFAULT_BASELINE = "dengbao-l3-linux"


def _fail_config(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _load(ref: str):
    from .baseline import BaselineError, load_baseline

    try:
        return load_baseline(ref)
    except BaselineError as exc:
        _fail_config(str(exc))


def _write(text: str, output: Optional[Path]) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail_config(f"-o {output}: {exc.strerror or exc}")


def check(
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b", metavar="ID|FILE",
                                           help=f"Shipped baseline id or a YAML file (default {DEFAULT_BASELINE}, "
                                                "or with --object dengbao-l<level>-<kind>)."),
    object_: Optional[str] = typer.Option(None, "--object", metavar="KIND[:INSTANCE]",
                                          help="Judge one 测评对象 on the host: mysql, postgresql, redis, nginx, "
                                               "httpd or tomcat, optionally the instance (port or config path)."),
    level: int = typer.Option(3, "--level", min=2, max=4, help="The system's level: picks dengbao-l<level>-..."),
    list_objects: bool = typer.Option(False, "--list-objects",
                                      help="List the 测评对象 discovery finds on this host (or --root) and exit."),
    root: Optional[Path] = typer.Option(None, "--root", metavar="DIR",
                                        help="Check an offline root directory instead of this host."),
    fmt: str = typer.Option("table", "--format", "-f", metavar="table|json|csv|junit", help="Output format."),
    lang: str = typer.Option("zh", "--lang", metavar="zh|en", help="Language of the table, csv and junit text."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the report to FILE."),
) -> None:
    """Run a baseline on this host (or --root DIR). Exit 0: no failures; 1: failures or undetermined \
checks; 2: usage."""  # the backslash keeps this one line: typer lists a command by its docstring's lines
    from . import render
    from .engine import run_baseline
    from .hostview import open_host
    from .model import Status

    if fmt not in render.FORMATS:
        _fail_config(f"--format {fmt}: expected one of {', '.join(render.FORMATS)}")
    if lang not in ("zh", "en"):
        _fail_config(f"--lang {lang}: expected zh or en")
    if root is not None:
        _check_root(root)
    host = open_host(str(root) if root else None)
    if list_objects:
        _list_objects(host, level, fmt, lang, output)
        raise typer.Exit(0)
    target = None
    if object_ is not None:
        target, wanted = _object(host, object_, level)
        baseline = baseline or wanted
    spec = _load(baseline or (DEFAULT_BASELINE if level == 3 else f"dengbao-l{level}-linux"))
    if target is not None and spec.object != target.kind:
        _fail_config(f"--baseline {baseline}: it judges {spec.object} objects, not {target.kind}")
    if target is None and spec.object != "os":
        # an object baseline alone judges the one instance of its kind discovery finds (`sentinel check --baseline
        # dengbao-l3-postgresql [--root DIR]`); none or several: the user says which
        from .discovery import discover

        found = [d.object for d in discover(host, spec.level) if d.object.kind == spec.object]
        if len(found) != 1:
            _fail_config(f"--baseline {baseline}: an object baseline ({spec.object}); say which one with "
                         f"--object {spec.object}[:INSTANCE]")
        target = found[0]
    report = run_baseline(spec, host, target=target)
    _privilege_hint(report, lang)
    if fmt == "json":
        _write(render.to_json(report), output)
    elif fmt == "csv":
        _write(render.to_csv(report, lang), output)
    elif fmt == "junit":
        _write(render.to_junit(report, lang), output)
    elif output is None:
        render.print_table(report, lang)
    else:
        with output.open("w", encoding="utf-8") as fh:
            render.print_table(report, lang, file=fh)
    from .scoring import counted  # waived and advisory results do not decide the exit code

    bad = [r for r in report.results if counted(r) and r.status in (Status.FAIL, Status.ERROR)]
    raise typer.Exit(1 if bad else 0)


def _object(host, given: str, level: int):
    """The 测评对象 `KIND[:INSTANCE]` names, as discovery finds it on the host, and the baseline for its kind."""
    from .discovery import OBJECT_KINDS, default_name, discover
    from .model import ObjectRef

    kind, _, instance = given.partition(":")
    if kind not in OBJECT_KINDS:
        _fail_config(f"--object {given}: expected KIND[:INSTANCE], KIND one of {', '.join(OBJECT_KINDS)}")
    found = [d for d in discover(host, level) if d.object.kind == kind]
    pick = [d for d in found if d.object.instance == instance] if instance else found[:1]
    wanted = f"dengbao-l{level}-{kind}"
    if pick:
        return pick[0].object, wanted
    listed = ", ".join(d.object.instance for d in found) or "none"
    if not instance:
        _fail_config(f"--object {kind}: no {kind} found on this host (packages, units, processes); give "
                     f"{kind}:INSTANCE to judge one anyway")
    typer.echo(f"warning: --object {given}: discovery does not find this instance (found: {listed}); judging "
               "it as named", err=True)
    return ObjectRef(kind=kind, instance=instance, name=default_name(host.hostname(), kind, instance),
                     port=int(instance) if instance.isdigit() else None,
                     config=None if instance.isdigit() else instance), wanted


def _list_objects(host, level: int, fmt: str, lang: str, output: Optional[Path]) -> None:
    import json

    from .discovery import discover

    found = discover(host, level)
    if fmt == "json":
        _write(json.dumps([d.model_dump(mode="json") for d in found], ensure_ascii=False, indent=2) + "\n", output)
        return
    zh = lang != "en"
    lines = []
    for d in found:
        o = d.object
        state = {True: "运行中" if zh else "running", False: "未运行" if zh else "not running",
                 None: "离线根目录" if zh else "offline root"}[d.running]
        base = d.baseline or (f"无基线 {d.wanted_baseline}" if zh else f"no baseline {d.wanted_baseline}")
        lines.append(f"{o.kind}:{o.instance}\t{o.name}\t{state}\t{base}")
        lines += [f"\t{'依据' if zh else 'found by'}: {f}" for f in d.found_by]
    if not found:
        lines.append("未发现数据库、中间件或 Web 服务器" if zh else "no databases, middleware or web servers found")
    _write("\n".join(lines) + "\n", output)


def _check_root(root: Path) -> None:
    """Refuse a --root that cannot be a system's root (no etc/); warn when it does not say which OS it is."""
    if not root.is_dir():
        _fail_config(f"--root {root}: not a directory")
    if not (root / "etc").is_dir():
        _fail_config(f"--root {root}: not a root filesystem: it has no etc/ directory (give the directory that "
                     "holds the image's etc/, usr/ and var/)")
    # lexists: etc/os-release is often an absolute symlink into the image's usr/, which must not be followed
    # on this host
    if not any(os.path.lexists(root / rel) for rel in ("etc/os-release", "usr/lib/os-release")):
        typer.echo(f"warning: --root {root}: no etc/os-release or usr/lib/os-release; the OS is guessed from the "
                   "package database if there is one, and checks for one OS family may be not_applicable", err=True)


def _privilege_hint(report, lang: str) -> None:
    """Once, when not root and checks could not read what they need: say that root is needed."""
    from .model import Status

    if os.geteuid() == 0:
        return
    denied = [r for r in report.results if r.status == Status.ERROR and "permission denied" in (r.reason or "")]
    if not denied:
        return
    if lang == "zh":
        typer.echo(f"提示: {len(denied)} 项检查因权限不足无法判定（如 {denied[0].check_id}）；请以 root 身份运行"
                   "（sudo sentinel check ...）以得到完整结果。", err=True)
    else:
        typer.echo(f"hint: {len(denied)} check(s) could not be determined for lack of permission (e.g. "
                   f"{denied[0].check_id}); run as root (sudo sentinel check ...) for a complete report.", err=True)


baselines_app = typer.Typer(help="List, show and validate baselines.", no_args_is_help=True)


@baselines_app.command("list")
def baselines_list() -> None:
    """Shipped baselines."""
    from rich.console import Console
    from rich.table import Table

    from .baseline import shipped

    table = Table("id", "version", "level", "items", "checks", "title")
    for ref in shipped():
        spec = _load(ref)
        items = sum(len(c.items) for c in spec.controls)
        table.add_row(spec.id, spec.version, str(spec.level), str(items), str(sum(1 for _ in spec.iter_checks())),
                      spec.title.zh)
    Console().print(table)


@baselines_app.command("show")
def baselines_show(
    ref: str = typer.Argument(..., metavar="ID|FILE", help="Baseline id or file."),
    lang: str = typer.Option("zh", "--lang", metavar="zh|en", help="Language of the tree."),
    fmt: str = typer.Option("table", "--format", "-f", metavar="table|json", help="Output format."),
) -> None:
    """Control points, items and checks of a baseline (after extends and site overrides)."""
    spec = _load(ref)
    if fmt == "json":
        typer.echo(spec.model_dump_json(indent=2, by_alias=True, exclude_none=True))
        return
    from rich.console import Console
    from rich.tree import Tree

    tree = Tree(f"[bold]{spec.id}[/] {spec.version} — {spec.title.get(lang)} (level {spec.level})")
    for control in spec.controls:
        node = tree.add(f"{control.clause} {control.name.get(lang)}")
        for item in control.items:
            leaf = node.add(f"{item.item}) [dim]w={item.weight}[/] {item.text.get(lang)}"
                            + ("" if item.checks else " [cyan](manual / 待核查)[/]"))
            for chk in item.checks:
                risk = f" [red]high-risk {chk.high_risk}[/]" if chk.high_risk else ""
                waived = f" [yellow]waived: {chk.waiver}[/]" if chk.waiver else ""
                leaf.add(f"{chk.id} [{chk.severity.value}] {chk.title.get(lang)} ({chk.probe}; "
                         f"{chk.expect.describe()}){risk}{waived}")
    Console().print(tree)


@baselines_app.command("validate")
def baselines_validate(path: Path = typer.Argument(..., metavar="FILE", help="Baseline YAML file.")) -> None:
    """Validate a baseline file; errors as file:line: message, exit 2."""
    spec = _load(str(path))
    items = sum(len(c.items) for c in spec.controls)
    checks = sum(1 for _ in spec.iter_checks())
    typer.echo(f"{path}: ok — {spec.id} {spec.version}, level {spec.level}, {len(spec.controls)} control points, "
               f"{items} items, {checks} checks")


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.add_typer(baselines_app, name="baselines")
