"""Shared fixtures. Every test must leave no thread, process, socket or file behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

#: Process-wide worker pools that libraries start once and keep (not ours to join).
LIBRARY_POOLS = ("zarr_io", "asyncio_")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a new thread running after its own teardown."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate()
              if t not in before and t.is_alive() and not t.name.startswith(LIBRARY_POOLS)]
    for t in leaked:
        t.join(timeout=2.0)
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


#: Per-test limit (s) of `slow` tests (trainings); the default suite's limit is `timeout` in pyproject.toml.
SLOW_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` tests get a longer hang limit unless they set their own ``@pytest.mark.timeout``."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
