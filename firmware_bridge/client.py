"""The typed LED-array API and :func:`open_led_array`, which picks the transport from a URL.

URLs:

* ``/dev/ttyACM0`` (any device path): a real controller, opened with ``exclusive=True``;
* ``socket://host:port``: a controller behind a TCP bridge (or ``stainless-led emulate --tcp``);
* ``sim://<profile>[?quirks=0]``: an in-process :class:`~firmware_bridge.emulator.Emulator`
  (the illuminate v2.32 parser; ``quirks=0`` a strict, range-checking controller) served over a
  real pseudo-terminal; the returned object's ``emulator`` attribute is it.

The firmware version (``version``) picks the ``rseq`` dialect
(:func:`~firmware_bridge.commands.sequence_dialect`): on v2 the trigger channels are configured
with ``troutputmode``/``trinputmode`` before ``rseq.<delay>.<count>``.

Every argument is validated against the device (LED count, colour channels, trigger channels)
before it is sent. Settings (brightness, colour, NA, array distance, autoclear) are remembered
and re-applied whenever the link reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs

from firmware_bridge.codec import Reply, encode_command
from firmware_bridge.commands import (
    Commands,
    DeviceProps,
    parse_echo,
    parse_index_report,
    parse_positions,
    parse_props,
    sequence_dialect,
)
from firmware_bridge.emulator import Emulator, EmulatorServer
from firmware_bridge.errors import ArgumentRangeError, DeviceTimeout, FirmwareError, ProtocolError, SequenceInterrupted
from firmware_bridge.geometry import PROFILES, RGB_WAVELENGTHS_NM, ArrayGeometry, geometry_from_positions
from firmware_bridge.link import Link, LinkConfig, Send
from firmware_bridge.plan import capture_plan, sequence_plan
from firmware_bridge.recipes import StackRecipe, resolve_recipe
from firmware_bridge.rigs import get_profile

log = logging.getLogger(__name__)

#: Largest deviation (mm) between ``pledpos`` (printed with 2 decimals) and a profile we accept.
PROFILE_TOLERANCE_MM = 0.006


@dataclass(frozen=True)
class DeviceInfo:
    """Identity of a connected controller."""

    url: str
    props: DeviceProps
    firmware_version: str
    banner: str

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "firmware_version": self.firmware_version, **self.props.to_dict()}


@runtime_checkable
class LedArray(Protocol):
    """What acquisition code needs from an LED array (real or emulated)."""

    url: str
    emulator: Emulator | None

    def identify(self) -> DeviceInfo: ...
    def geometry(self) -> ArrayGeometry: ...
    def light(self, indices: Sequence[int]) -> None: ...
    def clear(self) -> None: ...
    def brightfield(self, na: float | None = None) -> tuple[int, ...]: ...
    def darkfield(self, na: float | None = None) -> tuple[int, ...]: ...
    def set_brightness(self, value: int) -> None: ...
    def set_color(self, *values: int) -> None: ...
    def load_sequence(self, patterns: Sequence[Sequence[int]]) -> None: ...
    def run_sequence(self, delay_ms: int, repeats: int = 1, trigger_output: Sequence[int] = (1,),
                     trigger_input: Sequence[int] = ()) -> tuple[int, ...]: ...
    def plan(self, recipe: StackRecipe | str) -> list[str]: ...
    def close(self) -> None: ...


class IlluminateLedArray:
    """An illuminate v2 controller behind a :class:`~firmware_bridge.link.Link`."""

    def __init__(self, url: str, *, config: LinkConfig | None = None, emulator: Emulator | None = None,
                 server: EmulatorServer | None = None) -> None:
        self.url = url
        self.emulator = emulator
        self._server = server
        self._settings: dict[str, bytes] = {}
        self._props: DeviceProps | None = None
        self._geometry: ArrayGeometry | None = None
        self._sequence_length = 0
        self._pattern_na: float | None = None
        self.firmware_version = ""
        self._link = Link(url, config, on_connect=self._on_connect)
        self._link.open()

    # -- connection ---------------------------------------------------------------------------
    def _on_connect(self, send: Send, banner: str) -> None:
        if banner.strip() and "illuminate" not in banner.lower():
            raise ProtocolError(f"{self.url} is not an illuminate controller: it says {banner.strip()[:160]!r}")
        try:
            reply = send(b"machine\n")
        except (DeviceTimeout, FirmwareError) as exc:
            said = getattr(exc, "received", "") or banner.strip()
            raise ProtocolError(
                f"{self.url} did not answer 'machine' like an illuminate controller; it said "
                f"{said[:160]!r} ({exc})"
            ) from exc
        if "machine" not in reply.text:
            raise ProtocolError(f"{self.url}: expected 'Command output set to machine-readable', found {reply.text!r}")
        try:
            props = parse_props(send(b"pprops\n").text)
        except FirmwareError:  # firmware before pprops was added calls it pp
            props = parse_props(send(b"pp\n").text)
        old = self._props
        if old is not None and (old.serial_number, old.led_count) != (props.serial_number, props.led_count):
            raise ProtocolError(
                f"a different controller appeared at {self.url}: expected serial {old.serial_number} with "
                f"{old.led_count} LEDs, found serial {props.serial_number} with {props.led_count}"
            )
        self._props = props
        self.firmware_version = send(b"version\n").text.strip()
        for line in self._settings.values():
            send(line)

    def _send(self, line: bytes, timeout: float | None = None) -> Reply:
        return self._link.request(line, timeout)

    def _setting(self, key: str, line: bytes, echo: str, expect: tuple[int, ...]) -> None:
        found = parse_echo(self._send(line).lines, echo)
        if found != expect:
            raise ProtocolError(
                f"{self.url} echoed {echo}.{'.'.join(map(str, found))} to {line.decode().strip()!r}; expected "
                f"{echo}.{'.'.join(map(str, expect))}. The firmware does not range-check; check the value"
            )
        self._settings.pop(key, None)
        self._settings[key] = line  # re-applied in the order they were set

    @property
    def link(self) -> Link:
        return self._link

    @property
    def props(self) -> DeviceProps:
        if self._props is None:
            self._props = parse_props(self._send(b"pprops\n").text)
        return self._props

    @property
    def commands(self) -> Commands:
        p = self.props
        return Commands(p.led_count, len(p.color_channels), p.trigger_output_count, p.trigger_input_count,
                        sequence_dialect(self.firmware_version))

    # -- identity and geometry ------------------------------------------------------------------
    def identify(self) -> DeviceInfo:
        self._props = parse_props(self._send(b"pprops\n").text)
        self.firmware_version = self._send(b"version\n").text.strip()
        return DeviceInfo(self.url, self._props, self.firmware_version, self._link.banner)

    def geometry(self) -> ArrayGeometry:
        """The array geometry read from the device (cached; ``set_array_distance`` refreshes it).

        For one of our profiles (device name in :data:`PROFILES`) whose positions match, the profile
        itself is returned (objective NA and magnification come from it; recipe hashes match).
        Otherwise the objective NA is the device's current ``na`` and the magnification is unknown (1).
        """
        if self._geometry is None:
            self._geometry = self._read_geometry()
        return self._geometry

    def _read_geometry(self) -> ArrayGeometry:
        p = self.props
        positions = parse_positions(self._send(b"pledpos\n").text, p.led_count)
        if p.device_name in PROFILES:
            profile = get_profile(p.device_name)
            dev = max(abs(a - b) for led, pos in zip(profile.leds, positions, strict=False)
                      for a, b in zip((led.x_mm, led.y_mm, led.z_mm), pos, strict=True))
            if len(profile.leds) == p.led_count and dev <= PROFILE_TOLERANCE_MM:
                return profile
            log.warning("%s calls itself %r but its LEDs differ from the profile by up to %.3f mm; "
                        "using the device's positions", self.url, p.device_name, dev)
        na = parse_echo(self._send(b"na\n").lines, "NA")[0] / 100
        waves = p.wavelengths_nm or {c: RGB_WAVELENGTHS_NM.get(c, 550.0) for c in p.color_channels}
        return geometry_from_positions(p.device_name or "illuminate", positions, na, 1.0, waves)

    # -- illumination ---------------------------------------------------------------------------
    def light(self, indices: Sequence[int]) -> None:
        """Light exactly these LEDs (everything else off)."""
        self._send(self.commands.led(indices))

    def clear(self) -> None:
        self._send(encode_command("x"))

    def fill(self) -> None:
        self._send(encode_command("ff"))

    def _circle(self, lo: float, hi: float) -> tuple[int, ...]:
        g = self.geometry()
        return tuple(led.index for led in g.leds if lo <= round(led.na, 6) <= hi)

    def set_na(self, na: float) -> None:
        """The NA the firmware's ``bf``/``df``/``an`` patterns use (not the objective's)."""
        line = self.commands.na(na)
        self._setting("na", line, "NA", (round(na * 100),))
        self._pattern_na = round(na * 100) / 100

    def brightfield(self, na: float | None = None) -> tuple[int, ...]:
        """Firmware ``bf`` (after ``na.<NA×100>`` when ``na`` is given); returns the LEDs it lights."""
        if na is not None:
            self.set_na(na)
        self._send(encode_command("bf"))
        return self._circle(0.0, self._current_na())

    def darkfield(self, na: float | None = None) -> tuple[int, ...]:
        if na is not None:
            self.set_na(na)
        self._send(encode_command("df"))
        return self._circle(self._current_na(), 1.0)

    def annulus(self, min_na: float, max_na: float) -> None:
        self._send(self.commands.annulus(min_na, max_na))

    def _current_na(self) -> float:
        if self._pattern_na is None:
            self._pattern_na = parse_echo(self._send(b"na\n").lines, "NA")[0] / 100
        return self._pattern_na

    def set_brightness(self, value: int) -> None:
        """Global brightness 0..255 (firmware ``sb``)."""
        self._setting("sb", self.commands.brightness(value), "SB", (int(value),))

    def set_color(self, *values: int) -> None:
        """Per-channel colour 0..255 (``sc``); one value sets every channel."""
        n = len(self.props.color_channels)
        if n == 1:
            raise ArgumentRangeError(f"{self.url} has a single colour channel; use set_brightness() instead")
        line = self.commands.color(values)
        self._setting("sc", line, "CO", tuple(int(v) for v in values) * (n if len(values) == 1 else 1))

    def set_array_distance(self, mm: int) -> None:
        """LED-array-to-sample distance (mm) the firmware uses for NA patterns; refreshes geometry."""
        self._setting("sad", self.commands.array_distance(mm), "DZ", (int(mm),))
        self._geometry = None

    def set_autoclear(self, on: bool) -> None:
        self._setting("ac", self.commands.autoclear(on), "AC", (int(bool(on)),))

    # -- sequences and triggers -----------------------------------------------------------------
    def load_sequence(self, patterns: Sequence[Sequence[int]]) -> None:
        """Upload patterns (each a list of LEDs; empty = dark) for ``run_sequence``/``step_sequence``."""
        cmds = self.commands
        lines = [cmds.sequence_length(len(patterns))] + [cmds.sequence_value(p) for p in patterns]
        for line in lines:
            self._send(line)
        self._sequence_length = len(patterns)

    def run_sequence(self, delay_ms: int, repeats: int = 1, trigger_output: Sequence[int] = (1,),
                     trigger_input: Sequence[int] = ()) -> tuple[int, ...]:
        """Run the uploaded sequence on the device (``rseq``), pattern period ``delay_ms`` (ms).

        ``trigger_output=(1,)`` pulses output 0 at every pattern (on v2 firmware the modes are set with
        ``troutputmode``/``trinputmode`` first). Returns the pattern indices shown; raises
        :class:`SequenceInterrupted` when the device stopped early (input arrived, ``ERROR[15]``) or
        reported fewer patterns than asked.
        """
        *setup, line = self.commands.run_sequence(delay_ms, repeats, trigger_output, trigger_input)
        for cmd in setup:
            self._send(cmd)
        n = self._sequence_length
        expected = tuple(range(n)) * repeats
        budget = self._link.config.timeout_s + 1.5 * n * repeats * max(delay_ms, 1) / 1000.0
        try:
            reply = self._send(line, timeout=budget)
        except FirmwareError as exc:
            if exc.code != 15:
                raise
            raise SequenceInterrupted(f"{self.url}: the sequence was interrupted (ERROR[15]) by input that reached "
                                      "the port while it ran. Re-run it; keep exactly one command in flight") from exc
        if not any("_start:" in ln for ln in reply.lines):
            return expected  # v2 prints no index report: success means every pattern was shown
        shown = parse_index_report(reply.lines)
        if shown != expected:
            raise SequenceInterrupted(
                f"{self.url}: sequence showed {len(shown)} of {len(expected)} patterns "
                f"(last {list(shown[-3:])}); something reached the port while it ran, or the upload was "
                "incomplete. Re-run it; keep exactly one command in flight"
            )
        return shown

    def step_sequence(self, trigger_output: Sequence[int] = ()) -> int:
        """Show the next uploaded pattern (``sseq``); returns its 1-based number."""
        args = [self.commands.trigger_mode(f"trigger output {k} mode", m) for k, m in enumerate(trigger_output)]
        text = self._send(encode_command("sseq", *args)).text
        for word in text.replace("#", " ").split():
            if word.isdigit():
                return int(word)
        raise ProtocolError(f"sseq: expected 'Displayed pattern # k of n', found {text!r}")

    def reset_sequence(self) -> None:
        self._send(encode_command("xseq"))

    def trigger(self, index: int = 0) -> None:
        self._send(self.commands.trigger(index))

    def set_trigger_pulse_width(self, us: int) -> None:
        self._send(self.commands.trigger_pulse_width(us))

    def set_trigger_delay(self, us: int) -> None:
        self._send(self.commands.trigger_delay(us))

    def set_trigger_polarity(self, active_high: bool) -> None:
        self._send(self.commands.trigger_polarity(active_high))

    def setup_trigger(self, index: int, in_mode: int, out_mode: int, width_us: int, delay_us: int) -> None:
        """``trs``: configure trigger channel ``index`` in one command (modes as for ``run_sequence``)."""
        self._send(self.commands.trigger_setup(index, in_mode, out_mode, width_us, delay_us))

    # -- plans and raw access --------------------------------------------------------------------
    def _recipe(self, recipe: StackRecipe | str) -> StackRecipe:
        return resolve_recipe(recipe, self.geometry()) if isinstance(recipe, str) else recipe

    def plan(self, recipe: StackRecipe | str) -> list[str]:
        """Host-paced commands, one per channel of ``recipe`` (see :mod:`firmware_bridge.plan`)."""
        return capture_plan(self._recipe(recipe))

    def sequence_plan(self, recipe: StackRecipe | str, delay_ms: int = 20) -> list[str]:
        return sequence_plan(self._recipe(recipe), delay_ms, dialect=self.commands.dialect)

    def send_line(self, line: str, *, validate: bool = True, timeout: float | None = None) -> Reply:
        """Send one console line; validated against the device unless ``validate=False``."""
        data = self.commands.validate_line(line) if validate else (line.strip() + "\n").encode("ascii")
        return self._send(data, timeout)

    def close(self) -> None:
        """Close the link (joins its reader) and, for ``sim://``, the emulator's server."""
        try:
            self._link.close()
        finally:
            if self._server is not None:
                self._server.close()

    def __enter__(self) -> IlluminateLedArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_led_array(url: str, *, config: LinkConfig | None = None) -> IlluminateLedArray:
    """Open the LED array at ``url`` (see module docs for the URL forms)."""
    if url.startswith("sim://"):
        profile, _, query = url[len("sim://"):].partition("?")
        params = parse_qs(query)
        unknown = set(params) - {"quirks"}
        if unknown:
            raise ValueError(f"sim:// URL has unknown parameters {sorted(unknown)}; valid: quirks=0|1")
        quirks = params.get("quirks", ["1"])[0].lower() in ("1", "true", "yes", "on")
        emulator = Emulator(get_profile(profile or "thesis-43"), quirks=quirks)
        server = emulator.serve_pty()
        try:
            return IlluminateLedArray(server.url, config=config, emulator=emulator, server=server)
        except BaseException:
            server.close()
            raise
    if not url or url.startswith("sim:"):
        raise ValueError(f"LED array URL {url!r} is malformed; use /dev/ttyACM0, socket://host:port or sim://thesis-43")
    return IlluminateLedArray(url, config=config)
