#!/usr/bin/env python3
"""Write deploy/kubernetes/prometheusrule.yaml: the Prometheus Operator copy of deploy/prometheus/sentinel-rules.yml.

    python deploy/kubernetes/make_prometheusrule.py           # rewrite it
    python deploy/kubernetes/make_prometheusrule.py --check   # exit 1 if it is out of date
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "sentinel-rules.yml"
OUT = HERE / "prometheusrule.yaml"

HEADER = ("# Prometheus Operator copy of deploy/prometheus/sentinel-rules.yml, made by make_prometheusrule.py\n"
          "# (do not edit by hand: edit sentinel-rules.yml, then run the script).\n")


def render() -> str:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "sentinel", "namespace": "sentinel",
                        "labels": {"app.kubernetes.io/name": "sentinel", "app.kubernetes.io/part-of": "sentinel"}},
           "spec": {"groups": rules["groups"]}}
    return HEADER + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
