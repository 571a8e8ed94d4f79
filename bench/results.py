"""Shared by the bench scripts: replace one section of bench/RESULTS.md, keeping the others."""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by the scripts in `bench/`; each section is replaced by its own script.\n"


def write_section(key: str, title: str, body: str) -> None:
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    block = f"{start}\n## {title}\n\n{body.rstrip()}\n{end}"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text, encoding="utf-8")
