"""Fixtures of the dataset-build tests (shared with the command tests through tests/support)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.rawscans import make_small_scan, make_stained_frames


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_scan(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def stained_frames() -> list[Any]:
    return make_stained_frames()
