"""Agent settings: file < environment < flags, and errors that name the file, line or field."""
from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.agent.config import DEFAULT_BASELINE, ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SENTINEL_AGENT_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_defaults_schedule_the_level3_baseline(tmp_path):
    s = load_settings(None, state_dir=tmp_path)
    assert [b.baseline for b in s.baselines] == [DEFAULT_BASELINE]
    assert s.state_dir == tmp_path and s.spool_dir == tmp_path / "spool"
    assert s.key_file == tmp_path / "agent.key"


def test_file_then_environment_then_flags(tmp_path, monkeypatch):
    path = _write(tmp_path, """
collector_url: https://collector.example:8443/
jitter: 30
time_budget: 120
baselines:
  - {baseline: dengbao-l3-linux, interval: 3600}
  - {baseline: /etc/sentinel/site.yaml, interval: 600, jitter: 5}
""")
    monkeypatch.setenv("SENTINEL_AGENT_JITTER", "45")
    s = load_settings(path, time_budget=60)
    assert s.collector_url == "https://collector.example:8443"
    assert s.jitter == 45 and s.time_budget == 60
    assert [(b.baseline, b.interval, b.jitter) for b in s.baselines] == [
        ("dengbao-l3-linux", 3600, None), ("/etc/sentinel/site.yaml", 600, 5)]


def test_unknown_key_names_the_file_and_key(tmp_path):
    path = _write(tmp_path, "jiter: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}.*jiter: Extra inputs are not permitted"):
        load_settings(path)


def test_bad_value_names_the_field(tmp_path):
    path = _write(tmp_path, "baselines:\n  - {baseline: x, interval: 0}\n")
    with pytest.raises(ConfigError, match=r"baselines\.0\.interval: Input should be greater than or equal to 1"):
        load_settings(path)
    with pytest.raises(ConfigError, match="collector_url: Value error, must start with https://"):
        load_settings(None, collector_url="collector:8443")
    with pytest.raises(ConfigError, match="retry_max must be >= retry_min"):
        load_settings(None, retry_min=10, retry_max=1)
    with pytest.raises(ConfigError, match="at least one baseline"):
        load_settings(None, baselines=[])


def test_invalid_yaml_names_the_line(tmp_path):
    path = _write(tmp_path, "jitter: 3\nbaselines: [\n  {baseline: x\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: invalid YAML"):
        load_settings(path)
    path = _write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match=rf"{path}:1: expected a mapping"):
        load_settings(path)
    path = _write(tmp_path, "jitter: 3\x07\n")  # a reader error: PyYAML gives no line, none is made up
    with pytest.raises(ConfigError, match=rf"^{path}: invalid YAML: unacceptable character #x0007"):
        load_settings(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.yaml")


def test_environment_error_is_attributed(monkeypatch):
    monkeypatch.setenv("SENTINEL_AGENT_SPOOL_MAX_COUNT", "many")
    with pytest.raises(ConfigError, match="SENTINEL_AGENT_.*spool_max_count: Input should be a valid integer"):
        load_settings(None)
