"""`sentinel check --object KIND[:INSTANCE]` and `--list-objects` (issue 15) on the objects fixture root."""
from __future__ import annotations

import json
from pathlib import Path

from sentinel.cli import main

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
ROOT = str(OBJECTS / "debian12-objects")
REDIS = str(OBJECTS / "sentinel-test-redis.yaml")


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_one_object_instance(capsys):
    code, out, _ = run(capsys, "check", "--root", ROOT, "--object", "redis:6380", "--baseline", REDIS,
                       "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["object"] == {"kind": "redis", "instance": "6380", "name": "db01 Redis 7.0 (6380)",
                                "version": "7.0", "port": 6380, "config": "/etc/redis/redis-cache.conf"}
    assert [r["status"] for r in report["results"]] == ["pass"]
    # the table names the object
    code, out, _ = run(capsys, "check", "--root", ROOT, "--object", "redis", "--baseline", REDIS, "--lang", "en")
    assert code == 0 and "object: db01 Redis 7.0 (6379) (redis:6379)" in out


def test_object_usage_errors(capsys):
    code, _, err = run(capsys, "check", "--root", ROOT, "--object", "oracle")
    assert code == 2 and "KIND one of mysql, postgresql, redis" in err
    code, _, err = run(capsys, "check", "--root", ROOT, "--object", "tomcat")
    assert code == 2 and "no tomcat found" in err
    code, _, err = run(capsys, "check", "--root", ROOT, "--object", "nginx", "--baseline", REDIS)
    assert code == 2 and "judges redis objects, not nginx" in err
    code, _, err = run(capsys, "check", "--root", ROOT, "--baseline", REDIS)  # which Redis?
    assert code == 2 and "--object redis[:INSTANCE]" in err
    # an instance discovery does not find is judged as named, with a warning
    code, out, err = run(capsys, "check", "--root", ROOT, "--object", "redis:7000", "--baseline", REDIS,
                         "--format", "json")
    assert code == 0 and "does not find this instance (found: 6379, 6380)" in err
    assert json.loads(out)["object"]["instance"] == "7000"


def test_list_objects(capsys):
    code, out, _ = run(capsys, "check", "--root", ROOT, "--list-objects", "--format", "json")
    assert code == 0
    assert [(o["object"]["kind"], o["object"]["instance"]) for o in json.loads(out)] == [
        ("mysql", "3307"), ("postgresql", "5433"), ("redis", "6379"), ("redis", "6380"),
        ("nginx", "/etc/nginx/nginx.conf")]
    code, out, _ = run(capsys, "check", "--root", ROOT, "--list-objects", "--level", "2", "--lang", "en")
    assert code == 0 and "redis:6380\tdb01 Redis 7.0 (6380)\toffline root" in out
    assert "found by: /etc/redis/redis-cache.conf: port 6380" in out


def test_up_summary_names_the_object(capsys):
    """`sentinel up`'s per-report summary heads an object's report with its 测评对象 name."""
    from sentinel.up_summary import print_summary

    code, out, _ = run(capsys, "check", "--root", ROOT, "--object", "redis:6380", "--baseline", REDIS,
                       "--format", "json")
    report = json.loads(out)
    print_summary(report, "zh")
    head = capsys.readouterr().out.splitlines()[0]
    assert "测评对象 db01 Redis 7.0 (6380)：得分 100.0" in head
    print_summary(report, "en")
    assert " on db01 Redis 7.0 (6380): score 100.0" in capsys.readouterr().out.splitlines()[0]
