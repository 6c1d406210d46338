"""Scripts outside the packages (``bench/*.py``, ``docs/results/*.py``) loaded as modules for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str) -> ModuleType:
    """Execute ``ROOT / relative`` afresh as a module named after its path (registered in ``sys.modules``, where
    dataclasses look their module up while a class is made)."""
    path = ROOT / relative
    name = "script_" + "_".join(Path(relative).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
