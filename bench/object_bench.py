#!/usr/bin/env python3
"""Object baselines benchmark (issue 15 point 5): one host running MariaDB, PostgreSQL, Redis and Nginx.

The host is made by the script in namespaces of its own (`unshare --pid --net --mount`): its loopback is its own,
so the servers listen where their stock configurations say (3306, 5432, 6379, 80) and no probe can reach a server
of this machine; its /proc shows its own processes only; /run, the servers' data and log directories are tmpfs,
and /etc/mysql, /etc/postgresql, /etc/redis and /etc/nginx are copies bind-mounted over the originals, so nothing
of the machine is changed. The configurations are the packages' own: /etc/mysql from tests/fixtures/mysql/
debian12-stock (held to dpkg's md5sums there), the others as installed here. The servers are started as their
systemd units start them, the read-only accounts of docs/objects/*.md are made and given to sentinel the way a
user would: a 0600 credentials file named by SENTINEL_OBJECT_CREDENTIALS.

Measured, each in a fresh process, median of N runs after one warm-up:
- the agent's object cycle: `Agent.run_objects()` of sentinel/agent/daemon.py, i.e. discovery and then each
  object's level-3 baseline, each in a fork of the job's one check child, signed and spooled (the agent's own
  start-up is not part of it), at the agent's default nice 10 and at nice 0;
- for comparison, the same steps with a check child per step (runner.discover_isolated, run_isolated), as the
  objects job ran before;
- `sentinel check --object KIND --format json` for each kind, and their sum.

Peak RSS is from wait4/getrusage of the children (the largest single process). Needs root and Debian's
mariadb-server, postgresql, redis-server and nginx (tests/setup-machine.sh installs them).

    python bench/object_bench.py [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MYSQL_ETC = REPO / "tests" / "fixtures" / "mysql" / "debian12-stock" / "etc" / "mysql"
PG_LIB = Path("/usr/lib/postgresql")
KINDS = ("mysql", "postgresql", "redis", "nginx")
# tmpfs in the bench's mount namespace: the servers' runtime, data and log directories
TMPFS = ("/run", "/var/lib/mysql", "/var/lib/postgresql", "/var/lib/redis", "/var/lib/nginx", "/var/log/mysql",
         "/var/log/postgresql", "/var/log/redis", "/var/log/nginx")
# measure as installed and used: bytecode cached as it normally is
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("SENTINEL_")}


def _pg_version() -> str:
    return max((p.name for p in PG_LIB.iterdir() if p.name.isdigit()), key=int, default="") if PG_LIB.is_dir() else ""


def _missing() -> list[str]:
    pg = _pg_version()
    need = ["/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb", "/usr/bin/redis-server",
            "/usr/bin/redis-cli", "/usr/sbin/nginx", "/usr/bin/unshare", "/usr/bin/setpriv", "/usr/sbin/runuser",
            str(MYSQL_ETC), f"/etc/postgresql/{pg}/main/postgresql.conf", "/etc/redis/redis.conf",
            "/etc/nginx/nginx.conf", *TMPFS[1:]]
    return [p for p in need if not os.path.exists(p)] + ([] if pg else ["postgresql"])


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def _copy_tree(src: Path, dst: Path) -> None:
    """A copy keeping owners and modes (PostgreSQL's files are postgres's; Redis's are redis's)."""
    shutil.copytree(src, dst, symlinks=True)
    for path in [dst, *dst.rglob("*")]:
        st = (src / path.relative_to(dst)).lstat()
        os.lchown(path, st.st_uid, st.st_gid)


def _bind(src: Path, dst: str) -> None:
    _run(["mount", "--bind", str(src), dst])


def _wait(what: str, ready, proc: subprocess.Popen, log: Optional[Path] = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {timeout:g} s")


def _tcp(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


class Host:
    """The four servers inside the bench's namespaces; stop() ends every one of them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen] = {}
        self.passwords = {"mysql": secrets.token_urlsafe(18) + "Aa1-", "postgresql": secrets.token_urlsafe(18)}
        self.pg = _pg_version()

    def prepare(self) -> None:
        _run(["ip", "link", "set", "lo", "up"])
        for path in TMPFS:
            _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", path])
        etc = self.work / "etc"
        etc.mkdir()
        shutil.copytree(MYSQL_ETC, etc / "mysql", symlinks=False, ignore=shutil.ignore_patterns("my.cnf"))
        # /etc/mysql/my.cnf -> /etc/alternatives/my.cnf -> mariadb.cnf on Debian: the same file
        shutil.copy(etc / "mysql" / "mariadb.cnf", etc / "mysql" / "my.cnf")
        for name in ("postgresql", "redis", "nginx"):
            _copy_tree(Path("/etc") / name, etc / name)
        for name in ("mysql", "postgresql", "redis", "nginx"):
            _bind(etc / name, f"/etc/{name}")
        if os.path.exists("/etc/my.cnf"):  # not a Debian file: the server would read it first
            _bind(Path("/dev/null"), "/etc/my.cnf")
        for path, owner, mode in (("/run/mysqld", "mysql", 0o755), ("/run/postgresql", "postgres", 0o2775),
                                  ("/run/redis", "redis", 0o2775), ("/run/lock", "root", 0o1777),
                                  ("/var/lib/mysql", "mysql", 0o755), ("/var/log/mysql", "mysql", 0o2750),
                                  ("/var/lib/postgresql", "postgres", 0o755), ("/var/log/postgresql", "postgres",
                                                                               0o1775),
                                  ("/var/lib/redis", "redis", 0o750), ("/var/log/redis", "redis", 0o2750)):
            os.makedirs(path, exist_ok=True)
            shutil.chown(path, owner, owner)
            os.chmod(path, mode)

    def start(self) -> None:
        self._mariadb()
        self._postgresql()
        self._redis()
        self._nginx()

    def _spawn(self, name: str, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as fh:  # the child keeps its own descriptor
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True)
        self.procs[name] = proc
        return proc

    def _mariadb(self) -> None:
        # as Debian's postinst makes the datadir (socket-authenticated root, no test database)
        _run(["mariadb-install-db", "--no-defaults", "--datadir=/var/lib/mysql", "--user=mysql", "--disable-log-bin",
              "--skip-test-db"])
        log = Path("/var/log/mysql/bench.stderr")
        # as mariadb.service: User=mysql, the options from my.cnf
        proc = self._spawn("mariadb", ["setpriv", "--reuid=mysql", "--regid=mysql", "--init-groups",
                                       "/usr/sbin/mariadbd"], log)
        _wait("mariadbd", lambda: self._sql_mysql("SELECT 1", check=False).returncode == 0, proc, log)
        # the read-only account of docs/objects/mysql.md; statements on stdin, so no password in an argv
        self._sql_mysql(f"CREATE USER 'sentinel_ro'@'localhost' IDENTIFIED BY '{self.passwords['mysql']}';"
                        "GRANT SELECT ON mysql.* TO 'sentinel_ro'@'localhost';"
                        "GRANT SHOW DATABASES ON *.* TO 'sentinel_ro'@'localhost';")

    def _sql_mysql(self, sql: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["mariadb", "--no-defaults", "-S", "/run/mysqld/mysqld.sock", "-u", "root", "-N"],
                              input=sql, capture_output=True, text=True, timeout=30, check=check)

    def _postgresql(self) -> None:
        v = self.pg
        data = f"/var/lib/postgresql/{v}/main"
        _run(["runuser", "-u", "postgres", "--", "mkdir", "-p", data])
        # pg_createcluster's authentication methods
        _run(["runuser", "-u", "postgres", "--", f"/usr/lib/postgresql/{v}/bin/initdb", "-D", data,
              "--auth-local=peer", "--auth-host=scram-sha-256"])
        log = Path(f"/var/log/postgresql/postgresql-{v}-main.log")
        log.touch()
        shutil.chown(log, "postgres", "adm")
        # as pg_ctlcluster starts the cluster: the data directory and the configuration in /etc/postgresql
        proc = self._spawn("postgresql", ["runuser", "-u", "postgres", "--", f"/usr/lib/postgresql/{v}/bin/postgres",
                                          "-D", data, "-c", f"config_file=/etc/postgresql/{v}/main/postgresql.conf"],
                           log)
        ready = [f"/usr/lib/postgresql/{v}/bin/pg_isready", "-q", "-h", "/run/postgresql", "-p", "5432"]
        _wait("postgres", lambda: subprocess.run(ready).returncode == 0, proc, log)
        # the read-only role of docs/objects/postgresql.md
        subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                        "/run/postgresql"], input=f"CREATE ROLE sentinel_ro LOGIN PASSWORD "
                                                  f"'{self.passwords['postgresql']}';\n"
                                                  "GRANT pg_read_all_settings, pg_monitor TO sentinel_ro;\n",
                       text=True, check=True, capture_output=True, timeout=30)

    def _redis(self) -> None:
        log = self.work / "redis.stderr"
        # as redis-server.service: User=redis, the unit's own ExecStart
        proc = self._spawn("redis", ["setpriv", "--reuid=redis", "--regid=redis", "--init-groups",
                                     "/usr/bin/redis-server", "/etc/redis/redis.conf", "--supervised", "systemd",
                                     "--daemonize", "no"], log)
        ping = ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "PING"]
        _wait("redis-server", lambda: subprocess.run(ping, capture_output=True, text=True, timeout=10).stdout.strip()
              == "PONG", proc, log)

    def _nginx(self) -> None:
        log = self.work / "nginx.stderr"
        # nginx.service's -g, in the foreground so that this script is its parent
        proc = self._spawn("nginx", ["/usr/sbin/nginx", "-g", "daemon off; master_process on;"], log)
        _wait("nginx", lambda: _tcp(80), proc, log)

    def credentials_file(self) -> Path:
        """The site file a user writes (sentinel/objectcreds.py), 0600; Redis and Nginx need no account here."""
        path = self.work / "objects.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # pg_hba's local rule is peer (root is not sentinel_ro): the account logs in over TCP
            json.dump({"mysql": {"user": "sentinel_ro", "password": self.passwords["mysql"]},
                       "postgresql": {"user": "sentinel_ro", "password": self.passwords["postgresql"],
                                      "host": "127.0.0.1"}}, fh)  # JSON is YAML
        return path

    def stop(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is not None:
                continue
            try:  # each server has its own session: its workers and runuser's child go with it
                os.killpg(proc.pid, 15)
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
            print(f"stopped {name}", file=sys.stderr)


# ---- the measured runs ------------------------------------------------------------------------------------


def agent_cycle(state: Path, nice: int, per_run: bool = False) -> int:
    """Child: an agent (identity made here, no collector) runs its objects job once; prints what it measured.
    `per_run`: the objects job as it was before the job's one check child, a child per discovery and per object
    (the same steps through runner.discover_isolated and run_isolated), for comparison."""
    from datetime import datetime, timezone

    from sentinel import signing
    from sentinel.agent.config import ObjectsSettings, load_settings
    from sentinel.agent.daemon import Agent
    from sentinel.agent.enroll import Identity, private_dir

    # apache2 and tomcat10 are installed on this machine but are not part of the host the issue describes
    settings = load_settings(None, default_file=False, state_dir=state, check_nice=nice,
                             objects=ObjectsSettings(disable=["httpd", "tomcat"]))
    if not settings.identity_file.exists():
        private_dir(state)
        signing.save_private_key(signing.generate_key(), settings.key_file)
        settings.identity_file.write_text(Identity(agent_id=str(uuid.uuid4()), collector_url="https://127.0.0.1:9",
                                                   enrolled_at=datetime.now(timezone.utc)).model_dump_json())
    agent = Agent(settings)
    try:
        start = time.perf_counter()
        reports = _per_run_objects(agent) if per_run else agent.run_objects()
        wall = time.perf_counter() - start
    finally:
        agent.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    out = {"wall": wall, "child_rss": children.ru_maxrss / 1024, "self_rss": own.ru_maxrss / 1024,
           "cpu": children.ru_utime + children.ru_stime, "reports": [_summary(r) for r in reports]}
    print(json.dumps(out))
    return 0


def _per_run_objects(agent: Any) -> list[dict[str, Any]]:
    """Agent.run_objects's steps with a child process per step (discovery, each object), as before the job got one
    child: the comparison row."""
    from sentinel.agent.objects import plan
    from sentinel.agent.runner import discover_isolated, run_isolated

    s = agent.settings
    found = discover_isolated(300, nice=s.check_nice, ionice_idle=s.check_ionice_idle,
                              level_of=s.baselines[0].baseline)
    reports = []
    for p in plan(found, s.objects, found["hostname"]):
        if p.baseline is None:
            continue
        rid = str(uuid.uuid4())
        report = run_isolated(p.baseline, rid, s.time_budget, nice=s.check_nice, ionice_idle=s.check_ionice_idle,
                              target=p.target.model_dump(mode="json"))
        agent.enqueue("host_report", report, report_id=rid)
        reports.append(report)
    return reports


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for r in report["results"]:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    errors = sorted({f"{r['check_id']}: {r.get('reason')}" for r in report["results"] if r["status"] == "error"})
    obj = report.get("object") or {}
    return {"baseline": report["baseline"]["id"], "kind": obj.get("kind"), "instance": obj.get("instance"),
            "name": obj.get("name"), "statuses": statuses, "errors": errors}


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, bytes]:
    """(wall s, peak RSS MB of the child and its descendants, exit code, stdout) of one fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd="/")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        return wall, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status), out.read()


def inside(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="sntl-objbench-"))
    host = Host(work)
    try:
        host.prepare()
        host.start()
        env = {**ENV, "SENTINEL_OBJECT_CREDENTIALS": str(host.credentials_file())}
        return bench(args, env, work)
    finally:
        host.stop()
        shutil.rmtree(work, ignore_errors=True)


CYCLES = (("fork", "agent object cycle (`Agent.run_objects`: one check child, discovery and each object in a "
                   "fork of it)"),
          ("per-run", "the same steps with a check child per step (discovery, each object): the job before"))


def bench(args: argparse.Namespace, env: dict[str, str], work: Path) -> int:
    sentinel = shutil.which("sentinel", path=str(Path(sys.executable).parent)) or shutil.which("sentinel")
    assert sentinel, "the sentinel console script is not installed next to this Python"
    nices = [args.nice] + ([0] if args.nice else [])
    cycles: dict[tuple[str, int], list[dict[str, Any]]] = {(m, n): [] for m, _ in CYCLES for n in nices}
    for i in range(args.runs + 1):  # the first is the warm-up (bytecode and page cache), not counted
        for mode, nice in cycles:  # alternated, so that other work on the machine weighs on each alike
            state = work / f"agent-{mode}-{nice}-{i}"
            argv = [sys.executable, __file__, "--agent-cycle", str(state), "--nice", str(nice)]
            wall, rss, code, out = measure(argv + (["--per-run"] if mode == "per-run" else []), env)
            if code != 0:
                raise RuntimeError(f"agent cycle failed ({code}): {out[-2000:]!r}")
            data = json.loads(out)
            data["process_wall"], data["process_rss"] = wall, rss
            judged = sorted(r["kind"] for r in data["reports"])
            if judged != sorted(KINDS):
                raise RuntimeError(f"the agent judged {judged}, not the four objects {sorted(KINDS)}")
            if i:
                cycles[(mode, nice)].append(data)
    checks: dict[str, list[tuple[float, float, int]]] = {k: [] for k in KINDS}
    for i in range(args.runs + 1):
        for kind in KINDS:
            wall, rss, code, out = measure([sentinel, "check", "--object", kind, "--format", "json"], env)
            if code not in (0, 1):
                raise RuntimeError(f"sentinel check --object {kind} exited {code}")
            if i:
                checks[kind].append((wall, rss, code))
    lines = report_lines(args, nices, cycles, checks)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        sys.path.insert(0, str(HERE))
        from results import write_section

        write_section("object-bench", "Object baselines of one host: MariaDB, PostgreSQL, Redis, Nginx "
                                      "(`bench/object_bench.py`)", text)
    return 0


def report_lines(args: argparse.Namespace, nices: list[int], cycles: dict[tuple[str, int], list[dict[str, Any]]],
                 checks: dict[str, list[tuple[float, float, int]]]) -> list[str]:
    med = statistics.median
    lines = [f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {platform.machine()}, "
             f"{os.cpu_count()} CPUs shared with other work (1-minute load average {os.getloadavg()[0]:.2f} at the "
             f"end), Python {platform.python_version()}; MariaDB, PostgreSQL {_pg_version()}, Redis and Nginx from "
             "Debian's packages with their stock configurations, in the bench's own namespaces. Median of "
             f"{args.runs} runs after one warm-up, each in a fresh process, the kinds of run alternated.", "",
             "| what | nice | wall (s) | CPU (s) | peak RSS (MB) | target | all runs, wall (s) |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for mode, title in CYCLES:
        for nice in nices:
            runs = cycles[(mode, nice)]
            wall, rss, cpu = (med(c[k] for c in runs) for k in ("wall", "child_rss", "cpu"))
            verdict = f"< 1 s, < 60 MB: {'met' if wall < 1 and rss < 60 else 'MISSED'}"
            bold = "**" if mode == "fork" and nice == args.nice else ""
            walls = ", ".join(f"{c['wall']:.2f}" for c in runs)
            lines.append(f"| {bold}{title}{bold} | {nice} | {bold}{wall:.3f}{bold} | {cpu:.2f} | {bold}{rss:.1f}{bold}"
                         f" | {verdict} | {walls} |")
    own = cycles[("fork", args.nice)]
    lines.append(f"| the agent's cycle as a whole driver process (Python start, agent set-up, cycle) | {args.nice} | "
                 f"{med(c['process_wall'] for c in own):.3f} | - | {med(c['self_rss'] for c in own):.1f} "
                 "(driver alone) | - | |")
    total = [sum(checks[k][i][0] for k in KINDS) for i in range(args.runs)]
    for kind in KINDS:
        runs = checks[kind]
        lines.append(f"| `sentinel check --object {kind} --format json` | 0 | {med(r[0] for r in runs):.3f} | - | "
                     f"{med(r[1] for r in runs):.1f} | - | {', '.join(f'{r[0]:.2f}' for r in runs)} |")
    lines.append(f"| the four `sentinel check --object` commands, sum | 0 | {med(total):.3f} | - | "
                 f"{max(med(r[1] for r in checks[k]) for k in KINDS):.1f} (largest) | - | "
                 f"{', '.join(f'{t:.2f}' for t in total)} |")
    heavy = [k for k in KINDS if med(r[1] for r in checks[k]) >= 60]
    if heavy:  # the target is the agent's; say where the command line is past it
        lines += ["", f"`sentinel check --object` for {', '.join(heavy)} peaks at 60 MB or more: one process holds "
                  "the command line (typer), discovery, the engine, the driver and the report, where the agent's "
                  "cycle runs discovery and each object in forks of its own."]
    lines += ["", "Objects judged in the agent's cycle (last run):", "",
              "| baseline | 测评对象 | pass | fail | error | n/a |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    last = own[-1]["reports"]
    for r in last:
        s = r["statuses"]
        lines.append(f"| {r['baseline']} | {r['name']} | {s.get('pass', 0)} | {s.get('fail', 0)} | "
                     f"{s.get('error', 0)} | {s.get('not_applicable', 0)} |")
    errors = [e for r in last for e in r["errors"]]
    if errors:
        lines += ["", "Checks in error (last run): " + "; ".join(errors)]
    lines += ["", "Included: discovery (dpkg status, systemd unit files, processes and sockets, each product's "
              "configuration files), loading each baseline, every probe (configuration read as the product reads "
              "it, `nginx -T`, the TLS handshakes, the read-only SQL/Redis connections), scoring, the report JSON "
              "and, in the agent's cycle, signing and spooling each report. CPU is user + system time of the check "
              "children (the agent's own signing and spooling not counted), which other work on the machine "
              "changes far less than wall time. Peak RSS is the largest single process (getrusage/wait4 of the "
              "children; one object runs at a time). nice 10 is the agent's default `check_nice`: on a busy "
              "machine its checks yield to other work, which is their purpose and lengthens their wall time. Not "
              "included: the agent's own start-up and enrolment (made once; the driver's own figures are shown "
              "apart), delivery to a collector, the servers' start-up. apache2 and tomcat10, installed on this "
              "machine, are disabled in the agent's objects settings (`objects.disable`): the host of the issue "
              "runs the four servers only. `sentinel check --object KIND` runs discovery once per command.",
              f"Reproduce: `python bench/object_bench.py --runs {args.runs}` (as root)."]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nice", type=int, default=10, help="the agent's check_nice (its default: 10)")
    ap.add_argument("--no-write", action="store_true", help="print the figures, leave bench/RESULTS.md alone")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--agent-cycle", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--per-run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.agent_cycle:
        return agent_cycle(args.agent_cycle, args.nice, args.per_run)
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        print("needs root (namespaces, the servers' own accounts)", file=sys.stderr)
        return 2
    missing = _missing()
    if missing:
        print(f"missing: {', '.join(missing)} (tests/setup-machine.sh installs them)", file=sys.stderr)
        return 2
    # a new PID namespace: when this script's inner copy (its PID 1) ends, on failure too, the kernel ends every
    # server left in it
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--net", "--propagation", "private",
            sys.executable, __file__, "--inside", "--runs", str(args.runs), "--nice", str(args.nice)]
    return subprocess.call(argv + (["--no-write"] if args.no_write else []))


if __name__ == "__main__":
    sys.exit(main())
