"""redis.conf read as Redis 7.0 reads it (src/config.c of 7.0.15, `loadServerConfigFromString`).

The rules modelled:
- each line is trimmed of spaces, tabs, CR and LF; a line that then starts with `#`, or is empty, is skipped.
  There are no trailing comments: `timeout 300 # idle` has four arguments, and Redis refuses to start;
- a line is split as `sdssplitargs` splits it: words, "double quotes" with C escapes (\\n \\t \\xHH ...),
  'single quotes' with \\' only; a closing quote not followed by a space, or an unclosed one, is a fatal error;
- the directive is case-insensitive; a known configuration takes exactly one argument, except the multi-argument
  ones (`save`, `bind`, `client-output-buffer-limit`, `oom-score-adj-values`), where one argument is split again;
  an unknown directive is fatal ("Bad directive or wrong number of arguments");
- a later line for a configuration replaces an earlier one (`bind` included), except `save`: the first `save`
  line replaces the compiled-in schedule and later ones append to it (`save ""` empties it);
- `include PATH` loads PATH right there (so what follows it wins over it); a PATH with `*?[` is globbed (sorted;
  no match is no error), one without must exist or Redis exits. A relative PATH is relative to the server's
  working directory, which is / under systemd and becomes `dir` as soon as a `dir` line is read;
- `rename-command NAME NEW` moves a command to another name, `rename-command NAME ""` removes it;
- `user NAME RULES...` lines are ACL users, loaded after the whole configuration (checks/_redis_acl.py).

Absent configurations take Redis 7.0's compiled-in defaults (the `standardConfig` table of config.c at 7.0.15;
tests/test_object_redis_real.py holds them to `CONFIG GET` of a real redis-server 7.0 started on an empty file).
Other Redis versions have other directives and defaults, so they are refused rather than guessed.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Optional

from sentinel.hostview import ProbeError

from ._parse import has_glob

MODELLED = "7.0"
# Every configuration name (and alias) Redis 7.0.15 accepts, from config.c's standardConfig table.
NAMES_70 = frozenset("""
acl-pubsub-default aclfile acllog-max-len active-defrag-cycle-max active-defrag-cycle-min
active-defrag-ignore-bytes active-defrag-max-scan-fields active-defrag-threshold-lower active-defrag-threshold-upper
active-expire-effort activedefrag activerehashing always-show-logo aof-disable-auto-gc aof-load-truncated
aof-rewrite-incremental-fsync aof-timestamp-enabled aof-use-rdb-preamble appenddirname appendfilename appendfsync
appendonly auto-aof-rewrite-min-size auto-aof-rewrite-percentage bind bind-source-addr busy-reply-threshold
client-output-buffer-limit client-query-buffer-limit cluster-allow-pubsubshard-when-down
cluster-allow-reads-when-down cluster-allow-replica-migration cluster-announce-bus-port cluster-announce-hostname
cluster-announce-ip cluster-announce-port cluster-announce-tls-port cluster-config-file cluster-enabled
cluster-link-sendbuf-limit cluster-migration-barrier cluster-node-timeout cluster-port
cluster-preferred-endpoint-type cluster-replica-no-failover cluster-replica-validity-factor
cluster-require-full-coverage cluster-slave-no-failover cluster-slave-validity-factor crash-log-enabled
crash-memcheck-enabled daemonize databases dbfilename dir disable-thp dynamic-hz enable-debug-command
enable-module-command enable-protected-configs hash-max-listpack-entries hash-max-listpack-value
hash-max-ziplist-entries hash-max-ziplist-value hll-sparse-max-bytes hz ignore-warnings io-threads
io-threads-do-reads jemalloc-bg-thread key-load-delay latency-monitor-threshold latency-tracking
latency-tracking-info-percentiles lazyfree-lazy-eviction lazyfree-lazy-expire lazyfree-lazy-server-del
lazyfree-lazy-user-del lazyfree-lazy-user-flush lfu-decay-time lfu-log-factor list-compress-depth
list-max-listpack-size list-max-ziplist-size loading-process-events-interval-bytes logfile loglevel lua-time-limit
masterauth masteruser maxclients maxmemory maxmemory-clients maxmemory-eviction-tenacity maxmemory-policy
maxmemory-samples min-replicas-max-lag min-replicas-to-write min-slaves-max-lag min-slaves-to-write
no-appendfsync-on-rewrite notify-keyspace-events oom-score-adj oom-score-adj-values pidfile port
proc-title-template propagation-error-behavior protected-mode proto-max-bulk-len rdb-del-sync-files
rdb-key-save-delay rdb-save-incremental-fsync rdbchecksum rdbcompression repl-backlog-size repl-backlog-ttl
repl-disable-tcp-nodelay repl-diskless-load repl-diskless-sync repl-diskless-sync-delay
repl-diskless-sync-max-replicas repl-ping-replica-period repl-ping-slave-period repl-timeout replica-announce-ip
replica-announce-port replica-announced replica-ignore-disk-write-errors replica-ignore-maxmemory
replica-lazy-flush replica-priority replica-read-only replica-serve-stale-data replicaof requirepass
sanitize-dump-payload save set-max-intset-entries set-proc-title shutdown-on-sigint shutdown-on-sigterm
shutdown-timeout slave-announce-ip slave-announce-port slave-ignore-maxmemory slave-lazy-flush slave-priority
slave-read-only slave-serve-stale-data slaveof slowlog-log-slower-than slowlog-max-len socket-mark-id
stop-writes-on-bgsave-error stream-node-max-bytes stream-node-max-entries supervised syslog-enabled
syslog-facility syslog-ident tcp-backlog tcp-keepalive timeout tls-auth-clients tls-ca-cert-dir tls-ca-cert-file
tls-cert-file tls-ciphers tls-ciphersuites tls-client-cert-file tls-client-key-file tls-client-key-file-pass
tls-cluster tls-dh-params-file tls-key-file tls-key-file-pass tls-port tls-prefer-server-ciphers tls-protocols
tls-replication tls-session-cache-size tls-session-cache-timeout tls-session-caching tracking-table-max-keys
unixsocket unixsocketperm use-exit-on-panic watchdog-period zset-max-listpack-entries zset-max-listpack-value
zset-max-ziplist-entries zset-max-ziplist-value
""".split())
# Directives that are not configurations (handled by name in loadServerConfigFromString) and the deprecated
# ones 7.0 still swallows.
OTHER_DIRECTIVES = frozenset({"include", "rename-command", "user", "loadmodule", "sentinel"})
DEPRECATED = frozenset({"list-max-ziplist-entries", "list-max-ziplist-value", "lua-replicate-commands"})
MULTI_ARG = frozenset({"save", "bind", "client-output-buffer-limit", "oom-score-adj-values"})
# Old names, as config.c's alias column: setting one sets the other.
ALIASES = {"slaveof": "replicaof", "slave-serve-stale-data": "replica-serve-stale-data",
           "slave-read-only": "replica-read-only", "slave-announce-ip": "replica-announce-ip",
           "slave-announce-port": "replica-announce-port", "slave-priority": "replica-priority",
           "slave-ignore-maxmemory": "replica-ignore-maxmemory", "slave-lazy-flush": "replica-lazy-flush",
           "min-slaves-to-write": "min-replicas-to-write", "min-slaves-max-lag": "min-replicas-max-lag",
           "repl-ping-slave-period": "repl-ping-replica-period",
           "cluster-slave-validity-factor": "cluster-replica-validity-factor",
           "cluster-slave-no-failover": "cluster-replica-no-failover",
           "hash-max-ziplist-entries": "hash-max-listpack-entries",
           "hash-max-ziplist-value": "hash-max-listpack-value", "list-max-ziplist-size": "list-max-listpack-size",
           "zset-max-ziplist-entries": "zset-max-listpack-entries",
           "zset-max-ziplist-value": "zset-max-listpack-value"}
# Compiled-in values (as CONFIG GET shows them) of the configurations sentinel judges, Redis 7.0.15.
DEFAULTS_70 = {
    "bind": "* -::*", "protected-mode": "yes", "port": "6379", "unixsocket": "", "unixsocketperm": "0",
    "tls-port": "0", "tls-protocols": "", "tls-ciphers": "", "tls-ciphersuites": "", "tls-auth-clients": "yes",
    "tls-replication": "no", "tls-cluster": "no", "timeout": "0", "maxclients": "10000", "logfile": "",
    "loglevel": "notice", "syslog-enabled": "no", "save": "3600 1 300 100 60 10000", "appendonly": "no",
    "appendfsync": "everysec", "rdbchecksum": "yes", "dir": "", "dbfilename": "dump.rdb", "aclfile": "",
    "enable-debug-command": "no",
    "enable-module-command": "no", "enable-protected-configs": "no", "acl-pubsub-default": "resetchannels",
    "replicaof": "", "masteruser": "", "supervised": "no", "daemonize": "no", "cluster-enabled": "no",
}
# Values Redis keeps as secrets (CONFIG GET and the evidence never show them).
SECRET = frozenset({"requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"})
# Booleans and enums are matched case-insensitively by Redis and shown lower-case by CONFIG GET.
_LOWERED = frozenset({"protected-mode", "appendonly", "syslog-enabled", "loglevel", "tls-auth-clients",
                      "tls-replication", "tls-cluster", "enable-debug-command", "enable-module-command",
                      "enable-protected-configs", "acl-pubsub-default", "appendfsync", "supervised", "daemonize",
                      "cluster-enabled"})
MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True)
class Line:
    path: str
    number: int
    text: str  # the trimmed line (never shown for a secret)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"


@dataclass(frozen=True)
class Setting:
    name: str
    value: str  # as CONFIG GET would show it
    line: Line


@dataclass(frozen=True)
class Rename:
    command: str
    new_name: str  # "" when the command is removed
    line: Line


@dataclass(frozen=True)
class UserLine:
    name: str
    rules: tuple[str, ...]
    line: Line


@dataclass
class RedisConf:
    main: str
    version: str
    settings: dict[str, Setting] = field(default_factory=dict)
    save_lines: list[Line] = field(default_factory=list)
    renames: list[Rename] = field(default_factory=list)
    users: list[UserLine] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, in order

    def value(self, name: str) -> str:
        """The value Redis uses: the last line's, else the compiled-in default."""
        name = ALIASES.get(name, name)
        if name in self.settings:
            return self.settings[name].value
        if name not in DEFAULTS_70:
            raise ProbeError(f"sentinel does not know Redis {MODELLED}'s compiled-in default of {name}",
                             f"sentinel 未收录 Redis {MODELLED} 中 {name} 的内置默认值")
        return DEFAULTS_70[name]

    def source(self, name: str) -> Optional[Line]:
        setting = self.settings.get(ALIASES.get(name, name))
        return setting.line if setting else None


class ConfError(ProbeError):
    """Redis would refuse to start with this configuration (it exits with FATAL CONFIG FILE ERROR)."""


def fatal(line: Line, why: str, why_zh: str) -> ConfError:
    return ConfError(f"{line.where}: Redis refuses to start: {why} (FATAL CONFIG FILE ERROR)",
                     f"{line.where}：Redis 将拒绝启动：{why_zh}（FATAL CONFIG FILE ERROR）")


_HEX = re.compile(r"[0-9a-fA-F]{2}")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}


def split_args(text: str) -> Optional[list[str]]:
    """The arguments of one line as sdssplitargs (sds.c) splits them; None for unbalanced quotes."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        word: list[str] = []
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    return None
                ch = text[i]
                if ch == "\\" and i + 3 < n and text[i + 1] == "x" and _HEX.fullmatch(text[i + 2:i + 4]):
                    word.append(chr(int(text[i + 2:i + 4], 16)))
                    i += 3
                elif ch == "\\" and i + 1 < n:
                    i += 1
                    word.append(_ESCAPES.get(text[i], text[i]))
                elif ch == '"':
                    if i + 1 < n and not text[i + 1].isspace():
                        return None  # the closing quote must be followed by a space
                    i += 1
                    break
                else:
                    word.append(ch)
            elif in_sq:
                if i >= n:
                    return None
                ch = text[i]
                if ch == "\\" and i + 1 < n and text[i + 1] == "'":
                    i += 1
                    word.append("'")
                elif ch == "'":
                    if i + 1 < n and not text[i + 1].isspace():
                        return None
                    i += 1
                    break
                else:
                    word.append(ch)
            else:
                if i >= n:
                    break
                ch = text[i]
                if ch in " \n\r\t\0":
                    break
                if ch == '"':
                    in_dq = True
                elif ch == "'":
                    in_sq = True
                else:
                    word.append(ch)
            i += 1
        out.append("".join(word))


def shown(line: Line, argv: list[str]) -> str:
    """The line as evidence may show it: a secret's value, a password rule or a new command name withheld."""
    name = argv[0].lower()
    if name in SECRET:
        return f"{argv[0]} <withheld>"
    if name == "rename-command" and len(argv) == 3:
        return f"{argv[0]} {argv[1]} " + ('""' if argv[2] == "" else "<new name withheld>")
    if name == "user":
        return " ".join([argv[0], *argv[1:2], *(redact_rule(r) for r in argv[2:])])
    return line.text


def redact_rule(rule: str) -> str:
    """An ACL rule with any password or password hash withheld."""
    if rule[:1] in (">", "<", "#", "!"):
        return rule[0] + "<withheld>"
    if rule.startswith("(") and rule.endswith(")"):
        return "(" + " ".join(redact_rule(r) for r in rule[1:-1].split()) + ")"
    return rule


class _Loader:
    def __init__(self, read, glob, version: str, main: str) -> None:
        self.read, self.glob = read, glob
        self.conf = RedisConf(main=main, version=version)
        self.cwd = "/"
        self.save_seen = False

    def load_file(self, path: str, depth: int, at: Optional[Line]) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise fatal(at or Line(path, 0, ""), f"include nesting deeper than {MAX_INCLUDE_DEPTH}",
                        f"include 嵌套超过 {MAX_INCLUDE_DEPTH} 层")
        text = self.read(path)
        if text is None:
            if at is None:
                raise ProbeError(f"{path}: no such file", f"{path}：文件不存在")
            raise fatal(at, f"included file {path} does not exist", f"被包含的文件 {path} 不存在")
        self.conf.files.append(path)
        for number, raw in enumerate(text.split("\n"), 1):
            trimmed = raw.strip(" \t\r\n")
            if not trimmed or trimmed.startswith("#"):
                continue
            self.line(Line(path, number, trimmed), depth)

    def line(self, line: Line, depth: int) -> None:
        argv = split_args(line.text)
        if argv is None:
            raise fatal(line, "unbalanced quotes in configuration line", "配置行引号不配对")
        if not argv:
            return
        name = argv[0].lower()
        canonical = ALIASES.get(name, name)
        if name in NAMES_70:
            self.setting(canonical, argv, line)
        elif name in DEPRECATED:
            return
        elif name == "include" and len(argv) == 2:
            self.include(argv[1], line, depth)
        elif name == "rename-command" and len(argv) == 3:
            self.conf.renames.append(Rename(argv[1].lower(), argv[2], Line(line.path, line.number,
                                                                          shown(line, argv))))
        elif name == "user" and len(argv) >= 2:
            self.conf.users.append(UserLine(argv[1], tuple(argv[2:]),
                                            Line(line.path, line.number, shown(line, argv))))
        elif name == "loadmodule" and len(argv) >= 2:
            return
        elif "." in name and len(argv) >= 2:
            return  # a module's configuration
        else:
            raise fatal(line, f"bad directive or wrong number of arguments: {argv[0]}",
                        f"无效指令或参数个数错误：{argv[0]}")

    def setting(self, name: str, argv: list[str], line: Line) -> None:
        args = argv[1:]
        if name not in MULTI_ARG:
            if len(args) != 1:
                raise fatal(line, f"wrong number of arguments for {argv[0]}", f"{argv[0]} 参数个数错误")
        elif len(args) == 1 and args[0]:
            args = split_args(args[0]) or []
        value = args[0] if name not in MULTI_ARG else " ".join(a for a in args if a)
        if name in _LOWERED:
            value = value.lower()
        if name == "save":
            value = self.save(args, value, line)
        if name == "dir":
            self.cwd = posixpath.normpath(posixpath.join(self.cwd, value))
            value = self.cwd
        self.conf.settings[name] = Setting(name, value, Line(line.path, line.number, shown(line, argv)))

    def save(self, args: list[str], value: str, line: Line) -> str:
        if len(args) == 1 and args[0] == "":
            args = []
        if len(args) % 2 or any(not re.fullmatch(r"[+-]?\d+", a) for a in args) \
                or any(int(a) < (1 if k % 2 == 0 else 0) for k, a in enumerate(args)):
            raise fatal(line, "invalid save parameters", "save 参数无效")
        pairs = " ".join(str(int(a)) for a in args)
        if len(args) == 0 or not self.save_seen:
            self.save_seen = True  # the first save line replaces the default schedule, later ones add to it
            self.conf.save_lines = [line]
            return pairs
        self.conf.save_lines.append(line)
        before = self.conf.settings["save"].value
        return f"{before} {pairs}".strip()

    def include(self, target: str, line: Line, depth: int) -> None:
        path = posixpath.normpath(posixpath.join(self.cwd, target))
        if has_glob(path):
            for match in self.glob(path):
                self.load_file(match, depth + 1, line)
        else:
            self.load_file(path, depth + 1, line)


def load(read, glob, path: str, version: str) -> RedisConf:
    """The configuration Redis `version` (must be 7.0.x) builds from `path`; ConfError when it would not start.

    `read(path)` returns a file's text or None when absent; `glob(pattern)` the sorted matches.
    """
    loader = _Loader(read, glob, version, path)
    loader.load_file(path, 0, None)
    return loader.conf
