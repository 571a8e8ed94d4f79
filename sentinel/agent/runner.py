"""Run one baseline in a short-lived child process, at low priority and within a time budget.

Why a child process: a probe that hangs (a stuck NFS mount, a command ignoring its timeout) is killed
with its whole process group when the budget runs out, and cannot wedge the agent; and the check
engine's memory (baselines, probes, results) is returned to the system when the child exits, so the
agent stays small at rest.

Child: `python -m sentinel.agent.runner [--nice N] [--ionice-idle] --report-id ID BASELINE` prints the
HostReport JSON on stdout (`--object JSON`: of that 测评对象 instance); exit 2 with a message on stderr if the
baseline cannot be used. With `--inventory` instead it prints the host inventory (see inventory.py), with
`--discover [--level N|--level-of BASELINE]` the objects the host runs (sentinel/discovery.py), for the same
reasons.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Optional

log = logging.getLogger(__name__)

STDERR_KEEP = 2000
_active: set[subprocess.Popen] = set()  # running children, so stopping the agent can end them
_active_lock = threading.Lock()


class RunError(Exception):
    """The child produced no result; the message says why."""


def run_isolated(baseline: str, report_id: str, budget: float, nice: int = 10,
                 ionice_idle: bool = True, root: Optional[str] = None,
                 target: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The HostReport (as JSON data) of `baseline` on this host (or the offline `root`), run in a child process;
    `target`: the 测评对象 instance it judges (an ObjectRef as JSON data), for an object baseline."""
    what = f"baseline {baseline}" + (f" on {target.get('kind')}:{target.get('instance')}" if target else "")
    extra = ["--object", json.dumps(target, ensure_ascii=False)] if target else []
    report = _child_json(_root_args(root) + extra + ["--report-id", report_id, "--", baseline], what,
                         budget, nice, ionice_idle)
    if "summary" not in report:
        raise RunError(f"baseline {baseline}: the run printed something that is not a host report")
    return report


def inventory_isolated(budget: float, nice: int = 10, ionice_idle: bool = True,
                       root: Optional[str] = None) -> dict[str, Any]:
    """The host inventory, collected in a child process (the agent itself stays small)."""
    return _child_json(_root_args(root) + ["--inventory"], "inventory", budget, nice, ionice_idle)


def discover_isolated(budget: float, nice: int = 10, ionice_idle: bool = True, root: Optional[str] = None,
                      level: Optional[int] = None, level_of: Optional[str] = None) -> dict[str, Any]:
    """The host's objects (sentinel/discovery.py) as {"level", "objects", "shipped"}, found in a child process.
    The level is `level`, or that of the baseline `level_of` (the OS baseline the agent runs)."""
    args = ["--discover"] + (["--level", str(level)] if level else ["--level-of", level_of] if level_of else [])
    found = _child_json(_root_args(root) + args, "object discovery", budget, nice, ionice_idle)
    if not isinstance(found.get("objects"), list):
        raise RunError("object discovery: the run printed something that is not a list of objects")
    return found


def _root_args(root: Optional[str]) -> list[str]:
    return ["--root", str(root)] if root else []  # host_root: the child reads the host through RootHost


def _child_json(args: list[str], what: str, budget: float, nice: int, ionice_idle: bool) -> dict[str, Any]:
    # -I: the installed sentinel, never a `sentinel/` in the working directory (-m would put it first on
    # sys.path: a source checkout's, which lacks the mapped sentinel.baselines, or anything a writable
    # directory holds, run as root), and no PYTHON* variables
    argv = [sys.executable, "-I", "-m", "sentinel.agent.runner", "--nice", str(nice)]
    if ionice_idle:
        argv.append("--ionice-idle")
    argv += args
    start = time.monotonic()
    # argv is this interpreter running this module; args are options built by the callers here, no shell
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: S603  fixed argv
                            stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    with _active_lock:
        _active.add(proc)
    try:
        out, err = proc.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise RunError(f"{what}: no report within the time budget of {budget:g} s; the run was killed") from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        with _active_lock:
            _active.discard(proc)
        _kill_group(proc, only_strays=True)
    if proc.returncode and proc.returncode < 0:
        raise RunError(f"{what}: run ended by signal {-proc.returncode}")
    if proc.returncode != 0:
        why = err.decode("utf-8", "replace").strip()[-STDERR_KEEP:] or f"exit status {proc.returncode}"
        raise RunError(f"{what}: run failed: {why}")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise RunError(f"{what}: the run printed no valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{what}: the run printed JSON that is not an object")
    if err.strip():
        log.debug("%s run said: %s", what, err.decode("utf-8", "replace").strip()[-STDERR_KEEP:])
    log.info("%s ran in %.1f s", what, time.monotonic() - start)
    return data


def stop_all() -> None:
    """Kill every running child (the agent is stopping)."""
    with _active_lock:
        running = list(_active)
    for proc in running:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_group(proc: subprocess.Popen, only_strays: bool = False) -> None:
    """Kill the child's process group (its commands too); after a normal exit, only leftovers."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if not only_strays:
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def lower_priority(nice: int, ionice_idle: bool) -> list[str]:
    """Lower this process's CPU and I/O priority; returns what could not be done (never fatal)."""
    problems = []
    if nice:
        try:
            os.nice(nice)
        except OSError as exc:
            problems.append(f"nice({nice}): {exc.strerror}")
    if ionice_idle:
        try:
            import psutil

            psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
        except (OSError, AttributeError, ValueError) as exc:  # AttributeError: not Linux
            problems.append(f"ionice idle: {exc}")
    return problems


def _child(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="sentinel.agent.runner")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--ionice-idle", action="store_true")
    parser.add_argument("--report-id")
    parser.add_argument("--inventory", action="store_true", help="print the host inventory instead")
    parser.add_argument("--root", help="read the host through this mounted root (live-only facts: not_applicable)")
    parser.add_argument("--discover", action="store_true", help="print the objects this host runs instead")
    parser.add_argument("--level", type=int, choices=(2, 3, 4), help="with --discover: the system's level")
    parser.add_argument("--level-of", help="with --discover: take the level of this baseline")
    parser.add_argument("--object", help="the object instance the baseline judges (ObjectRef JSON)")
    parser.add_argument("baseline", nargs="?")
    args = parser.parse_args(argv)
    if (args.inventory + args.discover + bool(args.baseline)) != 1 or (args.baseline and not args.report_id):
        parser.error("give either --inventory, --discover or --report-id ID BASELINE")
    for problem in lower_priority(args.nice, args.ionice_idle):
        print(f"warning: {problem}", file=sys.stderr)
    if args.inventory:
        from ..hostview import open_host
        from .inventory import collect

        sys.stdout.write(json.dumps(collect(open_host(args.root))))
        return 0

    from ..baseline import BaselineError, load_baseline
    from ..engine import run_baseline
    from ..hostview import open_host

    if args.discover:
        from ..baseline import shipped
        from ..discovery import discover

        level = args.level or 3
        if args.level_of:
            try:
                level = load_baseline(args.level_of).level
            except BaselineError as exc:
                print(str(exc), file=sys.stderr)
                return 2
        known = sorted(shipped())
        host = open_host(args.root)
        found = discover(host, level, shipped=known)
        sys.stdout.write(json.dumps({"level": level, "shipped": known, "hostname": host.hostname(),
                                     "objects": [d.model_dump(mode="json") for d in found]}, ensure_ascii=False))
        return 0
    from pydantic import ValidationError

    from ..model import ObjectRef

    try:
        baseline = load_baseline(args.baseline)
        target = ObjectRef.model_validate_json(args.object) if args.object else None
    except (BaselineError, ValidationError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if target is not None and target.kind != baseline.object:
        print(f"baseline {baseline.id} judges {baseline.object} objects, not {target.kind}", file=sys.stderr)
        return 2
    report = run_baseline(baseline, open_host(args.root), report_id=args.report_id, target=target)
    sys.stdout.write(report.model_dump_json())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
