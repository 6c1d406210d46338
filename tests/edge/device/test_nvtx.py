from __future__ import annotations

import contextlib
import importlib
import sys

import pytest

import edge.device.nvtx as nvtx_mod


def test_without_nvtx_ranges_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nvtx", None)  # an import of nvtx now raises ImportError
    mod = importlib.reload(nvtx_mod)
    try:
        assert mod.ENABLED is False
        rng = mod.nvtx_range("process/qc")
        assert isinstance(rng, contextlib.nullcontext)
        with rng:
            pass
    finally:
        monkeypatch.undo()
        importlib.reload(nvtx_mod)
