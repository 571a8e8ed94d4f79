"""File facts: existence, permissions/ownership, and regex matches over lines."""
from __future__ import annotations

import stat as stat_mod
from typing import Literal

from pydantic import field_validator, model_validator

from sentinel.hostview import NotApplicable
from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import compile_regex, expand, line_evidence, missing_evidence, read_lines, require_absolute
from ._users import group_name, user_name


class PathsParams(Strict):
    paths: list[str]

    @field_validator("paths")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        return require_absolute(v)


def _kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISREG, "file"), (stat_mod.S_ISDIR, "directory"),
                       (stat_mod.S_ISLNK, "symlink"), (stat_mod.S_ISCHR, "char device"),
                       (stat_mod.S_ISBLK, "block device"), (stat_mod.S_ISFIFO, "fifo"),
                       (stat_mod.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


@probe("file.exists", PathsParams)
def file_exists(ctx: ProbeContext, params: PathsParams) -> Observation:
    """Sorted list of existing host paths matching `paths` (globs allowed)."""
    found = sorted(expand(ctx, params.paths))
    ev = []
    for path in found:
        st = ctx.host.stat(path, follow=False)
        ev.append(evidence(path, f"exists ({_kind(st.st_mode)}, {stat_mod.filemode(st.st_mode)})"))
    ev.extend(missing_evidence(params.paths, found))
    return Observation(observed=found, evidence=ev)


@probe("file.mode", PathsParams)
def file_mode(ctx: ProbeContext, params: PathsParams) -> Observation:
    """Mode, owner and group (names from the host's own /etc/passwd and /etc/group) of existing paths."""
    rows, ev = [], []
    for path in expand(ctx, params.paths):
        try:
            st = ctx.host.stat(path, follow=True)
        except FileNotFoundError:
            continue  # removed between listing and stat
        mode = f"{stat_mod.S_IMODE(st.st_mode):04o}"
        owner, group = user_name(ctx, st.st_uid), group_name(ctx, st.st_gid)
        rows.append({"path": path, "mode": mode, "owner": owner, "group": group})
        ev.append(evidence(path, f"{stat_mod.filemode(st.st_mode)} {mode} {owner}:{group} "
                                 f"(uid {st.st_uid}, gid {st.st_gid}, {_kind(st.st_mode)})"))
    if not rows:
        listed = ", ".join(params.paths)
        raise NotApplicable(f"none of {listed} exists", f"以下文件均不存在: {listed}")
    return Observation(observed=rows, evidence=ev)


class RegexParams(PathsParams):
    pattern: str
    group: int = 0
    ignore_comments: bool = True
    pick: Literal["all", "first", "last"] = "all"

    @model_validator(mode="after")
    def _regex(self) -> RegexParams:
        compile_regex(self.pattern, self.group)
        return self


@probe("file.regex", RegexParams)
def file_regex(ctx: ProbeContext, params: RegexParams) -> Observation:
    """Per-line regex over files in order. group 0 yields the whole stripped line, else the group."""
    rx = compile_regex(params.pattern, params.group)
    values, ev = [], []
    paths = expand(ctx, params.paths)
    for path in paths:
        if path not in params.paths and ctx.host.is_dir(path):
            continue  # a glob also matched a directory; only an explicitly named one is an error
        lines = read_lines(ctx, path)
        if lines is None:
            continue
        hits = []
        for number, raw in enumerate(lines, 1):
            if params.ignore_comments and raw.lstrip().startswith("#"):
                continue
            m = rx.search(raw)
            if not m:
                continue
            value = raw.strip() if params.group == 0 else m.group(params.group)
            if value is None:  # optional group did not take part
                continue
            values.append(value)
            hits.append((number, raw.strip()))
        ev.append(line_evidence(path, hits) if hits else evidence(path, f"no line matches /{params.pattern}/"))
    ev.extend(missing_evidence(params.paths, paths))
    if not ev:  # the globs matched only directories
        ev.append(evidence(", ".join(params.paths), "no regular file to read"))
    if params.pick == "all":
        return Observation(observed=values, evidence=ev)
    chosen = (values[0] if params.pick == "first" else values[-1]) if values else None
    return Observation(observed=chosen, evidence=ev)
