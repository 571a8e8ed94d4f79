"""YAML data files read with their line numbers, so every problem is reported as `file:line: where: what`.

Baselines and the catalogue of the standard are data (YAML). Parsing is fast (no marks); only when a problem must be
reported is the file parsed again with marks, mapping every key/element path (a `Loc`) to its source line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

import yaml
from pydantic import ValidationError

if TYPE_CHECKING:  # the C loader where libyaml is built in; both have the same interface
    _Loader = yaml.SafeLoader
else:
    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Loc = tuple[Union[str, int], ...]  # path of keys/indices inside the document
Lines = dict[Loc, int]  # Loc -> 1-based source line


class DataFileError(Exception):
    """A data file (baseline, catalogue) that cannot be used; str() is `file:line: message` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Doc:
    path: str
    data: Any
    text: str = ""
    _lines: Optional[Lines] = None

    @property
    def lines(self) -> Lines:
        """Loc -> 1-based line. Built only when needed (an error to report), by parsing again with marks."""
        if self._lines is None:
            self._lines = _line_map(self.path, self.text)
        return self._lines

    def line(self, loc: Loc) -> int:
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def where(self, loc: Loc) -> str:
        """`file:line` of a location."""
        return f"{self.path}:{self.line(loc)}"

    def error(self, loc: Loc, message: str) -> str:
        where = fmt_loc(loc)
        return f"{self.path}:{self.line(loc)}: {where + ': ' if where else ''}{message}"


def fmt_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _walk(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, lines: Lines, path: str) -> None:
    """Record the source line of every key/element and reject duplicate keys (YAML silently keeps the last)."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise DataFileError([f"{path}:{key_node.start_mark.line + 1}: {fmt_loc(loc + (key,))}: duplicate key"])
            seen.add(key)
            _walk(loader, value_node, loc + (key,), lines, path)
            lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _walk(loader, child, loc + (i,), lines, path)


class _DuplicateKey(Exception):
    pass


class _StrictLoader(_Loader):
    """The fast loader, refusing duplicate keys (plain YAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        if len(keys) != len(set(keys)):
            raise _DuplicateKey()
        return super().construct_mapping(node, deep)


def _yaml_problem(path: str, exc: yaml.YAMLError) -> DataFileError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return DataFileError([f"{path}:{mark.line + 1 if mark else 1}: invalid YAML: {problem}"])


def _line_map(path: str, text: str) -> Lines:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: Lines = {}
        if node is not None:
            _walk(loader, node, (), lines, path)
        return lines
    except yaml.YAMLError as exc:
        raise _yaml_problem(path, exc) from None
    finally:
        loader.dispose()


def parse(path: str, text: str) -> Doc:
    """Parse without line marks (the common, valid case stays fast); lines are mapped when an error needs them."""
    loader: yaml.SafeLoader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except _DuplicateKey:
        _line_map(path, text)  # raises the duplicate with its line
        loader = _Loader(text)
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _yaml_problem(path, exc) from None
    finally:
        loader.dispose()
    if data is None:
        raise DataFileError([f"{path}:1: empty file"])
    if not isinstance(data, dict):
        raise DataFileError([f"{path}:1: a baseline must be a mapping at the top level"])
    return Doc(path, data, text)


def validation_problems(doc: Doc, exc: ValidationError, base: Loc = ()) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = base + tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("function-after",)))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(doc.error(loc, msg))
    return problems
