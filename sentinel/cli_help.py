"""`--help` that shows what to type: no `<bool>` beside a flag, no `<list[str]>` beside a repeatable option.

Typer's rich help panel prints a type for every parameter, flags included (`--once <bool>`, `--help <bool>`),
and the Python annotation of a list (`<list[str]>`); its plain-text formatter already leaves flags bare.
`install()` makes both formatters agree: a flag shows no type, a parameter with an explicit metavar shows
that (`--scope CIDR`), a list shows its element type (`<str>`; the help text says "repeat"), and an argument
named by its metavar (`TARGET...`) shows no type beside the name. tests/test_cli_wording.py pins the
result, so a typer release that renames these hooks fails a test instead of silently showing types again.
"""
from __future__ import annotations

import re

_LIST = re.compile(r"<list\[([^\]]+)\]>")


def _tidy(label):
    return _LIST.sub(r"<\1>", label) if isinstance(label, str) else label


def install() -> None:
    """Patch typer's help type display (idempotent; a typer without these hooks is left as it is)."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer is a dependency
        return
    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is None or argument is None or getattr(option, "_sentinel_help", False):
        return
    option_type, argument_type = option.display_type_rich, argument.display_type_rich

    def option_display(self, ctx):
        if self.metavar is not None:
            return self.metavar
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None  # a flag takes no value
        return _tidy(option_type(self, ctx))

    def argument_display(self, ctx):
        if self.metavar is not None:
            return None  # the metavar is already the argument's name in the panel
        return _tidy(argument_type(self, ctx))

    option.display_type_rich = option_display
    argument.display_type_rich = argument_display
    option._sentinel_help = True
