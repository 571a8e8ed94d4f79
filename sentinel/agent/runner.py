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

The objects job (discovery, then one baseline per 测评对象) runs in one child for the whole job, `--serve`
(`ObjectChild`): it imports the engine, the probes and the catalogue once, then answers each request (a JSON line
on stdin: discover, or run a baseline on an object) from a fork of itself, which exits when its answer is written;
the answer is one JSON line on stdout. Each object is still judged in a process of its own, killed with the child's
whole process group when its budget runs out, but a host with four objects no longer starts five interpreters
(issue 15: all object baselines of a host within 1 s).
"""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import IO, Any, NoReturn, Optional

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


def _child_argv(nice: int, ionice_idle: bool) -> list[str]:
    # -I: the installed sentinel, never a `sentinel/` in the working directory (-m would put it first on
    # sys.path: a source checkout's, which lacks the mapped sentinel.baselines, or anything a writable
    # directory holds, run as root), and no PYTHON* variables
    argv = [sys.executable, "-I", "-m", "sentinel.agent.runner", "--nice", str(nice)]
    return argv + (["--ionice-idle"] if ionice_idle else [])


def _child_json(args: list[str], what: str, budget: float, nice: int, ionice_idle: bool) -> dict[str, Any]:
    argv = _child_argv(nice, ionice_idle) + args
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


class ObjectChild:
    """One check child for a whole objects job (`--serve`): discovery and each object's baseline, each answered by
    a fork of it. A request that outlives its budget kills the child's process group (the fork and the commands it
    ran) and raises RunError; the next request starts a new child. Use as a context manager: the child exits when
    the job ends."""

    def __init__(self, nice: int = 10, ionice_idle: bool = True, root: Optional[str] = None) -> None:
        self._argv = _child_argv(nice, ionice_idle) + _root_args(root) + ["--serve"]
        self._proc: Optional[subprocess.Popen] = None
        self._err: Optional[IO[bytes]] = None
        self._buf = b""

    def __enter__(self) -> ObjectChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def discover(self, budget: float, level: Optional[int] = None, level_of: Optional[str] = None) -> dict[str, Any]:
        """As discover_isolated: {"level", "objects", "shipped", "hostname"}."""
        found = self._ask({"op": "discover", "level": level, "level_of": level_of}, "object discovery", budget)
        if not isinstance(found.get("objects"), list):
            raise RunError("object discovery: the run printed something that is not a list of objects")
        return found

    def run(self, baseline: str, report_id: str, budget: float, target: dict[str, Any]) -> dict[str, Any]:
        """As run_isolated: the report of `baseline` on the object `target` (ObjectRef as JSON data)."""
        what = f"baseline {baseline} on {target.get('kind')}:{target.get('instance')}"
        report = self._ask({"op": "run", "baseline": baseline, "report_id": report_id, "object": target}, what,
                           budget)
        if "summary" not in report:
            raise RunError(f"baseline {baseline}: the run printed something that is not a host report")
        return report

    def _start(self) -> subprocess.Popen:
        self._err = tempfile.TemporaryFile()  # closed in close(); a file, so it never fills up as a pipe would
        # argv is this interpreter running this module; args are options built here, no shell
        proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603
                                stderr=self._err, start_new_session=True, close_fds=True)
        with _active_lock:
            _active.add(proc)
        self._proc, self._buf = proc, b""
        return proc

    def _ask(self, request: dict[str, Any], what: str, budget: float) -> dict[str, Any]:
        if self._proc is not None and self._proc.poll() is not None:
            self.close()  # it ended since its last answer (killed with the agent's children?): a new one
        proc = self._proc if self._proc is not None else self._start()
        start = time.monotonic()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
            proc.stdin.flush()
        except OSError:
            pass  # it has exited: the read below says why
        fd, deadline = proc.stdout.fileno(), start + budget
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close(kill=True)
                raise RunError(f"{what}: no report within the time budget of {budget:g} s; the run was killed")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                why = self._stderr() or f"exit status {proc.wait()}"
                self.close()
                raise RunError(f"{what}: run failed: {why}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            answer = json.loads(line)
        except ValueError as exc:
            raise RunError(f"{what}: the run printed no valid JSON ({exc})") from None
        if not answer.get("ok"):
            raise RunError(f"{what}: run failed: {str(answer.get('error') or '')[-STDERR_KEEP:]}")
        data = answer.get("result")
        if not isinstance(data, dict):
            raise RunError(f"{what}: the run printed JSON that is not an object")
        log.info("%s ran in %.1f s", what, time.monotonic() - start)
        return data

    def _stderr(self) -> str:
        if self._err is None:
            return ""
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace").strip()[-STDERR_KEEP:]

    def close(self, kill: bool = False) -> None:
        """End the child: its stdin closed (it exits when idle), then its process group killed (leftovers; with
        `kill`, at once: all of it)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if kill:
                _kill_group(proc, only_strays=True)
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            _kill_group(proc, only_strays=True)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout is not None:
                proc.stdout.close()
            with _active_lock:
                _active.discard(proc)
            said = self._stderr()
            if said:
                log.debug("object child said: %s", said)
        if self._err is not None:
            self._err.close()
            self._err = None


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
    parser.add_argument("--serve", action="store_true", help="answer an objects job's requests (ObjectChild)")
    parser.add_argument("baseline", nargs="?")
    args = parser.parse_args(argv)
    if (args.inventory + args.discover + args.serve + bool(args.baseline)) != 1 or \
            (args.baseline and not args.report_id):
        parser.error("give either --inventory, --discover, --serve or --report-id ID BASELINE")
    for problem in lower_priority(args.nice, args.ionice_idle):
        print(f"warning: {problem}", file=sys.stderr)
    if args.inventory:
        from ..hostview import open_host
        from .inventory import collect

        sys.stdout.write(json.dumps(collect(open_host(args.root))))
        return 0

    if args.serve:
        _serve(args.root)
    try:
        if args.discover:
            sys.stdout.write(json.dumps(_discovered(args.root, args.level, args.level_of), ensure_ascii=False))
        else:
            sys.stdout.write(_report(args.root, args.baseline, args.report_id, args.object))
    except _Refused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    sys.stdout.flush()
    return 0


class _Refused(Exception):
    """The request cannot be run (unknown baseline, a target of another kind); exit 2 with this message."""


def _discovered(root: Optional[str], level: Optional[int], level_of: Optional[str]) -> dict[str, Any]:
    from ..baseline import BaselineError, load_baseline, shipped
    from ..discovery import discover
    from ..hostview import open_host

    if level_of:
        try:
            level = load_baseline(level_of).level
        except BaselineError as exc:
            raise _Refused(str(exc)) from None
    level = level or 3
    known = sorted(shipped())
    host = open_host(root)
    found = discover(host, level, shipped=known)
    return {"level": level, "shipped": known, "hostname": host.hostname(),
            "objects": [d.model_dump(mode="json") for d in found]}


def _report(root: Optional[str], ref: str, report_id: str, target_json: Optional[str]) -> str:
    """The HostReport JSON of baseline `ref` (on the object `target_json`, ObjectRef JSON)."""
    from pydantic import ValidationError

    from ..baseline import BaselineError, load_baseline
    from ..engine import run_baseline
    from ..hostview import open_host
    from ..model import ObjectRef

    try:
        baseline = load_baseline(ref)
        target = ObjectRef.model_validate_json(target_json) if target_json else None
    except (BaselineError, ValidationError) as exc:
        raise _Refused(str(exc)) from None
    if target is not None and target.kind != baseline.object:
        raise _Refused(f"baseline {baseline.id} judges {baseline.object} objects, not {target.kind}")
    return run_baseline(baseline, open_host(root), report_id=report_id, target=target).model_dump_json()


def _serve(root: Optional[str]) -> NoReturn:
    """`--serve`: answer ObjectChild's requests, each from a fork that exits when its answer is written."""
    from .. import catalogue, discovery, engine  # noqa: F401  imported once here, for every fork
    from ..probe import registry

    registry()  # every probe module
    catalogue.load()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fork: one request, then _exit (no atexit, no buffers of the server flushed twice)
            os.close(r)
            # stdout is the answers' pipe and stdin the requests': nothing the run does may write or read them
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(2, 1)
            try:
                answer = _answer(root, json.loads(line))
            except BaseException:  # anything: the agent is told, with the traceback's end
                answer = json.dumps({"ok": False, "error": traceback.format_exc()[-STDERR_KEEP:]})
            with os.fdopen(w, "wb") as fh:
                fh.write(answer.encode("utf-8"))
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            answer_bytes = fh.read()
        _, status, usage = os.wait4(pid, 0)
        # said on stderr, which the agent logs at debug level: what each object's run cost
        print(f"{json.loads(line).get('op')}: {usage.ru_utime + usage.ru_stime:.3f} s CPU, "
              f"{usage.ru_maxrss / 1024:.1f} MB peak RSS", file=sys.stderr, flush=True)
        if not answer_bytes:
            code = os.waitstatus_to_exitcode(status)
            why = f"ended by signal {-code}" if code < 0 else f"exit status {code}"
            answer_bytes = json.dumps({"ok": False, "error": f"the run {why} without an answer"}).encode()
        out.write(answer_bytes.replace(b"\n", b" ") + b"\n")  # one line per answer (JSON escapes its newlines)
        out.flush()
    sys.stderr.flush()
    # the job is over and every answer written: no interpreter teardown (0.1 s of freeing every module the
    # agent would wait for)
    os._exit(0)


def _answer(root: Optional[str], request: dict[str, Any]) -> str:
    try:
        if request.get("op") == "discover":
            result = json.dumps(_discovered(root, request.get("level"), request.get("level_of")), ensure_ascii=False)
        elif request.get("op") == "run":
            target = request.get("object")
            result = _report(root, str(request["baseline"]), str(request["report_id"]),
                             json.dumps(target) if target else None)
        else:
            raise _Refused(f"unknown request {request.get('op')!r}")
    except _Refused as exc:
        return json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False)
    return '{"ok": true, "result": ' + result + "}"  # the report as made, not parsed and dumped again


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
