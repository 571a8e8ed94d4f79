#!/usr/bin/env python3
"""Write the Kubernetes copies of shipped configuration, so each file has one source:

- prometheusrule.yaml: the Prometheus Operator copy of deploy/prometheus/sentinel-rules.yml;
- alertmanager-config.yaml: deploy/alertmanager/alertmanager.yml as a ConfigMap, its receivers sending to the
  collector's Service instead of compose's `collector` host;
- alerting-config.yaml: deploy/alerting/dispatch.example.yml (the collector's event delivery and relay routes)
  as a ConfigMap, pushing to the Alertmanager Service instead of compose's `alertmanager` host.

    python deploy/kubernetes/generate.py           # rewrite them
    python deploy/kubernetes/generate.py --check   # exit 1 if one is out of date
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
RULES = DEPLOY / "prometheus" / "sentinel-rules.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
DISPATCH = DEPLOY / "alerting" / "dispatch.example.yml"

NAMESPACE = "sentinel"
# the names compose gives the two services, and the Service names of collector.yaml and alertmanager.yaml
COLLECTOR = ("https://collector:8443/", f"https://sentinel-collector.{NAMESPACE}.svc:8443/")
ALERTMANAGER_URL = ("http://alertmanager:9093", f"http://sentinel-alertmanager.{NAMESPACE}.svc:9093")


def _header(source: Path) -> str:
    return (f"# Kubernetes copy of deploy/{source.relative_to(DEPLOY)}, made by generate.py\n"
            f"# (do not edit by hand: edit that file, then run the script).\n")


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "sentinel"}


def prometheusrule() -> str:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "sentinel", "namespace": NAMESPACE, "labels": _labels("sentinel")},
           "spec": {"groups": rules["groups"]}}
    return _header(RULES) + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)


def _rehosted(source: Path, old_new: tuple[str, str]) -> str:
    text = source.read_text(encoding="utf-8")
    old, new = old_new
    if old not in text:  # the source moved on: a silent no-op here would ship compose's host names
        raise SystemExit(f"{source}: no {old!r} to point at {new!r}; update generate.py")
    return text.replace(old, new)


def _configmap(name: str, key: str, source: Path, text: str) -> str:
    """A ConfigMap holding `text` as a block scalar, comments and anchors as the source has them."""
    meta = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "namespace": NAMESPACE, "labels": _labels(name)}},
                          allow_unicode=True, sort_keys=False)
    body = "".join(f"    {line}".rstrip() + "\n" for line in text.splitlines())
    return _header(source) + meta + f"data:\n  {key}: |\n" + body


def alertmanager_config() -> str:
    return _configmap("sentinel-alertmanager", "alertmanager.yml", ALERTMANAGER, _rehosted(ALERTMANAGER, COLLECTOR))


def alerting_config() -> str:
    return _configmap("sentinel-alerting", "alerting.yml", DISPATCH, _rehosted(DISPATCH, ALERTMANAGER_URL))


OUTPUTS = {
    HERE / "prometheusrule.yaml": prometheusrule,
    HERE / "alertmanager-config.yaml": alertmanager_config,
    HERE / "alerting-config.yaml": alerting_config,
}


def main(argv: list[str]) -> int:
    stale = []
    for out, render in OUTPUTS.items():
        text = render()
        if "--check" in argv:
            if not out.is_file() or out.read_text(encoding="utf-8") != text:
                stale.append(out.name)
        else:
            out.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}: run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
