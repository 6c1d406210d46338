"""``stainless-edge flash`` / ``rollback`` / ``models`` against a running daemon on the virtual bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.cli import main
from edge.device.opsconfig import SecurityConfig
from tests.edge.flash_support import Bench, installed_bench, tampered


def test_flash_rollback_and_models_from_the_command_line(tiny_model: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bench: Bench = installed_bench(tmp_path, tiny_model)
    pipe = build_bench_pipeline(bench.config(health_cells=0)).start()
    ep = ["--endpoint", pipe.control.endpoint]
    try:
        assert main(["flash", str(bench.bundle("1.1.0")), *ep]) == 0  # the bundle's bytes in the request
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "verifying" and out[-1] == "committed"
        assert main(["models", *ep, "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        assert listing["current"] == "tiny-1.1.0" and listing["running"]["version"] == "1.1.0"
        assert main(["models", *ep]) == 0
        assert "* tiny-1.1.0" in capsys.readouterr().out
        assert main(["flash", str(tampered(bench)), "--on-device", *ep, "--json"]) == 1
        final = json.loads(capsys.readouterr().out)
        assert final["state"] == "refused: hash_mismatch" and final["error"]["code"] == "hash_mismatch"
        assert main(["flash", str(bench.bundle("1.0.1")), *ep]) == 1
        assert "downgrade:" in capsys.readouterr().out
        assert main(["flash", str(bench.bundle("1.0.1")), "--force", *ep, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "committed"
        assert main(["rollback", *ep, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "rolled back: requested, now tiny-1.1.0"
        assert main(["flash", str(bench.tmp / "missing.stainless"), *ep]) == 2
        assert "cannot read bundle" in capsys.readouterr().err
    finally:
        pipe.shutdown()


def test_flash_needs_the_model_right_on_a_curve_daemon(tiny_model: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bench = installed_bench(tmp_path, tiny_model)
    keys = tmp_path / "keys"
    for out, name in (("server", "server"), ("clients", "engineer"), ("clients", "viewer")):
        assert main(["keys", "--out", str(keys / out), "--name", name, "--json"]) == 0
    capsys.readouterr()
    security = SecurityConfig(str(keys / "server/server.key_secret"), (str(keys / "clients"),),
                              {"model": ("engineer",)})
    pipe = build_bench_pipeline(bench.config(health_cells=0).replace(security=security)).start()

    def as_client(name: str) -> list[str]:
        return ["--endpoint", pipe.control.endpoint, "--client-key", str(keys / f"clients/{name}.key_secret"),
                "--server-key", str(keys / "server/server.key")]
    try:
        assert main(["flash", str(bench.bundle("1.1.0")), "--on-device", *as_client("viewer")]) == 2
        assert "flash: client 'viewer' lacks the right 'model'" in capsys.readouterr().err
        assert main(["models", "--json", *as_client("viewer")]) == 0  # `read`: every listed client
        assert json.loads(capsys.readouterr().out)["current"] == "tiny-1.0.0"
        assert main(["flash", str(bench.bundle("1.1.0")), "--on-device", "--json", *as_client("engineer")]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "committed"
    finally:
        pipe.shutdown()
