"""deploy/: example configs load with the daemon's loader, the systemd unit verifies, install.sh and the
container files are consistent with the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge.device.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "stainless-edge.service"


@pytest.mark.parametrize("path", sorted((DEPLOY / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.daemon.id and (cfg.model.bundle or cfg.model.onnx)


def test_the_rig_config_is_a_real_rig() -> None:
    cfg = load_config(DEPLOY / "configs" / "device.toml")
    assert cfg.led.url == "/dev/stainless-led" and cfg.camera.url.startswith("opencv://")
    assert cfg.calibration.path.startswith("/etc/stainless/") and cfg.spool.path.startswith("/var/lib/stainless/")
    assert cfg.metrics.enabled and cfg.control.endpoint.startswith("tcp://127.0.0.1:")


def _unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_unit_is_notify_with_watchdog_and_hardening() -> None:
    s = _unit_settings()
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"] and int(s["WatchdogSec"][0]) >= 2
    assert s["User"] == ["stainless"] and s["NoNewPrivileges"] == ["true"] and s["ProtectSystem"] == ["strict"]
    assert s["PrivateTmp"] == ["true"] and s["DevicePolicy"] == ["closed"]
    assert {"/dev/stainless-led rw", "char-video4linux rw"} <= set(s["DeviceAllow"])
    assert "/var/lib/stainless" in s["ReadWritePaths"][0].split()
    assert s["ExecStart"][0].split()[1:] == ["run", "--config", "/etc/stainless/device.toml"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify``, with ExecStart pointed at this checkout's stainless-edge (it must exist)."""
    exe = Path(sys.executable).parent / "stainless-edge"
    unit = tmp_path / "stainless-edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/stainless/venv/bin/stainless-edge", str(exe)))
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def test_install_script_dry_run(tmp_path: Path) -> None:
    script = DEPLOY / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    res = subprocess.run(["bash", str(script), "--dry-run", "--prefix", str(tmp_path / "opt"), "--python",
                          sys.executable, "--extras", "edge,metrics"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    steps = [line[2:] for line in res.stdout.splitlines() if line.startswith("+ ")]
    assert f"{sys.executable} -m venv {tmp_path / 'opt'}/venv" in steps
    assert f"{tmp_path / 'opt'}/venv/bin/pip install --quiet {tmp_path / 'opt'}/src[edge,metrics]" in steps
    assert any(s.endswith("/etc/systemd/system/stainless-edge.service") for s in steps)
    assert "systemctl enable stainless-edge.service" in steps and not (tmp_path / "opt").exists()
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr


@pytest.mark.parametrize("path", sorted((DEPLOY / "containers").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_container_files_copy_what_exists_and_install_known_extras(path: Path) -> None:
    text = path.read_text()
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    copies = re.findall(r"^COPY (?:--chown=\S+ )?(\S+) ", text, re.M)
    assert copies and all((ROOT / c).exists() for c in copies), copies
    installs = re.findall(r'pip install "\.\[([a-z,]+)\]"', text)
    assert installs and all(set(i.split(",")) <= extras for i in installs), installs
    assert "edge" in installs[0].split(",") and re.search(r"^USER stainless$", text, re.M)
    assert 'CMD ["run", "--config", "/etc/stainless/device.toml"]' in text
