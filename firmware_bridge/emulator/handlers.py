"""Illumination, settings and query commands of the illuminate emulator: ``(state, args, pacer) -> payload``.

Formats follow the firmware source (``ledarray.cpp``): machine-mode echoes ``NA.40``, ``SB.128``,
``CO.r.g.b``, ``DZ.50``, ``AC.1``; JSON for ``pprops``/``pledpos``/``pledposna``. The dialect tables
that name these functions are in :mod:`firmware_bridge.emulator.dialects`.
"""

from __future__ import annotations

from typing import Any

from firmware_bridge.emulator.parsing import Fail, Pacer, check, indices, sint, uint
from firmware_bridge.emulator.state import (
    EmulatorState,
    banner,
    draw,
    mac_address,
    na_table,
    power_on,
    say,
    value_ceil,
    value_trunc,
)

_COLOR_NAMES = {"max": 255, "half": 127, "quarter": 63}


def leds_within(s: EmulatorState, lo: float, hi: float) -> list[int]:
    """Indices of the LEDs whose NA is in ``[lo, hi]`` (how ``bf``, ``df``, ``an`` and scans pick them)."""
    return [i for i, (_, _, d) in enumerate(s.na_table) if lo <= d <= hi]


# -- illumination ----------------------------------------------------------------------------
def light(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """``l.<i>[.<j>…]``: light these LEDs (after clearing, with autoclear)."""
    check(s, bool(args), 2)
    draw(s, indices(s, args), clear=s.autoclear)
    return ""


def clear(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    draw(s, [])
    return ""


def fill(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    draw(s, range(s.led_count))
    return ""


def brightfield(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    draw(s, leds_within(s, 0.0, s.na))
    return ""


def darkfield(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    draw(s, leds_within(s, s.na, 1.0))
    return ""


def annulus(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """``an[.<lo×100>.<hi×100>]``: the LEDs between two NAs (default: NA to NA + 0.2)."""
    check(s, len(args) in (0, 2), 2)
    if len(args) == 2:
        lo, hi = uint(s, args[0]), uint(s, args[1])
        check(s, lo < hi <= 100)
        draw(s, leds_within(s, lo / 100, hi / 100))
    else:
        draw(s, leds_within(s, s.na, min(s.na + 0.2, 1.0)))
    return ""


# -- settings --------------------------------------------------------------------------------
def set_brightness(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    if args:
        named = {"min": 1, **_COLOR_NAMES}
        v = named[args[0]] if args[0] in named else uint(s, args[0])
        check(s, v <= 255)
        s.brightness_setting = v & 0xFF
    s.value = value_ceil(s.color, s.brightness_setting)
    b = s.brightness_setting
    return say(s, f"SB.{b}", f"Current brightness value is {b}.")


def set_color(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    n = len(s.channels)
    if n == 1:
        check(s, False, 9)
        return "ERROR (LedArray::setColor): Current device does not support color illumination \n"
    if len(args) not in (0, 1, n):
        check(s, False, 2)
        return "ERROR (LedArray::setColor): Invalid color value \n"
    if len(args) == 1:
        v = _COLOR_NAMES.get(args[0])
        vals = [v if v is not None else sint(s, args[0])] * n
    else:
        vals = [sint(s, a) for a in args] or s.color
    check(s, all(0 <= v <= 255 for v in vals))
    s.color = [v & 0xFF for v in vals]
    s.value = value_trunc(s.color, s.brightness_setting)
    c = ".".join(str(v) for v in s.color)
    return say(s, f"CO.{c}", f"Current color value is {c}")


def set_na(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """``na.<NA×100>``; a single digit is tenths (``na.4`` = 0.40); 0 < NA <= 1 or ERROR[10]."""
    if len(args) > 1:
        raise Fail(2)
    if args:
        v = sint(s, args[0]) / 100
        if len(args[0]) == 1:
            v *= 10
        if not 0 < v <= 1.0:
            raise Fail(10)
        s.na = v
    n = round(s.na * 100) & 0xFF
    return say(s, f"NA.{n:02d}", f"Current NA is {s.na:.2f}")


def set_distance(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """``sad.<mm>``: the array's distance below the sample; the NA table follows."""
    if args:
        v = uint(s, args[0])
        check(s, 1 <= v <= 255)
        if v > 0:
            s.distance_mm = float(v)
            s.na_table = na_table(s.geometry, s.distance_mm)
    d = round(s.distance_mm) & 0xFF
    return say(s, f"DZ.{d}", f"Current array distance from sample is {d}mm.")


def set_autoclear(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    if args:  # without an argument it only reports
        v = sint(s, args[0])
        check(s, v in (0, 1))
        s.autoclear = bool(v)
    return say(s, f"AC.{int(s.autoclear)}", f"Auto clear bit is now {int(s.autoclear)}")


def machine_mode(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    s.machine = True
    return "Command output set to machine-readable\n"


def human_mode(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    s.machine = False
    return "Command output set to human-readable\n"


def set_max_current(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """``smc.<amps>``: the current limit (whole amperes; the firmware splits arguments at ``.``)."""
    if len(args) != 1:
        raise Fail(2)
    s.max_current_a = float(uint(s, args[0]))
    return ""


def enforce_max_current(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    if len(args) != 1:
        raise Fail(2)
    s.enforce_max_current = uint(s, args[0]) != 0
    return ""


def reset(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    power_on(s)
    return banner(s).decode()


# -- queries ---------------------------------------------------------------------------------
def version(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return f"{s.version}\n"


def about(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return banner(s).decode()


def print_props(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    chans = ", ".join(f'"{c}"' for c in s.channels)
    waves = ", ".join(f'"{c}" : {w:.3f}' for c, w in s.geometry.wavelengths_nm.items())
    fields: list[tuple[str, Any]] = [
        ("device_name", f'"{s.geometry.name}"'), ("led_count", s.led_count),
        ("color_channels", f"[{chans}]"), ("color_channel_center_wavelengths", f"{{{waves}}}"),
        ("trigger_input_count", s.trigger_input_count),
        ("trigger_output_count", s.trigger_output_count), ("bit_depth", 8),
        ("serial_number", s.serial_number), ("color_channel_count", len(s.channels)),
        ("part_number", s.serial_number), ("mac_address", f'"{mac_address(s)}"'),
        ("interface_version", s.interface_version),
    ]
    return "{\n" + ",\n".join(f'    "{k}" : {v}' for k, v in fields) + "\n}"


def _json_table(key: str, rows: list[str]) -> str:
    body = ",\n".join(f'        "{i}" : [{r}]' for i, r in enumerate(rows))
    return f'{{\n    "{key}" : {{\n{body}\n    }}\n}}'


def print_led_positions(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    z0 = s.geometry.leds[0].z_mm
    rows = [f"{led.x_mm:.2f}, {led.y_mm:.2f}, {led.z_mm - z0 + s.distance_mm:.2f}" for led in s.geometry.leds]
    return _json_table("led_position_list_cartesian", rows)


def print_led_positions_na(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return _json_table("led_position_list_na", [f"{nx:.3f}, {ny:.3f}" for nx, ny, _ in s.na_table])
