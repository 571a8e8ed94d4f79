"""`logs.retention`: how long a log is kept locally (logrotate) and where it is forwarded (syslog).

logrotate is read the way logrotate reads it: /etc/logrotate.conf top to bottom, global directives
becoming the defaults of later stanzas, `include` (a file, or every file of a directory in lexical
order minus backup/package-manager leftovers) processed in place, script blocks skipped, and the first
stanza naming a log winning (logrotate rejects a second one as a duplicate).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Optional

from pydantic import Field, field_validator

from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import conf_dir_files, has_glob, read_lines, unquote

LOGROTATE_CONF = "/etc/logrotate.conf"
PERIOD_DAYS = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}
FOREVER_DAYS = 36500
_TABOO = (",v", ".cfsaved", ".disabled", ".dpkg-bak", ".dpkg-del", ".dpkg-dist", ".dpkg-new", ".dpkg-old",
          ".rpmnew", ".rpmorig", ".rpmsave", ".swp", ".ucf-dist", ".ucf-new", ".ucf-old", "~", ".bak")
_SCRIPTS = ("postrotate", "prerotate", "firstaction", "lastaction", "preremove")
MAX_DEPTH = 8


@dataclass
class Settings:
    values: dict[str, object] = field(default_factory=dict)  # rotate, period, maxage
    lines: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # directive -> where set

    def copy(self) -> Settings:
        return Settings(dict(self.values), dict(self.lines))


@dataclass
class Stanza:
    patterns: list[str]
    settings: Settings
    path: str
    line: int
    text: str


@dataclass
class Logrotate:
    stanzas: list[Stanza]
    globals: Settings
    files: list[str]


def _directive(settings: Settings, words: list[str], path: str, number: int, text: str) -> None:
    key = words[0].lower()
    if key in PERIOD_DAYS:
        settings.values["period"] = key
        settings.lines["period"] = (path, number, text)
    elif key in ("rotate", "maxage") and len(words) > 1:
        try:
            settings.values[key] = int(words[1])
        except ValueError:
            return
        settings.lines[key] = (path, number, text)


def load_logrotate(ctx: ProbeContext) -> Logrotate:
    def load() -> Logrotate:
        result = Logrotate([], Settings(), [])
        _read_logrotate(ctx, LOGROTATE_CONF, result, 0)
        return result

    return ctx.cached(("logrotate",), load)


def _read_logrotate(ctx: ProbeContext, path: str, result: Logrotate, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    lines = read_lines(ctx, path)
    if lines is None:
        return
    result.files.append(path)
    pending: list[str] = []
    pending_at = (0, "")
    stanza: Optional[Stanza] = None
    in_script = False
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if in_script:
            if text.split()[:1] == ["endscript"]:
                in_script = False
            continue
        if not text or text.startswith("#"):
            continue
        if stanza is not None:
            if text.startswith("}"):
                result.stanzas.append(stanza)
                stanza = None
                continue
            words = text.split()
            if words[0].lower() in _SCRIPTS:
                in_script = True
                continue
            _directive(stanza.settings, words, path, number, text)
            continue
        if "{" in text:
            head = text.split("{", 1)[0]
            patterns = pending + [unquote(w) for w in head.split()]
            stanza = Stanza(patterns, result.globals.copy(), path, pending_at[0] or number,
                            (pending_at[1] + " " + text).strip())
            pending = []
            rest = text.split("{", 1)[1]
            inline, closed = rest.split("}", 1)[0].strip(), "}" in rest
            if inline:  # `/var/log/x { rotate 7 }` on one line
                _directive(stanza.settings, inline.split(), path, number, text)
            if closed:
                result.stanzas.append(stanza)
                stanza = None
            continue
        words = text.split()
        if words[0].startswith(("/", '"', "'")):
            if not pending:
                pending_at = (number, text)
            pending.extend(unquote(w) for w in words)  # patterns continue until `{`
            continue
        if words[0].lower() == "include" and len(words) > 1:
            target = unquote(words[1])
            if ctx.host.is_dir(target):
                for name in ctx.host.listdir(target):
                    if name.startswith(".") or name.endswith(_TABOO):
                        continue
                    _read_logrotate(ctx, f"{target.rstrip('/')}/{name}", result, depth + 1)
            else:
                _read_logrotate(ctx, target, result, depth + 1)
            continue
        _directive(result.globals, words, path, number, text)


def _matches(log: str, pattern: str) -> bool:
    return log == pattern or fnmatchcase(log, pattern) or (has_glob(log) and fnmatchcase(pattern, log))


def _local_days(settings: Settings) -> tuple[Optional[int], Optional[str]]:
    period = settings.values.get("period")
    rotate = settings.values.get("rotate", 0)  # logrotate's default count is 0
    maxage = settings.values.get("maxage")
    if isinstance(rotate, int) and rotate < 0:
        days = maxage if isinstance(maxage, int) and maxage > 0 else FOREVER_DAYS
        return days, ("rotate -1: rotated logs are never removed"
                      + (" (maxage bounds it)" if days != FOREVER_DAYS else ""))
    if not isinstance(period, str):  # unset: _directive stores a period as its name
        return None, "no rotation period (daily/weekly/monthly/yearly): retention depends on size"
    assert isinstance(rotate, int)  # _directive stores rotate as an int
    days = int(rotate * PERIOD_DAYS[period])
    if isinstance(maxage, int) and maxage > 0:
        days = min(days, maxage)
    return days, None


# ---- syslog forwarding ---------------------------------------------------------------------------

_LEGACY_FWD = re.compile(r"(?:^|\s)(@@?)(\([^)]*\))?(\[[^\]]+\]|[A-Za-z0-9_.\-]+)(?::(\d+))?")
_OMRELP = re.compile(r"(?:^|\s):omrelp:([^:\s;]+)(?::(\d+))?")
_ACTION = re.compile(r"\baction\s*\(", re.I)
_PARAM = re.compile(r"([A-Za-z.]+)\s*=\s*\"([^\"]*)\"")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)


@dataclass
class Forward:
    target: str
    path: str
    line: int
    text: str


def _strip_comments(text: str) -> str:
    text = _BLOCK_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return "\n".join("" if ln.lstrip().startswith("#") else ln for ln in text.split("\n"))


def _rsyslog_files(ctx: ProbeContext) -> list[str]:
    files: list[str] = []
    queue = ["/etc/rsyslog.conf"]
    while queue and len(files) < 200:
        path = queue.pop(0)
        if path in files:
            continue
        text = ctx.host.read_optional(path)
        if text is None:
            continue
        files.append(path)
        body = _strip_comments(text)
        patterns = re.findall(r"^\s*\$IncludeConfig\s+(\S+)", body, re.M)
        patterns += re.findall(r"\binclude\s*\([^)]*?file\s*=\s*\"([^\"]+)\"", body, re.S)
        for pattern in patterns:
            if pattern.endswith("/"):
                pattern += "*"
            queue.extend(ctx.host.glob(pattern) if has_glob(pattern) else [pattern])
    return files


def rsyslog_forwards(ctx: ProbeContext) -> list[Forward]:
    out = []
    for path in _rsyslog_files(ctx):
        body = _strip_comments(ctx.host.read_text(path))
        lines = body.split("\n")
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("$", "template", "module", "input", "global")):
                continue
            action_free = _ACTION.split(stripped)[0]
            for m in _LEGACY_FWD.finditer(action_free):
                proto = "tcp" if m.group(1) == "@@" else "udp"
                host = m.group(3)
                out.append(Forward(f"{proto}://{host}" + (f":{m.group(4)}" if m.group(4) else ""), path, number,
                                   stripped))
            for m in _OMRELP.finditer(action_free):
                out.append(Forward(f"relp://{m.group(1)}" + (f":{m.group(2)}" if m.group(2) else ""), path,
                                   number, stripped))
        for m in _ACTION.finditer(body):
            end = _closing_paren(body, m.end())
            params = {k.lower(): v for k, v in _PARAM.findall(body[m.end():end])}
            kind = params.get("type", "").lower()
            if kind not in ("omfwd", "omrelp") or not params.get("target"):
                continue
            proto = "relp" if kind == "omrelp" else params.get("protocol", "udp").lower()
            port = params.get("port")
            number = body.count("\n", 0, m.start()) + 1
            snippet = " ".join(body[m.start():end + 1].split())
            out.append(Forward(f"{proto}://{params['target']}" + (f":{port}" if port else ""), path, number, snippet))
    return out


def _closing_paren(text: str, start: int) -> int:
    depth, i, quoted = 1, start, False
    while i < len(text):
        ch = text[i]
        if ch == '"' and text[i - 1] != "\\":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text)


_SNG_DEST = re.compile(r"\bdestination\s+([\w-]+)\s*\{(.*?)\}\s*;", re.S)
_SNG_DRIVER = re.compile(r"\b(network|syslog|tcp6?|udp6?)\s*\(\s*\"?([^\"\s)]+)\"?(.*?)\)\s*;", re.S)
_SNG_USE = re.compile(r"\bdestination\s*\(\s*([\w-]+)\s*\)")


def syslog_ng_forwards(ctx: ProbeContext) -> list[Forward]:
    main = "/etc/syslog-ng/syslog-ng.conf"
    files: list[str] = []
    queue = [main]
    texts: dict[str, str] = {}
    while queue and len(files) < 200:
        path = queue.pop(0)
        if path in files:
            continue
        text = ctx.host.read_optional(path)
        if text is None:
            continue
        files.append(path)
        body = "\n".join(ln.split("#", 1)[0] if not ln.lstrip().startswith("@") else ln for ln in text.split("\n"))
        texts[path] = body
        for inc in re.findall(r"^\s*@include\s+\"([^\"]+)\"", body, re.M):
            full = inc if inc.startswith("/") else f"/etc/syslog-ng/{inc}"
            if ctx.host.is_dir(full):
                queue.extend(conf_dir_files(ctx, full, ""))
            else:
                queue.extend(ctx.host.glob(full) if has_glob(full) else [full])
    used = {name for body in texts.values() for name in _SNG_USE.findall(body)}
    out = []
    for path, body in texts.items():
        for dest in _SNG_DEST.finditer(body):
            if dest.group(1) not in used:
                continue
            for drv in _SNG_DRIVER.finditer(dest.group(2) + ";"):
                kind, host, rest = drv.group(1), drv.group(2), drv.group(3)
                transport = re.search(r"transport\s*\(\s*\"?(\w+)", rest)
                port = re.search(r"port\s*\(\s*(\d+)", rest)
                proto = kind.rstrip("6") if kind in ("tcp", "udp", "tcp6", "udp6") else \
                    (transport.group(1).lower() if transport else ("udp" if kind == "network" else "tcp"))
                number = body.count("\n", 0, dest.start()) + 1
                out.append(Forward(f"{proto}://{host}" + (f":{port.group(1)}" if port else ""), path, number,
                                   " ".join(dest.group(0).split())[:300]))
    return out


class RetentionParams(Strict):
    log: str = Field(min_length=2)

    @field_validator("log")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"log {v!r} must be an absolute host path")
        return v


def _settings_evidence(settings: Settings) -> list[Evidence]:
    return [evidence(path, text, number) for path, number, text in
            sorted(settings.lines.values(), key=lambda t: (t[0], t[1]))]


@probe("logs.retention", RetentionParams)
def logs_retention(ctx: ProbeContext, params: RetentionParams) -> Observation:
    """{local_days, remote}: logrotate retention of the log and syslog forwarding targets."""
    lr = load_logrotate(ctx)
    ev: list[Evidence] = []
    notes = []
    stanza = next((s for s in lr.stanzas if any(_matches(params.log, p) for p in s.patterns)), None)
    if stanza is not None:
        settings = stanza.settings
        ev.append(evidence(stanza.path, stanza.text, stanza.line))
    else:
        settings = lr.globals
        if lr.files:
            ev.append(evidence(", ".join(lr.files), f"no logrotate stanza names {params.log}; "
                                                    f"{LOGROTATE_CONF} globals used"))
            notes.append(f"no logrotate stanza names {params.log}")
        else:
            ev.append(evidence(LOGROTATE_CONF, "no such file"))
    local_days, why = _local_days(settings) if lr.files else (None, "logrotate is not configured")
    ev.extend(_settings_evidence(settings))
    if why:
        notes.append(why)
    forwards = ctx.cached(("syslog", "forwards"), lambda: rsyslog_forwards(ctx) + syslog_ng_forwards(ctx))
    for fwd in forwards:
        ev.append(evidence(fwd.path, fwd.text, fwd.line))
    if not forwards:
        ev.append(evidence("/etc/rsyslog.conf, /etc/rsyslog.d, /etc/syslog-ng", "no remote forwarding configured"))
    remote = sorted({f.target for f in forwards})
    return Observation(observed={"local_days": local_days, "remote": remote}, evidence=ev,
                       note="; ".join(notes) or None)
