"""Shared pytest fixtures."""
import pytest

from tests.fixtures.build import build_root


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
