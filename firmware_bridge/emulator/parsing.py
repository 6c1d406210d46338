"""What every command handler shares: its signature, its error, how it reads its arguments.

A handler is ``handler(state, args, pacer) -> payload``: ``args`` are the ``.``-separated
arguments, ``pacer`` is how a running sequence sees time and the serial input, the payload is
printed before the ``-==-`` terminator; :class:`Fail` aborts with an ``ERROR[n]`` line instead.

Arguments are read as the firmware reads them: with quirks (v2.32) C's ``strtoul(tok, NULL, 0)``
and ``atoi`` and no range checks; without, strict decimal numbers and ``ERROR[8]`` / ``ERROR[10]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from firmware_bridge.emulator.state import EmulatorState


class Pacer(Protocol):
    """How a running sequence sees time and the serial input (the server supplies a real one)."""

    def input_pending(self) -> bool: ...

    def wait(self, seconds: float) -> None: ...


class InstantPacer:
    """No time passes and no input arrives (pure :meth:`Emulator.handle_line` calls)."""

    def input_pending(self) -> bool:
        return False

    def wait(self, seconds: float) -> None:
        return None


Handler = Callable[[EmulatorState, list[str], Pacer], str]


class Fail(Exception):
    """Abort a command with ``ERROR[code]`` (after the lines of ``text``, as some commands print)."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.text = text


def strtoul(tok: str) -> int:
    """C ``strtoul(tok, NULL, 0)`` as a uint32: base prefix 0x / 0, stops at the first bad char."""
    m = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)?", tok)
    if not m or not m.group(2):
        return 0
    digits = m.group(2)
    v = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 8) if digits.startswith("0") else int(digits)
    return (-v if m.group(1) == "-" else v) & 0xFFFFFFFF


def atoi(tok: str) -> int:
    """C ``atoi``: optional sign and decimal digits, 0 when there are none (int32 wrap)."""
    m = re.match(r"\s*([+-]?\d+)", tok)
    v = int(m.group(1)) if m else 0
    return (v + 2**31) % 2**32 - 2**31


def int16(v: int) -> int:
    """The low 16 bits of ``v`` as a signed value (a C ``uint16 -> int16`` cast)."""
    v &= 0xFFFF
    return v - 0x10000 if v >= 0x8000 else v


def uint(s: EmulatorState, tok: str) -> int:
    """An unsigned argument: ``strtoul`` with quirks, else decimal digits or ERROR[8]."""
    if s.quirks:
        return strtoul(tok)
    if not tok.isdigit():
        raise Fail(8)
    return int(tok)


def sint(s: EmulatorState, tok: str) -> int:
    """A signed argument: ``atoi`` with quirks, else an optional ``-`` and digits or ERROR[8]."""
    if s.quirks:
        return atoi(tok)
    if not re.fullmatch(r"-?\d+", tok):
        raise Fail(8)
    return int(tok)


def check(s: EmulatorState, ok: bool, code: int = 10) -> None:
    """A check the strict controller makes and the v2.32 parser does not: ERROR[code] unless ``ok``."""
    if not ok and not s.quirks:
        raise Fail(code)


def indices(s: EmulatorState, toks: Sequence[str]) -> list[int]:
    """LED indices as ``l`` and ``ssv`` read them.

    With quirks the index is a (uint16) passed on as int16: negative means every LED; one past the
    table lights an undefined LED, emulated as ``index % led_count`` and recorded in
    ``s.out_of_table``. Strict: ERROR[10] past the table.
    """
    n = s.led_count
    out: list[int] = []
    for t in toks:
        v = uint(s, t)
        if not s.quirks:
            if v >= n:
                raise Fail(10)
            out.append(v)
            continue
        i = int16(v)
        if i < 0:
            out.extend(range(n))
        elif i >= n:
            s.out_of_table.append(i)
            out.append(i % n)
        else:
            out.append(i)
    return out
