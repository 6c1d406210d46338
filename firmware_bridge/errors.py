"""Exceptions of firmware_bridge. Messages say what was expected, what was found and what to do."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error raised by firmware_bridge."""


class GeometryError(BridgeError, ValueError):
    """An LED array geometry is impossible or a profile name is unknown."""


class RecipeError(BridgeError, ValueError):
    """A stack recipe is unknown, malformed or cannot be resolved against a geometry."""


class ArgumentRangeError(BridgeError, ValueError):
    """A command argument is outside what the device accepts; refused before anything is sent."""


class ProtocolError(BridgeError):
    """The device said something the illuminate dialect does not allow here (or is no illuminate)."""


class SequenceInterrupted(ProtocolError):
    """A firmware sequence or scan reported fewer patterns than it was asked to show."""


class FirmwareError(BridgeError):
    """The firmware answered ``ERROR[<code>]: <text>`` to a command.

    ``code`` is 0 when the firmware printed the failure as a text line and then the success
    terminator (over-current: ``ERROR: Current output (…) exceeds maximum current output (…)``).
    """

    def __init__(self, code: int, text: str, command: str = "", port: str = "") -> None:
        self.code = code
        self.text = text
        self.command = command
        self.port = port
        where = f" on {port}" if port else ""
        said = f"ERROR[{code}] {text}" if code else f"{text!r} (printed before the success terminator)"
        super().__init__(
            f"device{where} refused {command!r}: {said} "
            "(check the command's arguments against `stainless-led console` help, and for a current "
            "limit light fewer LEDs or lower the brightness)"
        )


class LinkError(BridgeError):
    """The serial link to the controller failed (I/O error, cannot open, cannot reconnect)."""


class DeviceTimeout(LinkError, TimeoutError):
    """No complete reply to a command within its timeout."""

    def __init__(self, command: str, port: str, timeout_s: float, received: str = "") -> None:
        self.command = command
        self.port = port
        self.timeout_s = timeout_s
        self.received = received
        found = f"found only {received[:120]!r}" if received else "found nothing"
        super().__init__(
            f"no reply to {command!r} from {port} within {timeout_s:.3g} s; expected a line ending in "
            f"'-==-' or 'ERROR[n]', {found}. Check the cable/power, that nothing else holds the port, "
            "and the baud rate"
        )


class DeviceVanished(LinkError):
    """The port disappeared (unplugged, emulator killed); the next request reconnects."""
