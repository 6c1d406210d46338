"""Commands of the illuminate dialect, validated against the device before anything is sent.

The firmware performs no range checks (``l.99999`` wraps to a negative ``int16`` and lights every
LED; ``l.300`` on a 257-LED board reads past its position table; ``sb.300`` is cast to ``uint8`` and
becomes 44), so every argument is checked here, with the valid range in the message. The payload
parsers for ``pprops``, ``pledpos``, ``pledposna``, value echoes and index reports live here too.
All functions are pure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.codec import DELIMITER, encode_command
from firmware_bridge.errors import ArgumentRangeError, ProtocolError

#: Interface versions (``pprops`` ``interface_version``, major part) this bridge speaks.
SUPPORTED_INTERFACE_MAJOR = (2,)
#: ``MIN_SEQUENCE_DELAY`` / ``MAX_SEQUENCE_DELAY`` of the firmware: pattern period of ``rseq`` (ms);
#: 0 also runs (as fast as the array updates).
MIN_SEQUENCE_DELAY_MS = 5
MAX_SEQUENCE_DELAY_MS = 2000
MAX_UINT16 = 65535
#: Longest sequence the bridge uploads (patterns); the firmware allocates it on its heap.
MAX_SEQUENCE_LENGTH = 2048
#: Trigger modes: >0 = pulse every n-th pattern, -1 = once per repeat, -2 = once at the start.
TRIG_MODE_ITERATION = -1
TRIG_MODE_START = -2

#: How ``rseq`` takes its trigger modes, by the oldest firmware version (``version``) that speaks it,
#: newest first. ``"v2"`` (illuminate v2.x, observed on v2.32): trigger channels are configured
#: beforehand (``troutputmode``/``trinputmode``) and ``rseq`` takes at most ``delay.count``. ``"v1"``:
#: the older firmware source parses the modes as ``rseq`` arguments (``rseq.delay.count.out0.in0...``)
#: and reports ``seq_start:…:seq_end``. The 2.0 cut-over is read from the source, not seen on a device.
SEQUENCE_DIALECTS: tuple[tuple[tuple[int, ...], str], ...] = (((2, 0), "v2"), ((0,), "v1"))


def sequence_dialect(version: str) -> str:
    """The ``rseq`` dialect of firmware ``version`` (``"2.32"`` → ``"v2"``); unreadable versions get v2."""
    nums = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    if not nums:
        return SEQUENCE_DIALECTS[0][1]
    return next(name for since, name in SEQUENCE_DIALECTS if nums >= since)


@dataclass(frozen=True)
class DeviceProps:
    """What ``pprops`` says about the controller."""

    device_name: str
    led_count: int
    color_channels: tuple[str, ...]
    wavelengths_nm: dict[str, float]
    trigger_input_count: int
    trigger_output_count: int
    bit_depth: int
    serial_number: int
    part_number: int
    mac_address: str
    interface_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_name": self.device_name, "led_count": self.led_count,
            "color_channels": list(self.color_channels), "wavelengths_nm": dict(self.wavelengths_nm),
            "trigger_input_count": self.trigger_input_count,
            "trigger_output_count": self.trigger_output_count, "bit_depth": self.bit_depth,
            "serial_number": self.serial_number, "part_number": self.part_number,
            "mac_address": self.mac_address, "interface_version": self.interface_version,
        }


def _json_object(text: str, what: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ProtocolError(f"{what}: expected a JSON object, found {text[:80]!r}")
    try:
        obj = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what}: malformed JSON ({exc}); found {text[start:start + 80]!r}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: expected a JSON object, found {type(obj).__name__}")
    return obj


def parse_props(text: str) -> DeviceProps:
    """Parse the ``pprops`` payload; refuse devices that are not illuminate v2."""
    obj = _json_object(text, "pprops")
    missing = [k for k in ("led_count", "interface_version") if k not in obj]
    if missing:
        raise ProtocolError(
            f"pprops lacks {missing}; this does not look like an illuminate controller "
            f"(found keys {sorted(obj)[:12]})"
        )
    version = str(obj["interface_version"])
    try:
        major = int(float(version))
    except ValueError:
        major = -1
    if major not in SUPPORTED_INTERFACE_MAJOR:
        raise ProtocolError(
            f"illuminate interface version {version!r} is not supported; expected major version "
            f"{SUPPORTED_INTERFACE_MAJOR}. Flash illuminate v2 or extend the bridge"
        )
    channels = tuple(str(c) for c in obj.get("color_channels", ["w"]))
    waves = {str(k): float(v) for k, v in dict(obj.get("color_channel_center_wavelengths", {})).items()}
    known = {"device_name", "led_count", "color_channels", "color_channel_center_wavelengths",
             "trigger_input_count", "trigger_output_count", "bit_depth", "serial_number",
             "part_number", "mac_address", "interface_version"}
    try:
        return DeviceProps(
            device_name=str(obj.get("device_name", "")), led_count=int(obj["led_count"]),
            color_channels=channels, wavelengths_nm=waves,
            trigger_input_count=int(obj.get("trigger_input_count", 0)),
            trigger_output_count=int(obj.get("trigger_output_count", 0)),
            bit_depth=int(obj.get("bit_depth", 8)), serial_number=int(obj.get("serial_number", 0)),
            part_number=int(obj.get("part_number", 0)), mac_address=str(obj.get("mac_address", "")),
            interface_version=version, extra={k: v for k, v in obj.items() if k not in known},
        )
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"pprops has a field of the wrong type: {exc}") from exc


def _indexed_lists(text: str, key: str, led_count: int, width: int) -> list[tuple[float, ...]]:
    obj = _json_object(text, key)
    table = obj.get(key)
    if not isinstance(table, dict):
        raise ProtocolError(f"expected key {key!r} holding an object; found keys {sorted(obj)}")
    out: dict[int, tuple[float, ...]] = {}
    for k, v in table.items():
        if not (isinstance(v, list) and len(v) >= width):
            raise ProtocolError(f"{key}[{k}] = {v!r}; expected a list of {width} numbers")
        out[int(k)] = tuple(float(x) for x in v[:width])
    if sorted(out) != list(range(led_count)):
        raise ProtocolError(f"{key} lists {len(out)} LEDs; expected indices 0..{led_count - 1}")
    return [out[i] for i in range(led_count)]


def parse_positions(text: str, led_count: int) -> list[tuple[float, ...]]:
    """``pledpos`` -> [(x, y, z) mm] indexed by LED number."""
    return _indexed_lists(text, "led_position_list_cartesian", led_count, 3)


def parse_na_positions(text: str, led_count: int) -> list[tuple[float, ...]]:
    """``pledposna`` -> [(na_x, na_y)] indexed by LED number."""
    return _indexed_lists(text, "led_position_list_na", led_count, 2)


def parse_echo(lines: Sequence[str], prefix: str) -> tuple[int, ...]:
    """The numbers of a machine-mode echo such as ``SB.128`` or ``CO.85.85.85`` (last match wins)."""
    pat = re.compile(re.escape(prefix) + r"((?:\.\d+)+)\s*$")
    for line in reversed(lines):
        m = pat.match(line.strip())
        if m:
            return tuple(int(x) for x in m.group(1).split(DELIMITER)[1:])
    raise ProtocolError(f"expected an echo '{prefix}.<n>...', found {list(lines)[-3:]!r}")


_REPORT = re.compile(r"(seq|scan)_start:([\d.]*):(seq|scan)_end")


def parse_index_report(lines: Sequence[str]) -> tuple[int, ...]:
    """Indices of a ``seq_start:0.1.2:seq_end`` / ``scan_start:...:scan_end`` report.

    The firmware prints a delimiter after every index but the array's last LED, so a trailing
    ``.`` is normal and ignored.
    """
    for line in lines:
        m = _REPORT.search(line)
        if m:
            return tuple(int(t) for t in m.group(2).split(DELIMITER) if t)
    raise ProtocolError(f"expected a 'seq_start:...:seq_end' report, found {list(lines)[-3:]!r}")


def _int_in(name: str, value: object, lo: int, hi: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ArgumentRangeError(f"{name} = {value!r} is not a number; expected an integer {lo}..{hi}{unit}")
    if int(value) != value:
        raise ArgumentRangeError(f"{name} = {value!r} is not an integer; expected {lo}..{hi}{unit}")
    v = int(value)
    if not lo <= v <= hi:
        raise ArgumentRangeError(f"{name} = {v}{unit} is out of range; valid {lo}..{hi}{unit}")
    return v


def na_to_arg(name: str, na: float, lo: int = 1, hi: int = 99) -> int:
    """An NA as the firmware's ``NA×100`` integer, refusing values that round out of ``lo..hi``."""
    if isinstance(na, bool) or not isinstance(na, int | float) or not math.isfinite(na):
        raise ArgumentRangeError(f"{name} = {na!r} is not a number; expected {lo / 100:.2f}..{hi / 100:.2f}")
    v = round(na * 100)
    if not lo <= v <= hi:
        raise ArgumentRangeError(
            f"{name} = {na} is out of range; the firmware takes NA×100 as an integer, valid "
            f"{lo / 100:.2f}..{hi / 100:.2f}"
        )
    return v


@dataclass(frozen=True)
class Commands:
    """Builds validated command lines for one device (LED count, colour and trigger channels)."""

    led_count: int
    channel_count: int = 1
    trigger_output_count: int = 2
    trigger_input_count: int = 2
    dialect: str = "v2"

    def leds(self, indices: Sequence[int]) -> list[int]:
        if isinstance(indices, int | str) or len(indices) == 0:
            raise ArgumentRangeError(f"expected a non-empty list of LED indices, found {indices!r}")
        return [_int_in("LED index", i, 0, self.led_count - 1) for i in indices]

    def led(self, indices: Sequence[int]) -> bytes:
        """``l.<i>[.<j>...]``: light exactly these LEDs (autoclear on)."""
        return encode_command("l", *self.leds(indices))

    def brightness(self, value: int) -> bytes:
        return encode_command("sb", _int_in("brightness", value, 0, 255))

    def color(self, values: Sequence[int]) -> bytes:
        if len(values) not in (1, self.channel_count):
            raise ArgumentRangeError(
                f"colour has {len(values)} values; this device has {self.channel_count} colour "
                f"channel(s): give 1 value (all channels) or {self.channel_count}"
            )
        return encode_command("sc", *(_int_in("colour value", v, 0, 255) for v in values))

    def na(self, na: float) -> bytes:
        return encode_command("na", na_to_arg("objective NA", na))

    def annulus(self, min_na: float, max_na: float) -> bytes:
        lo, hi = na_to_arg("annulus min NA", min_na, 0, 100), na_to_arg("annulus max NA", max_na, 0, 100)
        if lo >= hi:
            raise ArgumentRangeError(f"annulus NA range {min_na}..{max_na} is empty; expected min < max")
        return encode_command("an", lo, hi)

    def array_distance(self, mm: int) -> bytes:
        return encode_command("sad", _int_in("array distance", mm, 1, 255, " mm"))

    def autoclear(self, on: bool) -> bytes:
        return encode_command("ac", 1 if on else 0)

    def sequence_length(self, n: int) -> bytes:
        return encode_command("ssl", _int_in("sequence length", n, 1, MAX_SEQUENCE_LENGTH, " patterns"))

    def sequence_value(self, indices: Sequence[int]) -> bytes:
        """``ssv.<count>.<i>...``: append one pattern (an empty list appends a dark pattern)."""
        leds = self.leds(indices) if len(indices) else []
        return encode_command("ssv", len(leds), *leds)

    def trigger_mode(self, name: str, mode: int) -> str:
        m = _int_in(name, mode, TRIG_MODE_START, MAX_UINT16)
        return str(m)

    def run_sequence(self, delay_ms: int, repeats: int = 1, trigger_output: Sequence[int] = (0,),
                     trigger_input: Sequence[int] = ()) -> list[bytes]:
        """The lines that run the uploaded sequence with these trigger modes (see module docs).

        v2: ``troutputmode.<k>.<mode>`` for every output (and ``trinputmode`` for every input) the
        device has, unlisted ones off, then ``rseq.<delay_ms>.<repeats>``. v1: one
        ``rseq.<delay_ms>.<repeats>.<out0>.<in0>.<out1>.<in1>`` line.
        """
        if delay_ms != 0:
            _int_in("sequence delay", delay_ms, MIN_SEQUENCE_DELAY_MS, MAX_SEQUENCE_DELAY_MS, " ms (or 0)")
        r = _int_in("sequence repeats", repeats, 1, MAX_UINT16)
        if len(trigger_output) > self.trigger_output_count or len(trigger_input) > self.trigger_input_count:
            raise ArgumentRangeError(
                f"{len(trigger_output)} output / {len(trigger_input)} input trigger modes given; device "
                f"has {self.trigger_output_count} outputs and {self.trigger_input_count} inputs"
            )
        outs = [self.trigger_mode(f"trigger output {k} mode", trigger_output[k] if k < len(trigger_output) else 0)
                for k in range(self.trigger_output_count)]
        ins = [self.trigger_mode(f"trigger input {k} mode", trigger_input[k] if k < len(trigger_input) else 0)
               for k in range(self.trigger_input_count)]
        if self.dialect == "v1":
            pairs = max(len(trigger_output), len(trigger_input))
            modes = [m for k in range(pairs)
                     for m in (outs[k] if k < len(outs) else "0", ins[k] if k < len(ins) else "0")]
            return [encode_command("rseq", int(delay_ms), r, *modes)]
        return ([encode_command("troutputmode", k, m) for k, m in enumerate(outs)]
                + [encode_command("trinputmode", k, m) for k, m in enumerate(ins)]
                + [encode_command("rseq", int(delay_ms), r)])

    def trigger(self, index: int = 0) -> bytes:
        return encode_command("tr", self._trigger_index(index))

    def _trigger_index(self, index: int) -> int:
        return _int_in("trigger output index", index, 0, max(self.trigger_output_count - 1, 0))

    def trigger_pulse_width(self, us: int) -> bytes:
        return encode_command("troutputpulsewidth", _int_in("trigger pulse width", us, 1, 1_000_000, " µs"))

    def trigger_delay(self, us: int) -> bytes:
        return encode_command("troutputdelay", _int_in("trigger delay", us, 0, 1_000_000, " µs"))

    def trigger_polarity(self, active_high: bool) -> bytes:
        return encode_command("troutputpolarity", 1 if active_high else 0)

    def trigger_setup(self, index: int, in_mode: int, out_mode: int, width_us: int, delay_us: int) -> bytes:
        """``trs.<i>.<in_mode>.<out_mode>.<width_us>.<delay_us>``: one trigger channel in one line."""
        return encode_command("trs", self._trigger_index(index), self.trigger_mode("trigger input mode", in_mode),
                              self.trigger_mode("trigger output mode", out_mode),
                              _int_in("trigger pulse width", width_us, 1, 1_000_000, " µs"),
                              _int_in("trigger delay", delay_us, 0, 1_000_000, " µs"))

    def wait(self, ms: int) -> bytes:
        return encode_command("delay", _int_in("delay", ms, 0, 10_000, " ms"))

    # -- console ---------------------------------------------------------------------------
    def validate_line(self, line: str) -> bytes:
        """Re-encode a console line through the validators; unknown commands are refused."""
        name, *raw = line.strip().split(DELIMITER)
        builder = self._console_builders().get(name)
        if builder is None:
            if name in PASS_THROUGH:
                if raw:
                    raise ArgumentRangeError(f"{name!r} takes no arguments here; found {raw}")
                return encode_command(name)
            raise ArgumentRangeError(
                f"unknown or unchecked command {name!r}; known: {', '.join(sorted(self._console_builders()))}, "
                f"{', '.join(sorted(PASS_THROUGH))} (send it unchecked with the console's --raw)"
            )
        try:
            args = [int(a) for a in raw]
        except ValueError:
            raise ArgumentRangeError(f"{name!r}: arguments must be integers, found {raw}") from None
        return builder(args)

    def _console_ssv(self, a: list[int]) -> bytes:
        if not a or a[0] != len(a) - 1:
            raise ArgumentRangeError(f"ssv.<count>.<i>...: count {a[:1]} does not match {len(a) - 1} indices")
        return self.sequence_value(a[1:])

    def _console_rseq(self, a: list[int]) -> bytes:
        if len(a) > 2 and self.dialect == "v2":
            raise ArgumentRangeError(f"rseq takes at most delay_ms.count on firmware v2, found {len(a)} arguments; "
                                     "configure triggers first with troutputmode.<i>.<mode>")
        return self.run_sequence(a[0] if a else -1, a[1] if len(a) > 1 else 1, a[2::2], a[3::2])[-1]

    def _console_mode(self, name: str, a: list[int], count: int) -> bytes:
        if len(a) != 2:
            raise ArgumentRangeError(f"{name}.<channel>.<mode>: expected 2 arguments, found {len(a)}")
        k = _int_in(f"{name} channel", a[0], 0, max(count - 1, 0))
        return encode_command(name, k, self.trigger_mode(f"{name} mode", a[1]))

    def _console_trs(self, a: list[int]) -> bytes:
        if len(a) != 5:
            raise ArgumentRangeError(f"trs.<i>.<in_mode>.<out_mode>.<width_us>.<delay_us>: expected 5 arguments, "
                                     f"found {len(a)}")
        return self.trigger_setup(*a)

    def _console_builders(self) -> dict[str, Callable[[list[int]], bytes]]:
        def one(fn: Callable[[int], bytes], query: str = "") -> Callable[[list[int]], bytes]:
            def build(a: list[int]) -> bytes:
                if not a and query:
                    return encode_command(query)  # no argument: the device echoes the current value
                if len(a) != 1:
                    raise ArgumentRangeError(f"expected exactly 1 argument, found {len(a)}")
                return fn(a[0])
            return build
        return {
            "l": self.led, "sb": one(self.brightness, "sb"),
            "sc": lambda a: self.color(a) if a else encode_command("sc"),
            "na": one(lambda v: encode_command("na", _int_in("NA×100", v, 1, 99)), "na"),
            "an": lambda a: self.annulus(*(x / 100 for x in a)) if len(a) == 2 else self.annulus(-1, -1),
            "sad": one(self.array_distance, "sad"), "ac": one(lambda v: self.autoclear(bool(v)), "ac"),
            "ssl": one(self.sequence_length), "ssv": self._console_ssv,
            "rseq": self._console_rseq,
            "tr": lambda a: self.trigger(a[0] if a else 0), "delay": one(self.wait),
            "troutputpulsewidth": one(self.trigger_pulse_width), "troutputdelay": one(self.trigger_delay),
            "troutputpolarity": one(lambda v: self.trigger_polarity(bool(_int_in("polarity", v, 0, 1)))),
            "troutputmode": lambda a: self._console_mode("troutputmode", a, self.trigger_output_count),
            "trinputmode": lambda a: self._console_mode("trinputmode", a, self.trigger_input_count),
            "trs": self._console_trs,
        }


#: Commands without arguments the console sends as they are.
PASS_THROUGH = frozenset({
    "x", "bf", "df", "ff", "pprops", "pp", "pledpos", "pledposna", "pvals", "version", "about", "?",
    "machine", "human", "sseq", "xseq", "pseq", "scf", "scb",
})
