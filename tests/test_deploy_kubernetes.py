"""deploy/kubernetes manifests, parsed: every document has apiVersion/kind/name, the agent DaemonSet reads the
node only through read-only mounts (its own state directory aside) with one capability, the Service,
ServiceMonitor and Deployment select each other, and the PrometheusRule carries the shipped rules."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
RULES = K8S.parent / "prometheus" / "sentinel-rules.yml"


def _docs() -> list[dict]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append({**doc, "_file": path.name})
    return out


def _one(kind: str, name: str) -> dict:
    found = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_every_document_is_a_named_object():
    docs = _docs()
    assert docs
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d["_file"]
        assert d["metadata"].get("name"), d["_file"]
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "sentinel", f"{d['kind']}/{d['metadata']['name']}"
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "DaemonSet", "ServiceMonitor", "PrometheusRule"} <= kinds


def test_kustomization_lists_every_manifest():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == files


def test_agent_daemonset_mounts_the_node_read_only():
    ds = _one("DaemonSet", "sentinel-agent")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True and spec["hostNetwork"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    host_paths = {n for n, v in volumes.items() if "hostPath" in v}
    assert volumes["host-root"]["hostPath"]["path"] == "/"
    assert host_paths == {"host-root", "state"}, "only the node root (read-only) and the agent's own state"
    assert volumes["state"]["hostPath"]["path"] == "/var/lib/sentinel-agent"
    for c in spec["containers"] + spec.get("initContainers", []):
        for m in c.get("volumeMounts", []):
            if m["name"] in host_paths and m["name"] != "state":
                assert m.get("readOnly") is True, f"{c['name']} mounts {m['name']} writable"
            if m["name"] == "state":
                assert m["mountPath"] == "/var/lib/sentinel-agent"
            if volumes[m["name"]].get("secret") or volumes[m["name"]].get("configMap"):
                assert m.get("readOnly") is True, f"{c['name']}: {m['name']}"
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"].get("add", [])) <= {"DAC_READ_SEARCH"}
        assert not sc.get("privileged")
    agent = next(c for c in spec["containers"] if c["name"] == "agent")
    root_mount = next(m for m in agent["volumeMounts"] if m["name"] == "host-root")
    assert root_mount["mountPath"] == "/host" and root_mount["readOnly"] is True
    assert agent["resources"]["limits"]["memory"]
    config = yaml.safe_load(_one("ConfigMap", "sentinel-agent")["data"]["agent.yaml"])
    assert config["host_root"] == root_mount["mountPath"]
    assert config["collector_url"].startswith("https://sentinel-collector.sentinel.svc:")


def test_enrollment_token_never_on_a_command_line():
    ds = _one("DaemonSet", "sentinel-agent")
    init = ds["spec"]["template"]["spec"]["initContainers"][0]
    script = " ".join(init["args"])
    assert "SENTINEL_ENROLL_TOKEN=" in script and "--token" not in script


def test_collector_deployment_service_and_servicemonitor_fit_together():
    dep = _one("Deployment", "sentinel-collector")
    svc = _one("Service", "sentinel-collector")
    sm = _one("ServiceMonitor", "sentinel-collector")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics" and endpoint["scheme"] == "https"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"] for p in container["ports"]} >= {svc["spec"]["ports"][0]["targetPort"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health"
    pod_sc = dep["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    claim = dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    _one("PersistentVolumeClaim", claim)
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    for env in container["env"]:
        assert "value" not in env, "secrets come from Secrets, not literal values"


def test_prometheusrule_is_the_shipped_rule_file():
    rule = _one("PrometheusRule", "sentinel")
    shipped = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == shipped["groups"]
    proc = subprocess.run([sys.executable, str(K8S / "make_prometheusrule.py"), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_images_are_pinned(path: Path):
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if not doc or doc.get("kind") not in ("Deployment", "DaemonSet"):
            continue
        spec = doc["spec"]["template"]["spec"]
        for c in spec["containers"] + spec.get("initContainers", []):
            assert ":" in c["image"] and not c["image"].endswith(":latest")
