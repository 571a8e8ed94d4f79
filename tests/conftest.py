"""Shared pytest fixtures."""
import pytest

from tests.fixtures.build import build_root

# Registered here, before any test module imports them, so pytest rewrites their asserts (test modules that
# name them in their own pytest_plugins get the same plugin objects).
pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


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
