"""deploy/kubernetes manifests, parsed: every document has apiVersion/kind/name, the agent DaemonSet reads the
node only through read-only mounts (its own state directory aside) with one capability, the Service,
ServiceMonitor and Deployment select each other, and the PrometheusRule carries the shipped rules."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

K8S = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
RULES = K8S.parent / "prometheus" / "sentinel-rules.yml"
ALERTMANAGER = K8S.parent / "alertmanager" / "alertmanager.yml"
DISPATCH = K8S.parent / "alerting" / "dispatch.example.yml"


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
    proc = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True,
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


# ---- the relay: Alertmanager -> collector -> robots, wired as in deploy/compose ------------------------------

def _mounts(pod: dict, container: str) -> dict[str, dict]:
    """mountPath -> the volume behind it, for one container of a pod spec."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    c = next(c for c in pod["containers"] if c["name"] == container)
    return {m["mountPath"]: {**volumes[m["name"]], "_mount": m} for m in c["volumeMounts"]}


def _file_in(mounts: dict[str, dict], path: str) -> tuple[str, str]:
    """(volume kind and object name, key) serving the file `path` through one of the mounts."""
    for mount_path, vol in mounts.items():
        sub = vol["_mount"].get("subPath")
        if sub and path == mount_path:
            rel = sub
        elif not sub and path.startswith(mount_path.rstrip("/") + "/"):
            rel = path[len(mount_path.rstrip("/")) + 1:]
        else:
            continue
        sources = vol["projected"]["sources"] if "projected" in vol else [vol]
        for src in sources:
            kind = "configMap" if "configMap" in src else "secret"
            ref = src[kind]
            name = ref.get("name") or ref.get("secretName")
            items = ref.get("items")
            if items is None:
                return f"{kind}/{name}", rel
            for item in items:
                if item["path"] == rel:
                    return f"{kind}/{name}", item["key"]
    raise AssertionError(f"{path} is not mounted")


def _configmap(name: str, key: str) -> str:
    return _one("ConfigMap", name)["data"][key]


def test_alertmanager_config_is_the_shipped_file_sending_to_the_collector_service():
    shipped = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    text = _configmap("sentinel-alertmanager", "alertmanager.yml")
    config = yaml.safe_load(text)
    dep = _one("Deployment", "sentinel-collector")
    init_args = " ".join(dep["spec"]["template"]["spec"]["initContainers"][0]["args"])
    svc = _one("Service", "sentinel-collector")
    for got, want in zip(config["receivers"], shipped["receivers"], strict=True):
        for hook, shipped_hook in zip(got["webhook_configs"], want["webhook_configs"], strict=True):
            url = httpx.URL(hook["url"])
            # the collector's Service, by a name its server certificate carries (collector init --name)
            assert url.host == "sentinel-collector.sentinel.svc" and f"--name {url.host}" in init_args
            assert url.port == svc["spec"]["ports"][0]["port"] and url.scheme == "https"
            assert url.path == httpx.URL(shipped_hook["url"]).path == "/api/v1/alertmanager/webhook"
            assert {k: v for k, v in hook.items() if k != "url"} == {
                k: v for k, v in shipped_hook.items() if k != "url"}
    assert {k: v for k, v in config.items() if k != "receivers"} == {
        k: v for k, v in shipped.items() if k != "receivers"}


def test_alertmanager_config_passes_amtool(tmp_path: Path):
    amtool = shutil.which("amtool")
    assert amtool, "amtool (Debian prometheus-alertmanager) is installed by tests/setup-machine.sh"
    path = tmp_path / "alertmanager.yml"
    path.write_text(_configmap("sentinel-alertmanager", "alertmanager.yml"), encoding="utf-8")
    proc = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_pod_has_the_files_its_config_names():
    dep = _one("Deployment", "sentinel-alertmanager")
    pod = dep["spec"]["template"]["spec"]
    mounts = _mounts(pod, "alertmanager")
    args = pod["containers"][0]["args"]
    config_file = next(a.split("=", 1)[1] for a in args if a.startswith("--config.file="))
    assert _file_in(mounts, config_file) == ("configMap/sentinel-alertmanager", "alertmanager.yml")
    http = yaml.safe_load(_configmap("sentinel-alertmanager", "alertmanager.yml"))["receivers"][0][
        "webhook_configs"][0]["http_config"]
    # the same token the collector's relay reads, and the CA that signed the collector's certificate
    assert _file_in(mounts, http["authorization"]["credentials_file"]) == ("secret/sentinel-relay", "relay-token")
    assert _file_in(mounts, http["tls_config"]["ca_file"]) == ("configMap/sentinel-collector-ca", "ca.crt")
    svc = _one("Service", "sentinel-alertmanager")
    assert svc["spec"]["selector"].items() <= pod_labels(dep).items()
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    _one("PersistentVolumeClaim", next(v for v in pod["volumes"] if v["name"] == "data")[
        "persistentVolumeClaim"]["claimName"])


def pod_labels(dep: dict) -> dict:
    return dep["spec"]["template"]["metadata"]["labels"]


def test_collector_reads_its_config_the_relay_token_and_the_robots(tmp_path: Path, monkeypatch):
    from sentinel.collector.settings import DEFAULT_CONFIG_FILE, load_collector_settings
    from sentinel.events.dispatch import DispatchConfig

    pod = _one("Deployment", "sentinel-collector")["spec"]["template"]["spec"]
    mounts = _mounts(pod, "collector")
    # the collector finds its config file at the default path (no --config in its args)
    assert _file_in(mounts, str(DEFAULT_CONFIG_FILE)) == ("configMap/sentinel-collector", "collector.yaml")
    config_file = tmp_path / "collector.yaml"
    config_file.write_text(_configmap("sentinel-collector", "collector.yaml"), encoding="utf-8")
    for name in [n for n in os.environ if n.startswith("SENTINEL_")]:
        monkeypatch.delenv(name)
    settings = load_collector_settings(config_file, state_dir=tmp_path)
    assert settings.relay_token_file is not None and settings.alerting_config is not None
    assert _file_in(mounts, str(settings.relay_token_file)) == ("secret/sentinel-relay", "relay-token")
    assert _file_in(mounts, str(settings.alerting_config)) == ("configMap/sentinel-alerting", "alerting.yml")

    # the delivery config is the shipped example, pushing to the Alertmanager Service; its ${VARIABLES} come
    # from the Secret the collector takes its environment from
    collector = next(c for c in pod["containers"] if c["name"] == "collector")
    assert {"secretRef": {"name": "sentinel-robots"}} in collector["envFrom"]
    text = _configmap("sentinel-alerting", "alerting.yml")
    variables = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert variables == set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", DISPATCH.read_text(encoding="utf-8")))
    path = tmp_path / "alerting.yml"
    path.write_text(text, encoding="utf-8")
    config = DispatchConfig.from_yaml(path, env={v: f"https://robot.example/{v.lower()}" for v in variables})
    am = [r for r in config.receivers if r.type == "alertmanager"]
    assert len(am) == 1
    url = httpx.URL(am[0].url.get_secret_value())
    am_svc = _one("Service", "sentinel-alertmanager")
    assert url.host == "sentinel-alertmanager.sentinel.svc" and url.port == am_svc["spec"]["ports"][0]["port"]
    shipped = DispatchConfig.from_yaml(DISPATCH, env={v: f"https://robot.example/{v.lower()}" for v in variables})
    assert config.routes == shipped.routes
