"""The command tables of the emulated firmware, one per dialect, and the line dispatcher.

:data:`V2_COMMANDS` is illuminate v2.32 (``rseq`` runs with trigger outputs configured beforehand);
:data:`V1_COMMANDS` is older firmware (``rseq`` takes the trigger modes as arguments and reports
the patterns shown). Which one a controller speaks follows from its version
(:func:`firmware_bridge.commands.sequence_dialect`). Quirks on or off is not a table of its own:
every handler reads its arguments through :mod:`firmware_bridge.emulator.parsing`, which follows
``state.quirks``.

:func:`run_line` answers one line with the bytes the device prints; it does no I/O.
"""

from __future__ import annotations

from firmware_bridge.emulator import handlers as h
from firmware_bridge.emulator import sequences as q
from firmware_bridge.emulator.parsing import Fail, Handler, Pacer
from firmware_bridge.emulator.state import EmulatorState

#: Longest line the emulated firmware buffers (bytes); longer lines are ERROR[18] or, with quirks,
#: silently dropped.
FIRMWARE_LINE_BUFFER = 1024
ERROR_TEXT = {
    2: "Wrong number of arguments.", 8: "Invalid argument.", 9: "Device does not support this feature.",
    10: "Invalid argument range.", 12: "Reached end of sequence.",
    13: "Sequence period was shorter than LED update rate.", 15: "Command interrupted.",
    16: "Invalid command.", 18: "Command too long.", 19: "Sequence is full.",
}


def _help(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return " ".join(sorted(commands(s))) + "\n"


V2_COMMANDS: dict[str, Handler] = {
    # illumination
    "l": h.light, "x": h.clear, "ff": h.fill, "bf": h.brightfield, "df": h.darkfield, "an": h.annulus,
    # settings
    "sb": h.set_brightness, "sc": h.set_color, "na": h.set_na, "sad": h.set_distance, "ac": h.set_autoclear,
    "machine": h.machine_mode, "human": h.human_mode, "smc": h.set_max_current, "smce": h.enforce_max_current,
    "reset": h.reset,
    # queries
    "pprops": h.print_props, "pp": h.print_props, "pledpos": h.print_led_positions,
    "pledposna": h.print_led_positions_na, "version": h.version, "about": h.about, "?": _help,
    # sequences and scans
    "ssl": q.set_sequence_length, "ssv": q.set_sequence_value, "rseq": q.run_sequence,
    "sseq": q.step_sequence, "xseq": q.reset_sequence, "pseq": q.print_sequence,
    "scf": q.scan_full, "scb": q.scan_brightfield, "scd": q.scan_darkfield, "delay": q.pause,
    # triggers
    "tr": q.trigger, "trs": q.setup_trigger,
    "troutputmode": q.per_channel_setter(lambda s: s.trigger_output_modes, lo=-2),
    "trinputmode": q.per_channel_setter(lambda s: s.trigger_input_modes, lo=-2),
    "troutputpulsewidth": q.per_channel_setter(lambda s: s.trigger_pulse_width_us, lo=1),
    "troutputdelay": q.per_channel_setter(lambda s: s.trigger_delay_us),
    "troutputpolarity": q.per_channel_setter(lambda s: s.trigger_output_polarity),
    "trinputpolarity": q.per_channel_setter(lambda s: s.trigger_input_polarity),
    "trinputtimeout": q.set_trigger_input_timeout,
}
V1_COMMANDS: dict[str, Handler] = {**V2_COMMANDS, "rseq": q.run_sequence_v1}
DIALECTS: dict[str, dict[str, Handler]] = {"v2": V2_COMMANDS, "v1": V1_COMMANDS}


def commands(s: EmulatorState) -> dict[str, Handler]:
    """The command table of the dialect ``s`` speaks."""
    return DIALECTS[s.dialect]


def run_line(s: EmulatorState, line: str, pacer: Pacer) -> bytes:
    """Execute one command line (without its newline) on ``s``; return the bytes the device prints.

    An empty line gets no answer (as on the device). A handler's payload is followed by the
    ``-==-`` terminator, a :class:`~firmware_bridge.emulator.parsing.Fail` by an ``ERROR[n]`` line
    only; lines the handler's drawing printed (over-current refusals) come first in both cases.
    """
    if not line:
        return b""
    s.commands_seen.append(line)
    if len(line) + 1 > FIRMWARE_LINE_BUFFER:
        return b"" if s.quirks else error_line(18)
    if s.fault_error is not None:
        code, s.fault_error = s.fault_error, None
        return error_line(code)
    name, *args = [t for t in line.split(".") if t] or [""]
    handler = commands(s).get(name)
    if handler is None:
        return error_line(16)
    s.notes.clear()
    try:
        payload = handler(s, args, pacer)
    except Fail as exc:
        return "".join(s.notes).encode("ascii") + exc.text.encode("ascii") + error_line(exc.code)
    return ("".join(s.notes) + payload).encode("ascii", "replace") + b"-==-\n"


def error_line(code: int) -> bytes:
    """``ERROR[code]: <text>`` as the firmware prints it."""
    return f"ERROR[{code}]: {ERROR_TEXT.get(code, 'INVALID ERROR CODE')}\n".encode("ascii")
