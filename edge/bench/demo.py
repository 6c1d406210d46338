"""``python -m edge.bench.demo`` (``make demo``): the whole chain on the virtual bench, in one command.

1. start the daemon, ``stainless-edge run --config deploy/configs/sim.toml --model M --fields 0``,
   as a subprocess (thesis-43 emulator on a real pty, simulated camera, ONNX Runtime CPU);
2. wait until its control channel answers ``status``;
3. start ``stainless-edge watch --fields N --json`` beside it, and wait until the daemon's
   ``status`` counts the watcher's four subscriptions (cell, field, status, event);
4. ``start_scan`` N fields; the watcher writes ``OUT/gallery.png`` and exits after N field summaries;
5. ask the daemon's ``status`` for the per-stage latencies, send ``stop``, then SIGTERM, and wait;
6. print a summary: cells found vs present, per-stage latency p50/p99, SSIM of stain vs truth.

Whatever happens, both subprocesses are stopped and reaped before this returns (SIGTERM, then
SIGKILL after a grace period). Nothing sleeps to synchronise: every wait is a control-channel
request or a process wait with a timeout. Logs go to ``OUT/daemon.log`` and ``OUT/watch.log``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.config import ConfigError
from edge.client import ControlClient
from edge.device.config import load_config
from edge.device.errors import ControlError, EdgeError

log = logging.getLogger("edge.bench.demo")  # also when run as __main__

#: daemon stages shown in the summary (``status.latency_ms`` keys), in dataflow order
STAGES = ("capture_ms", "process_ms", "truth_ms", "queue_ms", "inference_ms", "end_to_sent_ms")
_GRACE_S = 15.0


class DemoError(EdgeError):
    """The demo could not run to the end (the message says which step and where the logs are)."""


@dataclass(frozen=True)
class DemoOptions:
    config: Path = Path("deploy/configs/sim.toml")
    model: Path = Path("models/default.stainless")
    fields: int = 8
    out: Path = Path("out/demo")
    keep: int = 32  # cells in the gallery
    timeout_s: float = 600.0


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run the demo (steps 1–6 above); returns the summary. Raises :class:`DemoError`."""
    if not opts.model.exists():
        raise DemoError(f"model {opts.model} not found; the default bundle ships in models/ (issue 8), "
                        "or pass --model PATH (.stainless bundle or .onnx)")
    cfg = load_config(opts.config)
    pub, ctl_ep = cfg.publisher.endpoint, cfg.control.endpoint
    if "*" in pub or "*" in ctl_ep:
        raise DemoError(f"{opts.config}: the demo needs fixed [publisher]/[control] endpoints, found {pub}, {ctl_ep}")
    opts.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + opts.timeout_s
    t0 = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    try:
        log.info("starting the daemon (%s, model %s); log: %s", opts.config, opts.model, opts.out / "daemon.log")
        daemon = _spawn(["run", "--config", str(opts.config), "--model", str(opts.model), "--fields", "0"],
                        opts.out / "daemon.log", procs, logs)
        with ControlClient(ctl_ep, timeout=1.0) as ctl:
            _wait_ready(ctl, daemon, deadline, opts.out / "daemon.log")
            watch = _spawn(["watch", "--out", str(opts.out), "--endpoint", pub, "--fields", str(opts.fields),
                            "--keep", str(opts.keep), "--json"], opts.out / "watch.log", procs, logs,
                           stdout=opts.out / "watch.json")
            _wait_subscribed(ctl, daemon, watch, deadline)
            pitch = _field_pitch_um(cfg.led.url, cfg.virtual_bench.field_size_px[0])
            log.info("scanning %d field(s)", opts.fields)
            ctl.call("start_scan", fields=[{"field_id": i, "stage_um": [i * pitch, 0.0]} for i in range(opts.fields)])
            _wait_watch(watch, daemon, deadline, opts.out)
            status = ctl.call("status", timeout=5.0)
            ctl.call("stop", timeout=5.0)
        _stop_daemon(daemon, opts.out / "daemon.log")
        report = json.loads((opts.out / "watch.json").read_text())
        if report.get("fields") != opts.fields:
            raise DemoError(f"the watcher stopped after {report.get('fields')} of {opts.fields} field(s) "
                            "(interrupted?)")
        return _summary(report, status, opts, time.monotonic() - t0)
    except ControlError as exc:
        raise DemoError(f"control channel {ctl_ep}: {exc}; see {opts.out / 'daemon.log'}") from exc
    finally:
        for p in reversed(procs):
            _terminate(p)
        for f in logs:
            f.close()


def _spawn(args: list[str], log_path: Path, procs: list[subprocess.Popen[bytes]], logs: list[IO[bytes]],
           stdout: Path | None = None) -> subprocess.Popen[bytes]:
    # the files are closed by run_demo's finally, after the processes are reaped
    err = open(log_path, "wb")  # noqa: SIM115
    logs.append(err)
    out = open(stdout, "wb") if stdout else None  # noqa: SIM115
    if out is not None:
        logs.append(out)
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", *args], stdout=out or subprocess.DEVNULL,
                            stderr=err, stdin=subprocess.DEVNULL)
    procs.append(proc)
    return proc


def _left(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DemoError(f"timed out waiting for {what}")
    return left


def _wait_ready(ctl: ControlClient, daemon: subprocess.Popen[bytes], deadline: float, log_path: Path) -> None:
    """Ask ``status`` until the daemon answers (each request waits up to 1 s for the reply)."""
    while True:
        if daemon.poll() is not None:
            raise DemoError(f"the daemon exited with code {daemon.returncode} during start-up:\n{_tail(log_path)}")
        _left(deadline, "the daemon to start")
        try:
            ctl.call("status")
            return
        except ControlError as exc:
            if exc.code != "timeout":
                raise


def _wait_subscribed(ctl: ControlClient, daemon: subprocess.Popen[bytes], watch: subprocess.Popen[bytes],
                     deadline: float) -> None:
    """Until the daemon counts the watcher's 4 subscriptions; between requests, wait on the watcher."""
    while ctl.call("status")["publisher"]["subscriptions"] < 4:
        try:
            watch.wait(timeout=min(0.05, _left(deadline, "the watcher to subscribe")))
        except subprocess.TimeoutExpired:
            continue
        raise DemoError(f"the watcher exited with code {watch.returncode} before subscribing")
    if daemon.poll() is not None:
        raise DemoError(f"the daemon exited with code {daemon.returncode}")


def _wait_watch(watch: subprocess.Popen[bytes], daemon: subprocess.Popen[bytes], deadline: float, out: Path) -> None:
    while True:
        try:
            rc = watch.wait(timeout=min(1.0, _left(deadline, "the scan to finish")))
        except subprocess.TimeoutExpired:
            if daemon.poll() is not None:
                raise DemoError(f"the daemon exited with code {daemon.returncode} during the scan:\n"
                                f"{_tail(out / 'daemon.log')}") from None
            continue
        if rc != 0:
            raise DemoError(f"the watcher exited with code {rc}:\n{_tail(out / 'watch.log')}")
        return


def _stop_daemon(daemon: subprocess.Popen[bytes], log_path: Path) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        rc = daemon.wait(timeout=60.0)
    except subprocess.TimeoutExpired:
        raise DemoError(f"the daemon did not stop within 60 s of SIGTERM; see {log_path}") from None
    if rc != 0:
        raise DemoError(f"the daemon exited with code {rc}:\n{_tail(log_path)}")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", proc.pid, _GRACE_S)
        proc.kill()
        proc.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _field_pitch_um(led_url: str, width_px: int) -> float:
    """Field width on the stage (µm) of the virtual bench: camera pixel / magnification × width."""
    from firmware_bridge.rigs import get_profile
    from sim.camera import SensorConfig

    profile = led_url.removeprefix("sim://").split("?")[0] or "thesis-43"
    return width_px * SensorConfig().pixel_um / get_profile(profile).objective_magnification


def _summary(report: dict[str, Any], status: dict[str, Any], opts: DemoOptions, wall_s: float) -> dict[str, Any]:
    lat = status.get("latency_ms", {})
    model = status.get("model", {})
    keys = ("cells", "cells_found", "cells_suspect", "cells_present", "cells_present_found", "ssim_stain_vs_truth",
            "gaps")
    return {
        "fields": report.get("fields"),
        "model": f"{model.get('name')} {model.get('version')} on {model.get('backend')}",
        **{k: report[k] for k in keys if k in report},
        "latency_ms": {k.removesuffix("_ms"): {"p50": lat[k]["p50"], "p99": lat[k]["p99"]} for k in STAGES if k in lat}
        | {"end_to_received": {"p50": report.get("latency_p50_ms"), "p99": report.get("latency_p99_ms")}},
        "gallery": report.get("gallery"), "wall_s": round(wall_s, 1),
    }


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"stainless demo: {s['fields']} field(s) scanned with {s['model']} in {s['wall_s']} s",
             f"  white cells found {s.get('cells_found')} (published {s.get('cells')})"
             + (f", present {s['cells_present']}, of which found {s.get('cells_present_found')}"
                if "cells_present" in s else ""),
             f"  flagged suspect by the fidelity check (red frames): {s.get('cells_suspect')}"]
    sv = s.get("ssim_stain_vs_truth")
    if sv:
        per = ", ".join(f"{t} {v['mean']:.3f} (n={v['n']})" for t, v in sv["by_type"].items())
        lines.append(f"  SSIM virtual stain vs true stain (grey): mean {sv['mean']:.3f} (n={sv['n']}); {per}")
    lines.append(f"  {'latency (ms)':34s}{'p50':>9}{'p99':>9}")
    for k, v in s["latency_ms"].items():
        lines.append(f"    {_STAGE_NAMES.get(k, k):32s}{_ms(v['p50'])}{_ms(v['p99'])}")
    lines.append(f"  gallery: {s['gallery']}")
    return "\n".join(lines)


_STAGE_NAMES = {"capture": "capture (per field)", "process": "QC, detect, crop (per field)",
                "truth": "render truth (virtual bench only)", "queue": "batch queue (per cell)",
                "inference": "inference (per batch)", "end_to_sent": "capture end -> sent (per cell)",
                "end_to_received": "capture end -> received (per cell)"}


def _ms(v: Any) -> str:
    return f"{v:9.1f}" if isinstance(v, int | float) else f"{'-':>9}"


def main(argv: list[str] | None = None) -> int:
    d = DemoOptions()
    ap = argparse.ArgumentParser(prog="python -m edge.bench.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=d.config, help="daemon config (fixed endpoints)")
    ap.add_argument("--model", type=Path, default=d.model, help="a .stainless bundle or an .onnx")
    ap.add_argument("--fields", type=int, default=d.fields)
    ap.add_argument("--out", type=Path, default=d.out)
    ap.add_argument("--keep", type=int, default=d.keep, help="cells shown in the gallery")
    ap.add_argument("--timeout", type=float, default=d.timeout_s, help="give up after this many seconds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # run the clean-up in finally
    try:
        summary = run_demo(DemoOptions(args.config, args.model, args.fields, args.out, args.keep, args.timeout))
    except (EdgeError, ConfigError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the daemon and the watcher got SIGINT too; run_demo reaped them
        print("demo interrupted", file=sys.stderr)
        return 130
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
