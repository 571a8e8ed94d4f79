"""`command.output`: the output of a command on the live host (argv, never a shell)."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator, model_validator

from sentinel.hostview import LiveOnly, ProbeError
from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import compile_regex


class CommandParams(Strict):
    argv: list[str] = Field(min_length=1)
    pattern: Optional[str] = None
    group: int = 0
    timeout: float = Field(default=10, gt=0, le=300)

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if not v[0].strip():
            raise ValueError("argv[0] must name a program")
        return v

    @model_validator(mode="after")
    def _regex(self) -> CommandParams:
        if self.pattern is not None:
            compile_regex(self.pattern, self.group)
        elif self.group:
            raise ValueError("group needs a pattern")
        return self


@probe("command.output", CommandParams, live_only=True)
def command_output(ctx: ProbeContext, params: CommandParams) -> Observation:
    """Stripped stdout, or the regex capture (None when the pattern does not match)."""
    if not ctx.host.live:
        raise LiveOnly("commands run only on a live host", "命令只能在运行中的主机上执行")
    cmd = "cmd: " + " ".join(params.argv)
    result = ctx.host.run(params.argv, timeout=params.timeout)
    if result.timed_out:
        raise ProbeError(f"{' '.join(params.argv)}: timed out after {params.timeout:g}s",
                         f"{' '.join(params.argv)}：{params.timeout:g} 秒内未结束")
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip() or "(no output)"
        raise ProbeError(f"{' '.join(params.argv)}: exit status {result.returncode}: {detail[:500]}",
                         f"{' '.join(params.argv)}：退出码 {result.returncode}：{detail[:500]}")
    out = result.stdout.strip()
    if params.pattern is None:
        return Observation(observed=out, evidence=[evidence(cmd, out or "(no output)")])
    m = compile_regex(params.pattern, params.group).search(result.stdout)
    if m is None:
        return Observation(observed=None, evidence=[evidence(cmd, out or "(no output)")],
                           note=f"output does not match /{params.pattern}/")
    value = m.group(params.group)
    line = result.stdout.count("\n", 0, m.start()) + 1
    return Observation(observed=value.strip() if params.group == 0 and value else value,
                       evidence=[evidence(cmd, out or "(no output)", line)])
