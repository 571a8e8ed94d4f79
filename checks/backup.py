"""Disaster-recovery facts (数据备份恢复, issue 16 point 3): the copies of a host's important data and their age,
where they are (this site or another), and the database replicas that keep it hot. docs/backups.md.

A host cannot show which data is important or where its backups go, so the site declares them (a site file's
params): each copy's tool, repository or paths, and the site it is at. The facts are then read, never written:
restic and borg with their own read commands (`restic snapshots --json --no-lock --no-cache`, `borg list --json
--bypass-lock`, which leave no lock in the repository), file copies (mysqldump/mariabackup files, tar archives,
rsync targets, pg_basebackup directories) by the newest mtime of the files under the declared paths, and a
PostgreSQL primary's replicas from pg_stat_replication over a read-only connection. Passphrases come from
sentinel/objectcreds.py (kind `backup`, instance = the copy's name) and reach the tool through its environment,
never its argv, a report or a log. Nothing declared is never a pass: the local copy's check is an error naming
where to declare it (its item stays 待核查), the off-site and replica checks NotDeclared (their items wait for a
person, with no second and third error for the same missing declaration).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import Field, model_validator

from sentinel.hostview import NotDeclared, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

if TYPE_CHECKING:
    from sentinel.objectcreds import ObjectCredentials

Tool = Literal["restic", "borg", "pgbackrest", "files"]


class BackupCopy(Strict):
    name: str = Field(description="the copy's name (also its credentials instance)")
    tool: Tool
    repository: Optional[str] = None  # restic/borg: the repository (path or URL, as the tool takes it);
    # pgbackrest: the stanza
    config: Optional[str] = None  # pgbackrest: its configuration file, if not the default one
    paths: list[str] = Field(default_factory=list)  # files: globs of the backup files or target directories
    site: str = "local"  # where the copy is kept; another name than the host's site is off-site


class ReplicaDb(Strict):
    # postgresql: declare the primary (pg_stat_replication lists its standbys); mysql (MySQL/MariaDB): declare the
    # replica (SHOW REPLICA STATUS is kept by the replica, a source does not know its replicas' state)
    kind: Literal["postgresql", "mysql"] = "postgresql"
    instance: Optional[str] = None  # the credentials instance (sentinel/objectcreds.py), e.g. the port


class Declaration(Strict):
    """What a site declares for a host's disaster recovery. Every backup check takes the whole of it, so a site
    file can write it once (`params: &dr {...}`, then `{params: *dr}` on each check); each check reads its part."""

    backups: list[BackupCopy] = Field(default_factory=list)
    site: str = "local"  # the site (machine room, 机房) the host itself is at
    rpo_hours: float = 24.0  # the recovery point objective: the newest copy may be at most this old
    databases: list[ReplicaDb] = Field(default_factory=list)
    # where the other end of each replication link is: a standby's application_name or client address (on a
    # primary), the primary's or source's host (on a standby or replica) -> its site
    sites: dict[str, str] = Field(default_factory=dict)
    # the replicas the site's failover (switch-over) procedure promotes, by the same names or addresses
    failover: list[str] = Field(default_factory=list)
    # how far behind an off-site replica may be and still be a real-time copy (异地实时备份): GB/T 20988-2007's
    # level 5 (实时数据传输) allows an RPO of 0-30 minutes; a smaller rpo_hours is stricter still
    realtime_lag_seconds: float = Field(default=1800.0, gt=0)

    @model_validator(mode="after")
    def _own_site(self) -> Declaration:
        if self.sites and self.site == "local":
            raise ValueError("sites: declares where the replicas are, so the host's own site is needed too "
                             "(site: ...); otherwise every replica would read as off-site")
        return self


class CopiesParams(Declaration):
    # which copies decide: a copy that cannot be read makes the check an error only when it is one of these and
    # none of them is within the RPO (an unreachable off-site repository does not hide a fresh local backup)
    judge: Literal["local", "offsite", "all"] = "all"


class ReplicationParams(Declaration):
    # all: hot redundancy (any replica streaming); offsite: 异地实时备份 (a replica at another site streaming within
    # the real-time lag); failover: the facts of 异地灾难备份中心 (an off-site real-time replica declared as failover)
    judge: Literal["all", "offsite", "failover"] = "all"


_NOTHING = ("no backup declared for this host (docs/backups.md)", "未声明本机的备份（见 docs/backups.md）")
_NO_OFFSITE = ("no backup declared for this host, so no off-site copy to judge (docs/backups.md)",
               "未声明本机的备份，无异地副本可判断（见 docs/backups.md）")
_NO_DATABASE = ("no replicated database declared for this host (docs/backups.md)",
                "未声明本机需复制的数据库（见 docs/backups.md）")
_NOTHING_OFFSITE = ("nothing declared for this host, so no off-site real-time copy to judge (docs/backups.md)",
                    "未声明本机的备份与复制，无异地实时副本可判断（见 docs/backups.md）")
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")
_TIMEOUT = 60.0


def _secret(name: str) -> Optional[str]:
    from sentinel.objectcreds import CredentialsError, credentials

    try:
        return credentials("backup", name).secret()
    except CredentialsError as exc:
        raise ProbeError(str(exc)) from None


def _parse_time(text: str) -> datetime:
    """An ISO time as restic (nanoseconds, offset) or borg 1.2 (naive local time) prints it, as UTC."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", text.strip())
    if not m:
        raise ProbeError(f"unreadable backup time {text!r}", f"无法解析的备份时间 {text!r}")
    frac = (m.group(2) or ".0")[:7]
    zone = m.group(3) or ""
    at = datetime.fromisoformat(m.group(1) + frac + ("+00:00" if zone == "Z" else zone))
    if at.tzinfo is None:  # borg 1.2 prints the archive's time in the local zone of the host it runs on
        at = at.astimezone()
    return at.astimezone(timezone.utc)


def _run(ctx: ProbeContext, copy: BackupCopy, argv: list[str], env: dict[str, str]) -> str:
    res = ctx.host.run(argv, timeout=_TIMEOUT, env=env)
    if not res.ok:
        why = "timed out" if res.timed_out else f"exit {res.returncode}"
        tail = (res.stderr.strip().splitlines() or [""])[-1][:300]
        secret = env.get("RESTIC_PASSWORD") or env.get("BORG_PASSPHRASE")
        if secret:
            tail = tail.replace(secret, "***")
        raise ProbeError(f"{copy.name}: {' '.join(argv[:2])} failed ({why}): {tail}",
                         f"{copy.name}：{' '.join(argv[:2])} 执行失败（{why}）：{tail}")
    return res.stdout


def _restic(ctx: ProbeContext, copy: BackupCopy) -> tuple[list[datetime], Evidence]:
    argv = ["restic", "-r", _repo(copy), "snapshots", "--json", "--no-lock", "--no-cache"]
    secret = _secret(copy.name)
    env = {"RESTIC_PASSWORD": secret} if secret else {}
    out = _run(ctx, copy, argv, env)
    try:
        snaps = json.loads(out) or []
        times = [_parse_time(s["time"]) for s in snaps]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"{copy.name}: restic snapshots printed no snapshot list ({exc})",
                         f"{copy.name}：restic snapshots 未输出快照列表（{exc}）") from None
    return times, evidence(_cmd(argv, copy), f"{len(times)} snapshot(s)" + _newest_line(times))


def _borg(ctx: ProbeContext, copy: BackupCopy) -> tuple[list[datetime], Evidence]:
    argv = ["borg", "list", "--json", "--bypass-lock", _repo(copy)]
    secret = _secret(copy.name)
    # borg keeps its cache and known-repository records under BORG_BASE_DIR: a throwaway one, so the probe
    # leaves nothing on the host; the repository is the site's own declaration, so no trust prompt
    with tempfile.TemporaryDirectory(prefix="sentinel-borg-") as base:
        env = {"BORG_BASE_DIR": base, "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
               "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_DISPLAY_PASSPHRASE": "no"}
        if secret:
            env["BORG_PASSPHRASE"] = secret
        out = _run(ctx, copy, argv, env)
    try:
        times = [_parse_time(a["time"]) for a in json.loads(out)["archives"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"{copy.name}: borg list printed no archive list ({exc})",
                         f"{copy.name}：borg list 未输出归档列表（{exc}）") from None
    return times, evidence(_cmd(argv, copy), f"{len(times)} archive(s)" + _newest_line(times))


def _pgbackrest(ctx: ProbeContext, copy: BackupCopy) -> tuple[list[datetime], Evidence]:
    """The stanza's backups from `pgbackrest info --output=json` (its stop times); `info` takes no lock, and the
    file log is turned off so the probe writes nothing."""
    argv = ["pgbackrest", *([f"--config={copy.config}"] if copy.config else []), f"--stanza={_repo(copy)}",
            "--log-level-file=off", "--log-level-console=warn", "--output=json", "info"]
    out = _run(ctx, copy, argv, {})
    try:
        stanza = next(s for s in json.loads(out) if s.get("name") == copy.repository)
        if stanza.get("status", {}).get("code") not in (0, 2):  # 2: no backup yet (the stanza exists)
            said = stanza["status"].get("message")
            raise ProbeError(f"{copy.name}: pgbackrest reports stanza {copy.repository}: {said}",
                             f"{copy.name}：pgbackrest 报告 stanza {copy.repository}：{said}")
        times = [datetime.fromtimestamp(b["timestamp"]["stop"], timezone.utc) for b in stanza.get("backup", [])]
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        raise ProbeError(f"{copy.name}: pgbackrest info printed no backup list for stanza {copy.repository} "
                         f"({type(exc).__name__})",
                         f"{copy.name}：pgbackrest info 未输出 stanza {copy.repository} 的备份列表") from None
    return times, evidence(f"cmd: {' '.join(argv)}", f"{len(times)} backup(s)" + _newest_line(times))


def _files(ctx: ProbeContext, copy: BackupCopy) -> tuple[list[datetime], Evidence]:
    """The newest mtime of the files under the declared paths (a directory counts by the files in it, so an
    rsync target or a pg_basebackup directory is as new as the newest file it received)."""
    if not copy.paths:
        raise ProbeError(f"{copy.name}: a files copy needs paths", f"{copy.name}：files 类副本须给出 paths")
    found: list[tuple[datetime, str]] = []
    for pattern in copy.paths:
        for path in ctx.host.glob(pattern):
            found.extend(_mtimes(ctx, path))
    found.sort()
    lines = [f"{at.isoformat(timespec='seconds')} {path}" for at, path in found[-5:]]
    return [at for at, _ in found], evidence(f"files: {', '.join(copy.paths)}",
                                            f"{len(found)} file(s)" + ("; newest:\n" + "\n".join(lines) if lines
                                                                      else ""))


def _mtimes(ctx: ProbeContext, path: str) -> list[tuple[datetime, str]]:
    if not ctx.host.is_dir(path):
        return [(datetime.fromtimestamp(ctx.host.stat(path).st_mtime, timezone.utc), path)]
    out: list[tuple[datetime, str]] = []
    for root, _dirs, files in os.walk(ctx.host.real_path(path)):
        rel = os.path.relpath(root, ctx.host.real_path(path))
        for name in files:
            host_path = os.path.normpath(os.path.join(path, rel, name))
            try:
                st = ctx.host.stat(host_path, follow=False)
            except OSError:
                continue  # gone while walking: rsync replaced it
            out.append((datetime.fromtimestamp(st.st_mtime, timezone.utc), host_path))
    return out


def shown(copy: BackupCopy) -> str:
    """Where the copy is, as results and evidence show it: the repository (a password in its URL masked, as
    rest:https://user:pw@host/ may carry one), the stanza or the globs."""
    if copy.tool == "files":
        return ", ".join(copy.paths)
    return _URL_PASSWORD.sub(r"\1:***@", copy.repository or "")


def _cmd(argv: list[str], copy: BackupCopy) -> str:
    text = " ".join(argv)
    return "cmd: " + (text.replace(copy.repository, shown(copy)) if copy.repository else text)


def _repo(copy: BackupCopy) -> str:
    if not copy.repository:
        raise ProbeError(f"{copy.name}: a {copy.tool} copy needs its repository",
                         f"{copy.name}：{copy.tool} 类副本须给出 repository")
    return copy.repository


def _newest_line(times: list[datetime]) -> str:
    return f"; newest {max(times).isoformat(timespec='seconds')}" if times else ""


_READERS = {"restic": _restic, "borg": _borg, "pgbackrest": _pgbackrest, "files": _files}


@probe("backup.copies", CopiesParams, live_only=True)
def copies(ctx: ProbeContext, params: CopiesParams) -> Observation:
    """The declared backup copies with their newest backup and its age against the RPO, and which are off-site."""
    if not params.backups and not (params.databases and params.judge != "local"):
        if params.judge == "offsite":  # the local check already says the declaration is missing
            raise NotDeclared(*_NO_OFFSITE)
        raise ProbeError(*_NOTHING, declaration=True)
    now = datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    evs: list[Evidence] = []
    for copy in params.backups:
        try:
            times, ev = _READERS[copy.tool](ctx, copy)
        except ProbeError as exc:
            rows.append({"name": copy.name, "tool": copy.tool, "where": shown(copy), "site": copy.site,
                         "offsite": copy.site != params.site, "backups": None, "newest": None, "age_hours": None,
                         "within_rpo": None,
                         "error": str(exc), "error_zh": exc.zh or str(exc)})
            continue
        evs.append(ev)
        newest = max(times) if times else None
        age = (now - newest).total_seconds() / 3600 if newest else None  # judged unrounded, shown to 0.01 h
        rows.append({"name": copy.name, "tool": copy.tool, "where": shown(copy), "site": copy.site,
                     "offsite": copy.site != params.site, "backups": len(times),
                     "newest": newest.isoformat(timespec="seconds") if newest else None,
                     "age_hours": None if age is None else round(age, 2),
                     "within_rpo": age is not None and age <= params.rpo_hours})

    if params.databases and params.judge != "local":
        more, more_evs = _replica_copies(params, now)
        rows += more
        evs += more_evs

    def newest_age(selected: list[dict[str, Any]]) -> Optional[float]:
        ages = [r["age_hours"] for r in selected if r["age_hours"] is not None]
        return min(ages) if ages else None

    def within(selected: list[dict[str, Any]]) -> Optional[bool]:
        """True if a copy is within the RPO; None (unknown) if not and some copy could not be read."""
        if any(r["within_rpo"] for r in selected):
            return True
        return None if any("error" in r for r in selected) else False

    scopes = {"local": [r for r in rows if not r["offsite"]], "offsite": [r for r in rows if r["offsite"]],
              "all": rows}
    judged = scopes[params.judge]
    observed = {
        "copies": rows, "rpo_hours": params.rpo_hours, "judge": params.judge,
        "copy_count": sum(1 for r in rows if r["backups"]),
        "offsite_count": sum(1 for r in scopes["offsite"] if r["backups"]),
        "newest_age_hours": newest_age(rows),
        "local_within_rpo": within(scopes["local"]),
        "offsite_within_rpo": within(scopes["offsite"]),
        "within_rpo": within(rows),
    }
    if within(judged) is None:  # the copies read stay in the error result: what could be seen, and when
        failed = [r for r in judged if "error" in r]
        raise ProbeError("; ".join(r["error"] for r in failed), "；".join(r["error_zh"] for r in failed),
                         observed=observed)
    return Observation(observed=observed, evidence=evs)


_PG_PRIMARY = (
    "select application_name, coalesce(host(client_addr), 'local'), state, sync_state, "
    "extract(epoch from replay_lag)::float8, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 "
    "from pg_stat_replication order by application_name")


# On a standby: its WAL receiver (no row while it is not connected) and the age of the last replayed transaction,
# which grows while the primary is idle too, so it is shown, not turned into a byte lag.
_PG_STANDBY = (
    "select coalesce(sender_host, '') || ':' || coalesce(sender_port::text, ''), status, 'standby', "
    "extract(epoch from now() - pg_last_xact_replay_timestamp())::float8, null::float8 from pg_stat_wal_receiver")


@probe("backup.replication", ReplicationParams, live_only=True)
def replication(ctx: ProbeContext, params: ReplicationParams) -> Observation:
    """The streaming replicas of each declared database primary, with their state and lag."""
    limit = min(params.realtime_lag_seconds, params.rpo_hours * 3600)
    if not params.databases:
        if params.judge == "offsite" and params.backups:
            # copies declared and no replica: what goes off-site goes as scheduled backups, which is off-site
            # but not the real-time backup 8.1.4.9 b asks for (the off-site copies' ages are l3-br-offsite-rpo's)
            off = [c.name for c in params.backups if c.site != params.site]
            return Observation(observed={
                "databases": [], "site": params.site, "streaming": 0, "max_lag_seconds": None,
                "offsite_realtime": 0, "failover_ready": 0, "realtime_lag_seconds": limit,
                "rpo_hours": params.rpo_hours, "scheduled_offsite_copies": off}, evidence=[evidence(
                    "declared copies", "no replicated database declared; off-site copies, all scheduled backups: "
                    + (", ".join(off) or "none"))])
        if params.judge == "offsite":
            raise NotDeclared(*_NOTHING_OFFSITE)
        # a host without an important database: hot redundancy is left to the assessor
        raise NotDeclared(*_NO_DATABASE)
    dbs: list[dict[str, Any]] = []
    evs: list[Evidence] = []
    for db in params.databases:
        where, replicas = _links(db, params, limit)
        streaming = [r for r in replicas if r["state"] == "streaming"]
        lags = [r["replay_lag_seconds"] or 0.0 for r in streaming]
        dbs.append({"database": where, "kind": db.kind, "replicas": replicas, "streaming": len(streaming),
                    "max_lag_seconds": max(lags) if lags else None})
        evs.append(evidence(f"{db.kind} {where}: " + ("SHOW REPLICA STATUS" if db.kind == "mysql" else
                                                      "pg_stat_replication"),
                            "\n".join(f"{r['name']} {r['client']} {r['state']} {r['sync_state']} "
                                      f"lag={r['replay_lag_seconds']}s {r['lag_bytes']}B site={r['site'] or '?'}"
                                      + (" failover" if r["failover"] else "") for r in replicas)
                            or "no replica connected"))
    lags_all = [d["max_lag_seconds"] for d in dbs if d["max_lag_seconds"] is not None]
    every = [r for d in dbs for r in d["replicas"]]
    observed = {"databases": dbs, "site": params.site, "streaming": min(d["streaming"] for d in dbs),
                "max_lag_seconds": max(lags_all) if lags_all else None,
                "offsite_realtime": sum(1 for r in every if r["realtime"]),
                "failover_ready": sum(1 for r in every if r["realtime"] and r["failover"]),
                "realtime_lag_seconds": limit, "rpo_hours": params.rpo_hours}
    return Observation(observed=observed, evidence=evs)


def _links(db: ReplicaDb, params: Declaration, limit: float) -> tuple[str, list[dict[str, Any]]]:
    """A declared database's replication links, each placed at its declared site."""
    if db.kind == "mysql":
        where, replicas = _mysql_replica(db)
    else:
        where, rows = _pg_replicas(db)
        replicas = [{"name": r[0], "client": r[1], "state": r[2], "sync_state": r[3],
                     "replay_lag_seconds": None if r[4] is None else round(r[4], 3),
                     "lag_bytes": None if r[5] is None else int(r[5])} for r in rows]
    for r in replicas:
        _place(r, params, limit)
    return where, replicas


def _replica_copies(params: CopiesParams, now: datetime) -> tuple[list[dict[str, Any]], list[Evidence]]:
    """The declared databases' replicas at another site as off-site copies (异地实时备份 is a copy at the backup
    site too): while streaming its newest data is now less its lag. A replica at this site is no backup copy (a
    deletion reaches it at once); its hot redundancy is l3-br-db-replica's."""
    rows: list[dict[str, Any]] = []
    evs: list[Evidence] = []
    limit = min(params.realtime_lag_seconds, params.rpo_hours * 3600)
    for db in params.databases:
        try:
            where, links = _links(db, params, limit)
        except ProbeError as exc:  # where its replicas are is unknown: off-site if the site places any elsewhere
            rows.append({"name": f"{db.kind} {db.instance or ''}".strip(), "tool": f"{db.kind} replica",
                         "where": db.instance or "", "site": "?", "replica": True,
                         "offsite": any(v != params.site for v in params.sites.values()), "backups": None,
                         "newest": None, "age_hours": None, "within_rpo": None,
                         "error": str(exc), "error_zh": exc.zh or str(exc)})
            continue
        for r in links:
            if not r["offsite"]:
                continue
            up = r["state"] == "streaming"
            lag = r["replay_lag_seconds"] or 0.0
            newest = now - timedelta(seconds=lag) if up else None
            rows.append({"name": r["name"] or r["client"], "tool": f"{db.kind} replica",
                         "where": f"{where} <-> {r['client']}", "site": r["site"], "replica": True,
                         "offsite": True, "backups": 1 if up else 0,
                         "newest": newest.isoformat(timespec="seconds") if newest else None,
                         "age_hours": round(lag / 3600, 2) if up else None,
                         "within_rpo": up and lag <= params.rpo_hours * 3600, "realtime": r["realtime"]})
        evs.append(evidence(f"{db.kind} {where}: replicas at other sites",
                            "\n".join(f"{r['name']} {r['client']} {r['state']} lag={r['replay_lag_seconds']}s "
                                      f"site={r['site']}" for r in links if r["offsite"]) or "none"))
    return rows, evs


def _place(row: dict[str, Any], params: Declaration, limit: float) -> None:
    """Where the other end of a replication link is, as the site declares it (by the standby's name, its
    address, or the address without the port), and whether it is an off-site real-time copy: streaming to
    another site no further behind than the real-time limit. An end the site did not place is not off-site."""
    client = str(row.get("client") or "")
    keys = [str(row.get("name") or ""), client, client.rsplit(":", 1)[0] if ":" in client else client]
    site = next((params.sites[k] for k in keys if k and k in params.sites), None)
    lag = row.get("replay_lag_seconds") or 0.0  # PostgreSQL's replay_lag is null while idle: caught up
    row["site"] = site
    row["offsite"] = site is not None and site != params.site
    row["realtime"] = row["offsite"] and row["state"] == "streaming" and lag <= limit
    row["failover"] = any(k and k in params.failover for k in keys)


def _account(kind: str, db: ReplicaDb, missing: str, missing_zh: str) -> ObjectCredentials:
    """The read-only account for the database `db` names (objectcreds `kind`, its instance); ProbeError when the
    credentials cannot be read or name no user (`missing`: what to configure)."""
    from sentinel.objectcreds import CredentialsError, credentials

    try:
        creds = credentials(kind, db.instance)
    except CredentialsError as exc:
        raise ProbeError(str(exc)) from None
    if not creds.user:
        raise ProbeError(missing, missing_zh)
    return creds


def _pg_replicas(db: ReplicaDb) -> tuple[str, list[tuple[Any, ...]]]:
    creds = _account("postgresql", db,
                     "no read-only account for the PostgreSQL server (sentinel/objectcreds.py kind postgresql; it "
                     "needs pg_monitor to see pg_stat_replication)",
                     "未配置 PostgreSQL 只读账户（objectcreds 的 postgresql 项；需 pg_monitor 角色）")
    try:
        import psycopg
    except ImportError:
        raise ProbeError("psycopg is not installed: install sentinel with the postgres extra",
                         "未安装 psycopg：请安装带 postgres 扩展的 sentinel") from None
    host = creds.socket or creds.host or "/var/run/postgresql"
    port = creds.port or (int(db.instance) if db.instance and db.instance.isdigit() else 5432)
    where = f"{creds.user}@{host}:{port}"
    secret = creds.secret()
    try:
        with psycopg.connect(host=host, port=port, user=creds.user, password=secret, dbname=creds.database or
                             "postgres", connect_timeout=5, application_name="sentinel",
                             options="-c default_transaction_read_only=on") as conn:
            conn.read_only = True
            with conn.cursor() as cur:
                cur.execute("select pg_is_in_recovery()")
                row = cur.fetchone()
                if row and row[0]:  # a standby: its own WAL receiver, and how far its replay is behind
                    cur.execute(_PG_STANDBY)
                    return where, [("(this standby)", *r) for r in cur.fetchall()]
                cur.execute(_PG_PRIMARY)  # fixed text: nothing from outside reaches the SQL
                return where, list(cur.fetchall())
    except psycopg.Error as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if secret:
            message = message.replace(secret, "***")
        raise ProbeError(f"PostgreSQL {where}: {message}", f"PostgreSQL {where}：{message}") from None


def _mysql_replica(db: ReplicaDb) -> tuple[str, list[dict[str, Any]]]:
    """The replication channels of a MySQL/MariaDB replica, one row each: `streaming` when both the I/O and the
    SQL thread run (what `Seconds_Behind_Master` is then measured on)."""
    creds = _account("mysql", db,
                     "no read-only account for the MySQL/MariaDB replica (objectcreds kind mysql; it needs REPLICA "
                     "MONITOR, or REPLICATION CLIENT on MySQL)",
                     "未配置 MySQL/MariaDB 备库只读账户（objectcreds 的 mysql 项；需 REPLICA MONITOR 权限）")
    import pymysql  # type: ignore[import-untyped]  # a dependency; ships no type information

    port = creds.port or (int(db.instance) if db.instance and db.instance.isdigit() else 3306)
    host = creds.host or "127.0.0.1"
    where = f"{creds.user}@{creds.socket or host}:{port}"
    secret = creds.secret()
    try:
        conn = pymysql.connect(host=host, port=port, unix_socket=creds.socket, user=creds.user,
                               password=secret or "", connect_timeout=5, read_timeout=30,
                               cursorclass=pymysql.cursors.DictCursor)
    except pymysql.Error as exc:
        message = str(exc.args[-1] if exc.args else exc)
        if secret:
            message = message.replace(secret, "***")
        raise ProbeError(f"cannot connect to MySQL/MariaDB as {where}: {message}",
                         f"无法以 {where} 连接 MySQL/MariaDB：{message}") from None
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SHOW REPLICA STATUS")  # MySQL 8.0.22+, MariaDB 10.5.1+
            except pymysql.err.ProgrammingError:
                cur.execute("SHOW SLAVE STATUS")  # older servers
            rows = list(cur.fetchall())
    except pymysql.Error as exc:
        raise ProbeError(f"MySQL/MariaDB {where}: {exc.args[-1] if exc.args else exc}") from None
    finally:
        conn.close()

    def field(row: dict[str, Any], *names: str) -> Any:
        return next((row[n] for n in names if n in row), None)

    out = []
    for row in rows:
        io = field(row, "Replica_IO_Running", "Slave_IO_Running")
        sql = field(row, "Replica_SQL_Running", "Slave_SQL_Running")
        behind = field(row, "Seconds_Behind_Source", "Seconds_Behind_Master")
        source = f"{field(row, 'Source_Host', 'Master_Host')}:{field(row, 'Source_Port', 'Master_Port')}"
        out.append({"name": field(row, "Connection_name", "Channel_Name") or "", "client": source,
                    "state": "streaming" if io == "Yes" and sql == "Yes" else f"io={io} sql={sql}",
                    "sync_state": None, "replay_lag_seconds": None if behind is None else float(behind),
                    "lag_bytes": None,
                    "last_error": field(row, "Last_IO_Error") or field(row, "Last_SQL_Error") or None})
    return where, out
