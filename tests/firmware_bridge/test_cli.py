"""The stainless-led CLI: selftest and plan in-process, emulate as a real subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from firmware_bridge.cli import main


@pytest.fixture
def emulate_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-m", "firmware_bridge.cli", "emulate", "--profile", "thesis-43",
                             "--pty"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_emulate_then_selftest_json(emulate_process: tuple[subprocess.Popen[str], str],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    proc, url = emulate_process
    assert url.startswith("/dev/")
    assert main(["selftest", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["led_count"] == 43 and report["interface_version"] == "2.32"
    assert set(report["latency_ms"]) >= {"p50", "p99"}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_selftest_sci_round(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest", "sim://sci-round-257"]) == 0
    out = capsys.readouterr().out
    assert "selftest passed" in out and "257 LEDs" in out


def test_selftest_json_passes_on_the_v232_parser_with_a_hardware_paced_sequence(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The emulator's default is the v2.32 parser: rseq takes delay.count, triggers are configured first."""
    assert main(["selftest", "sim://sci-round-257", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True and report["firmware_version"] == "2.32" and all(c["ok"] for c in checks.values())
    assert checks["sequence"]["detail"] == ("rseq showed 8/8 patterns (v2 dialect), 8 trigger pulses of 1000 µs")
    assert "ERROR[16]" in checks["error_recovery"]["detail"]


def test_selftest_reports_a_missing_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest", "/dev/does-not-exist", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and "cannot open" in report["checks"][0]["detail"]


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "sim://thesis-43", "--recipe", "full-nohe", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["commands"]) == len(out["channels"]) == 44 and out["commands"][1] == "l.0"


def test_plan_sequence_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "sim://thesis-43", "--recipe", "le8", "--sequence", "--delay-ms", "10"]) == 0
    assert capsys.readouterr().out.split() == ["ssl.4", "ssv.13.0.1.2.3.4.11.12.19.20.27.28.35.36",
                                               "ssv.1.0", "ssv.1.1", "ssv.1.2", "troutputmode.0.1",
                                               "troutputmode.1.0", "trinputmode.0.0", "trinputmode.1.0", "rseq.10.1"]


def test_bad_recipe_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "sim://thesis-43", "--recipe", "nope"]) == 2
    assert "valid recipes" in capsys.readouterr().err


def test_console_runs_commands_from_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import io

    monkeypatch.setattr("firmware_bridge.cli.HISTORY", tmp_path / "history")
    monkeypatch.setattr(sys, "stdin", io.StringIO("l.5\nl.99\nsb\n:quit\n"))
    assert main(["console", "sim://thesis-43"]) == 0
    out = capsys.readouterr().out
    assert "valid 0..42" in out and "SB.255" in out
