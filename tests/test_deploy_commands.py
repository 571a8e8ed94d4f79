"""Every `sentinel ...` command that the shipped deployment files run or tell an operator to run is a command
the CLI accepts, with options it knows: systemd ExecStart lines and their install comments, the shell of the
compose and Kubernetes init containers, and commands quoted in their comments."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from sentinel.cli import main

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".service", ".yml", ".yaml"} or p.name == "Dockerfile")
SHELL_SPLIT = re.compile(r"\s*(?:;|&&|\|\||\n)\s*")


def _strings(node, run: bool = False):
    """The strings a container runs: those under `command`, `args` or `entrypoint`."""
    if isinstance(node, str):
        if run:
            yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, run or k in {"command", "args", "entrypoint"})
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, run)


def _commands(path: Path) -> list[str]:
    """Command lines that start with `sentinel` (or a path ending in /sentinel), as shell text."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    found: list[str] = []
    comment_lines = [re.sub(r"^\s*#", "", line) for line in text.splitlines() if line.lstrip().startswith("#")]
    for line in comment_lines:
        found += re.findall(r"`((?:\S*/)?sentinel [^`]+)`", line)
        m = re.match(r"\s{2,}((?:\S*/)?sentinel\s.*)", line)  # an indented command line, not prose
        if m:
            found.append(re.sub(r"\s+\(.*$", "", m.group(1)))  # drop a trailing "(what it does)"
    for line in text.splitlines():
        m = re.match(r"\s*Exec\w+=[-@+!]*(\S*/?sentinel\s.*)", line)
        if m:
            found.append(m.group(1))
    if path.suffix in {".yml", ".yaml"}:
        for doc in yaml.safe_load_all(text):
            for s in _strings(doc):
                found += [seg for seg in SHELL_SPLIT.split(s) if re.match(r"\(?\s*(\S*/)?sentinel\s", seg)]
    return found


def _argv(command: str) -> list[str]:
    words = shlex.split(command.lstrip("( "))
    words = words[1:]
    return [w for w in words if w != ")"]


CASES = [(p, c) for p in FILES for c in _commands(p)]


def test_the_deployment_files_carry_commands():
    names = {p.name for p, _ in CASES}
    assert {"sentinel-agent.service", "sentinel-collector.service", "docker-compose.yml", "collector.yaml",
            "agent-daemonset.yaml"} <= names, names


@pytest.mark.parametrize("path,command", CASES, ids=[f"{p.name}:{c[:60]}" for p, c in CASES])
def test_command_is_one_the_cli_accepts(path, command, capsys):
    code = main(_argv(command) + ["--help"])
    out = capsys.readouterr()
    assert code == 0, f"{path.relative_to(DEPLOY)}: `{command}` is refused by the CLI:\n{out.err[-800:]}"
