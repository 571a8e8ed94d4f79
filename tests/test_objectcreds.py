"""Object-probe credentials: environment over site file, per instance, the file's mode, and no secret in repr."""
from __future__ import annotations

import pytest

from sentinel.objectcreds import CredentialsError, credentials


def _file(tmp_path, text, mode=0o600):
    p = tmp_path / "objects.yaml"
    p.write_text(text, encoding="utf-8")
    p.chmod(mode)
    return p


def test_environment_overrides_the_file_for_the_default_instance(tmp_path):
    p = _file(tmp_path, "mysql: {user: ro, password: filepw, port: 3306}\n")
    c = credentials("mysql", environ={"SENTINEL_MYSQL_PASSWORD": "envpw"}, path=p)
    assert (c.user, c.secret(), c.port) == ("ro", "envpw", 3306)
    assert "envpw" not in repr(c) and "envpw" not in str(c)


def test_an_instance_takes_its_own_account_and_not_the_environment(tmp_path):
    p = _file(tmp_path, "mysql:\n  user: ro\n  instances:\n    '3307': {password: other, port: 3307}\n")
    c = credentials("mysql", "3307", environ={"SENTINEL_MYSQL_PASSWORD": "envpw"}, path=p)
    assert (c.user, c.secret(), c.port) == ("ro", "other", 3307)


def test_no_file_and_no_environment_gives_nothing(tmp_path):
    c = credentials("redis", environ={}, path=tmp_path / "absent.yaml")
    assert c.secret() is None and c.user is None


def test_a_file_others_may_read_is_refused_by_name(tmp_path):
    p = _file(tmp_path, "redis: {password: x}\n", mode=0o644)
    with pytest.raises(CredentialsError, match="objects.yaml.*chmod 600"):
        credentials("redis", environ={}, path=p)


def test_a_bad_field_is_named(tmp_path):
    p = _file(tmp_path, "redis: {port: notanumber}\n")
    with pytest.raises(CredentialsError, match=r"redis: invalid field\(s\): port"):
        credentials("redis", environ={}, path=p)
