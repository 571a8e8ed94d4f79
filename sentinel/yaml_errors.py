"""How the config loaders (agent and collector) word a YAML syntax error: file, line, problem."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loaders import PyYAML only when they read a file; so does this module
    import yaml


def invalid_yaml(path: Path, exc: yaml.YAMLError) -> str:
    """`path:line: invalid YAML: problem`, the line left out when PyYAML gives none (e.g. a reader error)."""
    mark = getattr(exc, "problem_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    return f"{path}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}"
