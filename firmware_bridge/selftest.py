"""Self-test of an LED array (real or emulated): the checks behind ``stainless-led selftest``.

Connect, identify, read and check the geometry, light every LED once (measuring the ``l.<i>``
round trip), refuse an out-of-range index before it reaches the wire, run a short firmware
sequence with trigger output configured the v2 way (pulse width and output mode set before
``rseq.<delay>.<count>``), provoke an ``ERROR[n]`` and recover from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.measures import percentile
from firmware_bridge.client import IlluminateLedArray, open_led_array
from firmware_bridge.commands import parse_na_positions
from firmware_bridge.errors import ArgumentRangeError, BridgeError, FirmwareError
from firmware_bridge.link import LinkConfig

log = logging.getLogger(__name__)

#: Largest |NA| difference between ``pledposna`` (3 decimals) and the geometry we accept.
NA_TOLERANCE = 0.0015


def _check_geometry(arr: IlluminateLedArray) -> str:
    g = arr.geometry()
    n = arr.props.led_count
    if len(g.leds) != n:
        raise BridgeError(f"geometry has {len(g.leds)} LEDs, pprops says {n}")
    nas = parse_na_positions(arr.send_line("pledposna").text, n)
    worst = max(max(abs(led.na_x - nx), abs(led.na_y - ny)) for led, (nx, ny) in zip(g.leds, nas, strict=True))
    if worst > NA_TOLERANCE:
        raise BridgeError(f"pledposna differs from pledpos geometry by up to {worst:.4f} NA (> {NA_TOLERANCE})")
    return (f"{g.name}: {n} LEDs, {len(g.brightfield_indices)} brightfield at objective NA {g.objective_na}, "
            f"NA table agrees to {worst:.4f}")


def _light_each(arr: IlluminateLedArray, latencies: list[float]) -> str:
    n = arr.props.led_count
    for i in range(n):
        t0 = time.perf_counter()
        arr.light([i])
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if arr.emulator is not None and arr.emulator.lit() != (i,):
            raise BridgeError(f"after l.{i} the emulator shows {arr.emulator.lit()}")
    arr.clear()
    return f"lit {n} LEDs one at a time"


def _refuse_out_of_range(arr: IlluminateLedArray) -> str:
    n = arr.props.led_count
    seen = len(arr.emulator.commands_seen) if arr.emulator is not None else None
    try:
        arr.light([n])
    except ArgumentRangeError as exc:
        if arr.emulator is not None and len(arr.emulator.commands_seen) != seen:
            raise BridgeError("l.<out of range> reached the device") from exc
        return f"l.{n} refused before sending: {exc}"
    raise BridgeError(f"l.{n} was not refused")


#: Trigger pulse the self-test configures before its sequence (µs).
PULSE_WIDTH_US = 1000


def _sequence(arr: IlluminateLedArray) -> str:
    k = min(8, arr.props.led_count)
    arr.load_sequence([[i] for i in range(k)])
    emu = arr.emulator
    before = list(emu.trigger_pulses) if emu is not None else None
    if arr.props.trigger_output_count:
        arr.set_trigger_pulse_width(PULSE_WIDTH_US)
    shown = arr.run_sequence(5, 1, trigger_output=(1,) if arr.props.trigger_output_count else ())
    detail = f"rseq showed {len(shown)}/{k} patterns ({arr.commands.dialect} dialect)"
    if emu is not None and before is not None and arr.props.trigger_output_count:
        pulses = emu.trigger_pulses[0] - before[0]
        if pulses != k or emu.trigger_pulse_width_us[0] != PULSE_WIDTH_US:
            raise BridgeError(f"expected {k} trigger pulses of {PULSE_WIDTH_US} µs on output 0, emulator counted "
                              f"{pulses} of {emu.trigger_pulse_width_us[0]} µs")
        detail += f", {pulses} trigger pulses of {PULSE_WIDTH_US} µs"
    return detail


def _error_recovery(arr: IlluminateLedArray) -> str:
    try:
        arr.send_line("selftestbogus", validate=False)
    except FirmwareError as exc:
        version = arr.send_line("version").text.strip()
        return f"unknown command gave ERROR[{exc.code}]; link still answers (version {version})"
    raise BridgeError("an unknown command was accepted; expected ERROR[n]")


def run_selftest(url: str, *, config: LinkConfig | None = None) -> dict[str, Any]:
    """Run every check against ``url``; returns a JSON-ready report with ``ok``."""
    t_start = time.perf_counter()
    report: dict[str, Any] = {"ok": False, "url": url, "checks": []}
    latencies: list[float] = []
    try:
        arr = open_led_array(url, config=config)
    except (BridgeError, ValueError) as exc:
        report["checks"].append({"name": "connect", "ok": False, "detail": str(exc)})
        return report
    with arr:
        info = arr.identify()
        report.update(device_name=info.props.device_name, led_count=info.props.led_count,
                      interface_version=info.props.interface_version, firmware_version=info.firmware_version,
                      serial_number=info.props.serial_number)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("geometry", lambda: _check_geometry(arr)),
            ("light_each", lambda: _light_each(arr, latencies)),
            ("refuse_out_of_range", lambda: _refuse_out_of_range(arr)),
            ("sequence", lambda: _sequence(arr)),
            ("error_recovery", lambda: _error_recovery(arr)),
        ]
        report["checks"].append({"name": "connect", "ok": True, "detail": f"{info.props.device_name} on {arr.url}"})
        for name, step in steps:
            try:
                report["checks"].append({"name": name, "ok": True, "detail": step()})
            except BridgeError as exc:
                log.error("selftest %s failed: %s", name, exc)
                report["checks"].append({"name": name, "ok": False, "detail": str(exc)})
    if latencies:
        report["latency_ms"] = {"p50": round(percentile(latencies, 50), 4), "p99": round(percentile(latencies, 99), 4),
                                "n": len(latencies)}
    report["ok"] = all(c["ok"] for c in report["checks"])
    report["duration_s"] = round(time.perf_counter() - t_start, 3)
    return report
