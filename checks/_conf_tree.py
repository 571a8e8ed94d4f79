"""What the nginx and httpd configuration trees share (_nginx_conf.py, _httpd_conf.py): a directive's place in
its file, its children by name, and the record of an include as the server read it. The syntax and the rest of
each node are the parser's own."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

N = TypeVar("N", bound="ConfNode")  # the node class itself: find() returns nodes of its own kind


class ConfNode(Generic[N]):
    """Mixed into a parser's node dataclass (which declares these attributes as its fields); not a dataclass
    itself, so each parser keeps its own field order."""

    name: str
    path: str
    line: int
    children: Optional[list[N]]  # None: a simple directive; a list: a block or section

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def find(self, name: str) -> list[N]:
        """The directives directly inside this block named `name`, in file order."""
        return [c for c in self.children or [] if c.name == name]


@dataclass(frozen=True)
class Include:
    """One include directive at `path`:`line`: its pattern and the files it read, in the order read."""

    path: str
    line: int
    pattern: str
    files: tuple[str, ...]
