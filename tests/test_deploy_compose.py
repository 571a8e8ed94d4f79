"""deploy/compose: Docker does not run here, so the compose file is checked as data: the five services and
their one-shot init, healthchecks, dependencies, volumes, files it mounts, secrets taken from .env only,
ports other than the collector's bound to loopback, and the Prometheus config it mounts."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.obs_support import need

COMPOSE_DIR = Path(__file__).resolve().parents[1] / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _long_running(services: dict) -> dict:
    return {n: s for n, s in services.items() if s.get("restart") != "no"}


def test_the_stack_has_its_services(compose):
    services = compose["services"]
    assert {"collector", "postgres", "prometheus", "alertmanager", "grafana"} <= set(services)
    images = {n: s.get("image", "") for n, s in services.items()}
    assert images["postgres"].startswith("postgres:") and images["prometheus"].startswith("prom/prometheus:")
    assert images["alertmanager"].startswith("prom/alertmanager:") and images["grafana"].startswith("grafana/")
    for name, image in images.items():
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"


def test_every_long_running_service_has_a_healthcheck_and_restarts(compose):
    for name, svc in _long_running(compose["services"]).items():
        hc = svc.get("healthcheck")
        assert hc and hc["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        assert {"interval", "timeout", "retries"} <= set(hc), name
        assert svc.get("restart") == "unless-stopped", name


def test_dependencies_wait_for_health(compose):
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if services[dep].get("restart") == "no" else "service_healthy"
            assert cond == {"condition": expected}, f"{name} -> {dep}"
    assert services["collector"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "collector-init" in services["collector"]["depends_on"]


def test_volumes_are_declared_and_host_files_exist(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for spec in svc.get("volumes", []):
            source, target, *mode = spec.split(":")
            assert target.startswith("/"), f"{name}: {spec}"
            if source.startswith((".", "/")):
                path = (COMPOSE_DIR / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which does not exist"
                assert mode == ["ro"], f"{name}: mount configuration read-only: {spec}"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    grafana = compose["services"]["grafana"]["volumes"]
    assert any(v.startswith("../grafana/dashboards:") for v in grafana)
    assert any(v.startswith("../grafana/provisioning/datasources:") for v in grafana)


def test_secrets_come_from_the_environment_only(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    for key in ("POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"):
        values = re.findall(rf"{key}:\s*(\S+)", text)
        assert values and all(v.startswith("${") and ":?" in v for v in values), key
    urls = [svc["environment"]["SENTINEL_COLLECTOR_DATABASE_URL"] for svc in compose["services"].values()
            if "SENTINEL_COLLECTOR_DATABASE_URL" in svc.get("environment", {})]
    assert len(urls) == 2
    for url in urls:
        assert re.fullmatch(r"postgresql://sentinel:\$\{SENTINEL_DB_PASSWORD:\?[^}]*\}@postgres:5432/sentinel",
                            url), url
    example = (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8")
    assert re.search(r"^SENTINEL_DB_PASSWORD=$", example, re.M)
    assert re.search(r"^GRAFANA_ADMIN_PASSWORD=$", example, re.M)


def test_only_the_collector_is_published_beyond_loopback(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            if name == "collector":
                assert port == "8443:8443"
            else:
                assert port.startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"


def test_mounted_prometheus_config_is_valid_and_matches_the_stack(compose):
    proc = subprocess.run([need("promtool"), "check", "config", "--syntax-only", "prometheus.yml"],
                          capture_output=True, text=True, cwd=COMPOSE_DIR, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    sentinel_job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "sentinel")
    assert sentinel_job["static_configs"][0]["targets"] == ["collector:8443"]
    assert sentinel_job["scheme"] == "https"
    ca = sentinel_job["tls_config"]["ca_file"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert any(ca.startswith(m.split(":")[1] + "/") for m in mounts), f"{ca} is not mounted into prometheus"
    assert cfg["rule_files"] == ["/etc/prometheus/rules/sentinel-rules.yml"]
    assert any(m.endswith(":/etc/prometheus/rules/sentinel-rules.yml:ro") for m in mounts)
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_collector_init_and_dockerfile(compose):
    init = compose["services"]["collector-init"]
    script = " ".join(init["command"])
    assert "sentinel collector init" in script and "sentinel db upgrade" in script
    assert "--name collector" in script, "the certificate must name the host Prometheus scrapes"
    build = init["build"]
    dockerfile = (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile.is_file()
    text = dockerfile.read_text(encoding="utf-8")
    assert "USER 10001" in text and 'ENTRYPOINT ["sentinel"]' in text
    assert compose["services"]["collector"]["image"] == init["image"]


def test_alertmanager_relays_through_the_collector(compose):
    """The shipped Alertmanager config sends every notification to the collector's relay, with the token and
    CA that collector-init copies into the volume mounted where the config reads them; the collector has the
    dispatch configuration whose `relayed_from` routes name exactly those Alertmanager receivers."""
    am_cfg = yaml.safe_load((COMPOSE_DIR.parent / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    am_mounts = {m.split(":")[1]: m.split(":")[0] for m in services["alertmanager"]["volumes"]}
    for receiver in am_cfg["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"] == "https://collector:8443/api/v1/alertmanager/webhook", receiver["name"]
            files = [hook["http_config"]["authorization"]["credentials_file"],
                     hook["http_config"]["tls_config"]["ca_file"]]
            for path in files:
                assert am_mounts.get(str(Path(path).parent)) == "alertmanager-sentinel", path
    init = " ".join(services["collector-init"]["command"])
    assert "/var/lib/alertmanager-sentinel/relay-token" in init and "/var/lib/alertmanager-sentinel/ca.crt" in init
    assert "alertmanager-sentinel:/var/lib/alertmanager-sentinel" in services["collector-init"]["volumes"]
    collector = services["collector"]
    config = collector["environment"]["SENTINEL_COLLECTOR_ALERTING_CONFIG"]
    source = next(m.split(":")[0] for m in collector["volumes"] if m.split(":")[1] == config)
    dispatch = yaml.safe_load((COMPOSE_DIR / source).read_text(encoding="utf-8"))
    relayed = {name for route in dispatch["routes"] for name in route.get("relayed_from", [])}
    assert relayed == {r["name"] for r in am_cfg["receivers"]}
    needed = {name for r in dispatch["receivers"] for v in r.values() if isinstance(v, str)
              for name in re.findall(r"\$\{([A-Z_]+)\}", v)}
    assert needed
    assert needed <= set(collector["environment"]), needed - set(collector["environment"])
    example = (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8")
    assert all(re.search(rf"^{name}=$", example, re.M) for name in needed)
