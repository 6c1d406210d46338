"""Host bytes cut into command lines as the illuminate firmware cuts them (pure: no I/O, no clock).

Lines end at ``\\n`` or ``\\r``. What arrives after the last line end waits as the *partial* line.
The firmware's split-line quirk is the server's to apply (it knows the time); this buffer gives it
:meth:`LineBuffer.take_partial`, after which the rest of that line, up to its end, is discarded.
"""

from __future__ import annotations


def _line_end(data: bytes | bytearray) -> int:
    """Index of the first ``\\n`` or ``\\r`` in ``data``, or -1."""
    return min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)


class LineBuffer:
    """The serving thread's input buffer: :meth:`append` bytes, :meth:`next_line` complete lines."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_rest = False
        #: When the partial line began waiting (the caller's clock, s); ``None`` when none waits.
        self.partial_since: float | None = None

    def __len__(self) -> int:
        """Bytes buffered: complete lines not yet taken and the partial line."""
        return len(self._buf)

    def append(self, data: bytes) -> None:
        """Add bytes that arrived; after :meth:`take_partial` the rest of that line is dropped first."""
        if self._skip_rest:
            cut = _line_end(data)
            if cut < 0:
                return
            data, self._skip_rest = data[cut + 1:], False
        self._buf += data

    def next_line(self) -> str | None:
        """The next complete line (without its end), or ``None``."""
        cut = _line_end(self._buf)
        if cut < 0:
            return None
        raw = bytes(self._buf[:cut])
        del self._buf[: cut + 1]
        return raw.decode("ascii", "replace")

    def end_read(self, now: float) -> bool:
        """A read has been handled at ``now``: True when a partial line is left (it waits from now)."""
        self.partial_since = now if self._buf else None
        return self.partial_since is not None

    def take_partial(self) -> str:
        """Remove the partial line and return it; the rest of that line, when it comes, is discarded."""
        piece = bytes(self._buf).decode("ascii", "replace")
        self._buf.clear()
        self.partial_since, self._skip_rest = None, True
        return piece

    def clear(self) -> int:
        """Discard everything buffered (an input flush, a new connection); returns the bytes discarded."""
        n = len(self._buf)
        self._buf.clear()
        self.partial_since, self._skip_rest = None, False
        return n
