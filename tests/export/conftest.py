"""Fixtures of the export tests: a tiny trainer checkpoint, a small dataset store and a key pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.keys import keygen
from tests.data.regenerate_export_golden import tiny_checkpoint
from tests.trainer.conftest import make_store


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RRDB n_b=1, 8 features, recipe le8 (12 input channels), 16x16 patches, untrained."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", patch=16)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-cell le8 store with 16x16 patches (train / val / test splits)."""
    return make_store(tmp_path_factory.mktemp("store") / "synth.zarr", n=24, patch=16)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    priv, pub, _ = keygen(tmp_path_factory.mktemp("keys"))
    return priv, pub
