"""Shared pytest fixtures."""
import pytest

from tests.fixtures.build import build_root

# Registered here, before any test module imports them, so pytest rewrites their asserts (test modules that
# name them in their own pytest_plugins get the same plugin objects).
pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


@pytest.fixture(autouse=True)
def _no_object_discovery(monkeypatch):
    """Agents made by tests (in process or as `sentinel up`/`agent` children, which inherit the environment) do
    not discover this machine's own servers as 测评对象: their object baselines would connect to services the
    test did not start. Tests of objects give their agent its `objects` settings explicitly."""
    monkeypatch.setenv("SENTINEL_AGENT_OBJECTS__DISCOVER", "false")


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory):
    """Factory: `fixture_root("rocky9-hardened")` -> Path of that offline root, built once per session.

    Roots are shared by every test of the session: treat them as read-only (probes never write anyway).
    """
    base = tmp_path_factory.mktemp("fixture-roots")
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = build_root(name, base)
        return built[name]

    return get


# Markers (setup.cfg): `postgres` goes on every test that reaches the PostgreSQL server, found here rather than
# written on each test, since most reach it through a "postgresql" parameter of a store fixture; `root` goes
# on every test of the namespace labs (the `lab` and `real_lab` fixtures) and, in the modules, on the other
# tests that need root. `-m "not postgres and not root"` then leaves out exactly those.
_POSTGRES_FIXTURES = {"pg_schemas", "_pg_template"}
_ROOT_FIXTURES = {"lab", "real_lab"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = item.callspec.params.values() if hasattr(item, "callspec") else ()
        if names & _POSTGRES_FIXTURES or any(isinstance(v, str) and v == "postgresql" for v in params):
            item.add_marker(pytest.mark.postgres)
        if names & _ROOT_FIXTURES:
            item.add_marker(pytest.mark.root)


# In CI (CI=true) every test runs: a skip there means a missing install step in tests/setup-machine.sh or
# the lock, which would otherwise pass unseen. The README's "Testing" section lists when a skip may happen
# on a developer's machine.
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    import os

    if os.environ.get("CI") and _skipped and exitstatus == 0:
        print("\nCI runs every test, but these were skipped:\n  " + "\n  ".join(_skipped))
        session.exitstatus = 1
