"""Framing of the illuminate serial dialect: a pure bytes -> replies state machine and line encoding.

The dialect (illuminate v2, ``commandrouting.cpp``):

* The host sends one ASCII command per line, ``\\n``-terminated; arguments are separated by ``.``
  (``l.5.9``, ``na.40``). An empty line gets no answer at all.
* A successful command prints zero or more payload lines and then ``-==-`` and a newline. The
  terminator may close a payload line that has no newline of its own: the JSON of ``pprops`` ends
  in ``}-==-``.
* A failing command prints exactly one line ``ERROR[<n>]: <text>`` and **no** terminator (some
  print a line of explanation first, e.g. ``ERROR: Sequance delay (…)``).
* Some failures look like success: over its current limit the firmware prints
  ``ERROR: Current output (…) exceeds maximum current output (…)`` and then ``-==-``.
  :attr:`Reply.text_error` finds such a line; the link turns it into an error.
* Lines that arrive while no command is in flight (the boot banner) are unsolicited; the link
  takes them out with :meth:`ReplyDecoder.take_pending`.

Nothing here does I/O, so it is tested with golden byte strings split at every offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_bridge.errors import ArgumentRangeError

TERMINATOR = "-==-"
DELIMITER = "."
LINE_END = b"\n"

#: Longest command line we ever send (bytes, newline included). The firmware copies a line into a
#: fixed buffer and silently drops longer ones (``ERROR_COMMAND_TOO_LONG`` is returned before
#: anything is printed), so the bridge refuses them instead.
MAX_COMMAND_BYTES = 512

#: A line this long without a newline is garbage, not a reply (bytes).
MAX_LINE_BYTES = 16384

#: A reply with more payload than this is garbage (bytes); ``pledpos`` of a 793-LED dome is ~40 KB.
MAX_REPLY_BYTES = 1 << 20

#: Error codes of illuminate v2 (``constants.h``) by number.
ERROR_NAMES: dict[int, str] = {
    1: "NOT_IMPLEMENTED", 2: "ARGUMENT_COUNT", 3: "SOURCE_DISCONNECTED", 4: "TRIGGER_TIMEOUT_ARGS",
    5: "COSINE_FACTOR", 6: "MAC_ADDRESS", 7: "POWER_SENSING_NOT_SUPPORTED", 8: "INVALID_ARGUMENT",
    9: "NOT_SUPPORTED_BY_DEVICE", 10: "ARGUMENT_RANGE", 11: "TRIGGER_CONFIG", 12: "END_OF_SEQUENCE",
    13: "SEQUENCE_DELAY", 14: "TRIGGER_TIMEOUT", 15: "COMMAND_INTERRUPTED", 16: "INVALID_COMMAND",
    17: "MEMORY_ALLOC", 18: "COMMAND_TOO_LONG", 19: "SEQUENCE_FULL",
}

_ERROR_LINE = re.compile(r"ERROR\[(-?\d+)\]:\s?(.*)")
#: A payload line that reports a failure although the reply ends in the success terminator.
_TEXT_ERROR = re.compile(r"(ERROR\b(?!\[)|Error - )")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")


@dataclass(frozen=True)
class Reply:
    """One complete answer: payload lines, and ``error`` = (code, text) for an ``ERROR[n]`` reply."""

    lines: tuple[str, ...]
    error: tuple[int, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        """The payload as one string (lines joined by ``\\n``)."""
        return "\n".join(self.lines)

    @property
    def text_error(self) -> str | None:
        """The first payload line that reports a failure in plain text (``ERROR: …``), if any."""
        return next((line for line in self.lines if _TEXT_ERROR.match(line)), None)


@dataclass(frozen=True)
class Garbage:
    """Bytes that cannot be part of any reply (non-ASCII, control characters, overlong)."""

    data: bytes
    reason: str


Event = Reply | Garbage


class ReplyDecoder:
    """Incremental decoder: :meth:`feed` any chunk of bytes, get the replies it completes.

    Garbage never blocks the stream: a bad line is reported and dropped, the rest is decoded.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: list[str] = []
        self._pending_bytes = 0

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while True:
            cut = self._buf.find(LINE_END)
            if cut < 0:
                break
            raw = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            self._line(raw, events)
        if len(self._buf) > MAX_LINE_BYTES:
            events.append(Garbage(bytes(self._buf[:64]), f"line longer than {MAX_LINE_BYTES} bytes"))
            self._buf.clear()
        return events

    def _line(self, raw: bytes, events: list[Event]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            events.append(Garbage(raw, "non-ASCII bytes"))
            return
        if not _PRINTABLE.fullmatch(line):
            events.append(Garbage(raw, "control characters"))
            return
        m = _ERROR_LINE.match(line)
        if m:
            events.append(Reply(tuple(self._pending), (int(m.group(1)), m.group(2))))
            self._clear_pending()
            return
        if line.endswith(TERMINATOR):
            head = line[: -len(TERMINATOR)]
            if head:
                self._pending.append(head)
            events.append(Reply(tuple(self._pending)))
            self._clear_pending()
            return
        if not line.strip():
            return  # blank lines carry nothing (and appear between \r and \n of CRLF endings)
        self._pending.append(line)
        self._pending_bytes += len(line) + 1
        if self._pending_bytes > MAX_REPLY_BYTES:
            events.append(Garbage(raw[:64], f"reply longer than {MAX_REPLY_BYTES} bytes"))
            self._clear_pending()

    def _clear_pending(self) -> None:
        self._pending = []
        self._pending_bytes = 0

    def take_pending(self) -> list[str]:
        """Remove and return complete lines not yet closed by a terminator (unsolicited output)."""
        lines = self._pending
        self._clear_pending()
        return lines

    @property
    def idle(self) -> bool:
        """True when no partial line or pending payload is buffered."""
        return not self._buf and not self._pending

    def reset(self) -> None:
        self._buf.clear()
        self._clear_pending()


def decode_all(data: bytes) -> list[Event]:
    """Decode a complete byte string in one go (tests, tools)."""
    return ReplyDecoder().feed(data)


def encode_command(name: str, *args: int | str) -> bytes:
    """One command line: ``name.arg1.arg2\\n`` as ASCII bytes, refusing what the firmware would mangle.

    Integers must be non-negative: the firmware parses every number with ``strtoul`` and casts it,
    so a minus sign would silently wrap.
    """
    if any(isinstance(a, bool) for a in args):
        raise ArgumentRangeError(f"command {name!r}: boolean argument; pass 0 or 1")
    parts = [name, *(str(a) for a in args)]
    for p in parts:
        if not p or not _PRINTABLE.fullmatch(p) or any(c in p for c in ".\n\r\t ") or not p.isascii():
            raise ArgumentRangeError(
                f"command {name!r}: argument {p!r} is not a plain ASCII token; arguments may not be "
                "empty or contain '.', spaces or line breaks"
            )
    for a in args:
        if isinstance(a, int) and a < 0:
            raise ArgumentRangeError(
                f"command {name!r}: argument {a} is negative; the firmware parses unsigned numbers and "
                "would wrap it. Expected a value >= 0"
            )
    line = (DELIMITER.join(parts) + "\n").encode("ascii")
    if len(line) > MAX_COMMAND_BYTES:
        raise ArgumentRangeError(
            f"command {name!r} is {len(line)} bytes long; the firmware drops lines over its buffer, "
            f"so the bridge sends at most {MAX_COMMAND_BYTES}. Split it (fewer LEDs per command)"
        )
    return line


def command_name(line: str | bytes) -> str:
    """The command word of a line (``'l'`` for ``l.5.9``)."""
    text = line.decode("ascii", "replace") if isinstance(line, bytes) else line
    return text.strip().split(DELIMITER, 1)[0]
