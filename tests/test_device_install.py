"""The device install (`pip install .[edge]`) runs without the lab: no torch, simulator, scipy, ...

The fast test imports the device modules in a fresh interpreter in which the lab's packages cannot be
imported at all (a meta-path finder refuses them), so a new import of one anywhere below fails here. The
`slow` test builds a real fresh venv with `.[edge]` and imports the same modules there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What a device install may not import: the simulator, the host side and their heavy dependencies.
FORBIDDEN = ("sim", "trainer", "export", "torch", "scipy", "skimage", "zarr")

#: The device modules: the daemon and its command line, the client library, model bundles.
DEVICE_MODULES = ("edge.device.app", "edge.device.build", "edge.cli", "edge.client", "edge.device.bundle",
                  "edge.device.cameras.replay", "edge.device.backends.select", "edge.device.calibration",
                  "edge.device.service")

_PROBE = f"""
import importlib, sys
FORBIDDEN = {FORBIDDEN!r}

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"the device install imported {{name!r}}")
        return None

sys.meta_path.insert(0, Refuse())
for name in {DEVICE_MODULES!r}:
    importlib.import_module(name)
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(FORBIDDEN))
assert not loaded, loaded
print("ok")
"""


def _probe(python: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", _PROBE], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_device_modules_import_without_the_lab() -> None:
    res = _probe(sys.executable, ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_the_probe_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The refusing finder is real: importing scipy through it fails."""
    res = subprocess.run([sys.executable, "-c", _PROBE.replace("for name in", "import scipy\nfor name in", 1)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "the device install imported 'scipy'" in res.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_fresh_edge_venv_imports_the_device_modules(tmp_path: Path) -> None:
    """`pip install .[edge]` into an empty venv: the lab's packages are absent and the device modules import."""
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "out", "build", "*.egg-info", "__pycache__",
                                                            "tests", "docs", "models"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", f"{src}[edge]"], check=True, timeout=1100)
    absent = subprocess.run([python, "-c", f"import importlib.util as u; print([n for n in {FORBIDDEN!r} "
                                           "if n not in ('sim', 'trainer', 'export') and u.find_spec(n)])"],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert absent.stdout.strip() == "[]", f"the edge install pulled in {absent.stdout}"
    res = _probe(python, tmp_path)  # from tmp_path: the installed package, not the checkout
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
