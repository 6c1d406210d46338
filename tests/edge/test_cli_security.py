"""``stainless-edge keys`` and the CLI against a CURVE daemon on the virtual bench (the whole wiring)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.cli import main
from edge.client import ControlClient, load_client_keys
from edge.device.config import EdgeConfig
from edge.device.errors import ControlError
from edge.device.opsconfig import SecurityConfig

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")  # `run` installs SIGINT/SIGTERM handlers


def test_keys_status_and_watch_against_a_curve_daemon(tiny_config: EdgeConfig, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    for out, name in (("server", "server"), ("clients", "operator"), ("clients", "viewer")):
        assert main(["keys", "--out", str(keys / out), "--name", name, "--json"]) == 0
        made = json.loads(capsys.readouterr().out)
        assert Path(made["secret_key_file"]).name == f"{name}.key_secret" and len(made["public_key"]) == 40
    assert main(["keys", "--out", str(keys / "clients"), "--name", "viewer"]) == 2
    assert "exists" in capsys.readouterr().err
    security = SecurityConfig(str(keys / "server/server.key_secret"), (str(keys / "clients"),),
                              {"scan": ("operator",)})
    pipe = build_bench_pipeline(tiny_config.replace(security=security)).start()
    viewer = ["--client-key", str(keys / "clients/viewer.key_secret"), "--server-key", str(keys / "server/server.key")]
    try:
        assert main(["status", "--endpoint", pipe.control.endpoint, "--json", *viewer]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["state"] == "idle" and status["security"] == {"curve": True, "refused": 0}
        assert main(["status", "--endpoint", pipe.control.endpoint, "--timeout", "0.3"]) == 2  # plain text
        assert "no reply" in capsys.readouterr().err
        assert main(["status", "--endpoint", pipe.control.endpoint, viewer[0], viewer[1]]) == 2
        assert "go together" in capsys.readouterr().err
        server_key = keys / "server/server.key"
        with (ControlClient(pipe.control.endpoint, timeout=5.0,
                            curve=load_client_keys(keys / "clients/viewer.key_secret", server_key)) as ctl,
              pytest.raises(ControlError, match="start_scan: client 'viewer' lacks the right 'scan'")):
            ctl.call("start_scan", fields=[{"field_id": 0, "stage_um": [0, 0]}])
        with ControlClient(pipe.control.endpoint, timeout=5.0,
                           curve=load_client_keys(keys / "clients/operator.key_secret", server_key)) as ctl:
            ctl.call("start_scan", fields=[{"field_id": i, "stage_um": [0, 0]} for i in range(6)])
        assert main(["watch", "--out", str(tmp_path / "w"), "--endpoint", pipe.publisher.endpoint, "--count", "1",
                     "--json", *viewer]) == 0
        assert json.loads(capsys.readouterr().out)["cells"] >= 1
    finally:
        pipe.shutdown()
