"""Tamper (篡改) detection: a page's visible text against the baseline a person reviewed.

A round keeps the visible text of every declared page (crawl.Fetch.text: scripts and styles left out, one
line per block, the declaration's `dynamic_selectors` removed). Dates and times are masked here as well,
since a page's clock or "updated on" line changes without anyone tampering. A person approves a snapshot
as the page's baseline (API: POST /websites/{id}/baselines); from then on every line added or removed is
a difference, shown as a unified diff a person can read.
"""
from __future__ import annotations

import difflib
import hashlib
import re

_MASKS = (
    (re.compile(r"(19|20)\d\d\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}(\s*日)?"), "<日期>"),
    (re.compile(r"\b\d{1,2}:\d\d(:\d\d)?\b"), "<时间>"),
    (re.compile(r"星期[一二三四五六日天]|周[一二三四五六日]"), "<星期>"),
)
MAX_DIFF_LINES = 60


def mask(text: str) -> list[str]:
    """The text's lines with dates, times and weekdays replaced by placeholders."""
    out = []
    for line in text.splitlines():
        for pattern, placeholder in _MASKS:
            line = pattern.sub(placeholder, line)
        line = line.strip()
        if line:
            out.append(line)
    return out


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def compare(baseline: list[str], current: list[str], url: str) -> tuple[int, int, list[str]]:
    """(lines added, lines removed, the unified diff, at most MAX_DIFF_LINES lines)."""
    diff = list(difflib.unified_diff(baseline, current, fromfile=f"{url} (reviewed baseline)",
                                     tofile=f"{url} (now)", lineterm="", n=1))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    if len(diff) > MAX_DIFF_LINES:
        diff = diff[:MAX_DIFF_LINES] + [f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)"]
    return added, removed, diff
