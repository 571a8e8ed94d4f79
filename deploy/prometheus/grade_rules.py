#!/usr/bin/env python3
"""Rewrite the `severity` and `grade` labels of deploy/prometheus/sentinel-rules.yml from the graded-response
table (sentinel/events/grading.py), keeping the file's comments and layout.

    python deploy/prometheus/grade_rules.py           # rewrite them
    python deploy/prometheus/grade_rules.py --check   # exit 1 if a rule's labels are not the table's

Then run deploy/kubernetes/generate.py for the Kubernetes copy.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from sentinel.events import grading

RULES = Path(__file__).resolve().parent / "sentinel-rules.yml"


def _quoted(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def render(text: str) -> str:
    out = []
    for block in re.split(r"(?m)^(?=      - alert: )", text):
        m = re.match(r"      - alert: (\w+)", block)
        if m:
            if m.group(1) not in grading.CLASS_OF:
                raise SystemExit(f"{RULES}: alert {m.group(1)} is not in sentinel/events/grading.py's table (CLASS_OF)")
            labels = grading.rule_labels(m.group(1))
            for key in ("severity", "grade"):
                block = re.sub(rf"(?m)^          {key}: .*$", f"          {key}: {_quoted(labels[key])}", block,
                               count=1)
        out.append(block)
    return "".join(out)


def main(argv: list[str]) -> int:
    text = RULES.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{RULES}: severity/grade labels differ from sentinel/events/grading.py: run {Path(__file__).name}",
                  file=sys.stderr)
            return 1
        return 0
    RULES.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
