"""The served emulator's line cutting, without a transport: golden byte strings, split at every offset."""

from __future__ import annotations

import pytest

from firmware_bridge.emulator.lines import LineBuffer

STREAM = b"machine\nsb.7\r\nl.3\rversion\n"
LINES = ["machine", "sb.7", "", "l.3", "version"]  # \r\n is two line ends: an empty line between


def _cut(chunks: list[bytes]) -> tuple[list[str], LineBuffer]:
    buf, out = LineBuffer(), []
    for t, chunk in enumerate(chunks):
        buf.append(chunk)
        while (line := buf.next_line()) is not None:
            out.append(line)
        buf.end_read(float(t))
    return out, buf


@pytest.mark.parametrize("offset", range(len(STREAM) + 1))
def test_lines_are_the_same_wherever_the_input_splits(offset: int) -> None:
    lines, buf = _cut([STREAM[:offset], STREAM[offset:]])
    assert lines == LINES and len(buf) == 0 and buf.partial_since is None


def test_a_partial_line_waits_from_the_end_of_its_read() -> None:
    lines, buf = _cut([b"l.1\nl.", b"2"])
    assert lines == ["l.1"] and len(buf) == 3 and buf.partial_since == 1.0


def test_take_partial_loses_the_rest_of_that_line_only() -> None:
    buf = LineBuffer()
    buf.append(b"l.1")
    assert buf.end_read(5.0) and buf.take_partial() == "l.1" and buf.partial_since is None
    buf.append(b"2")  # still the rest of the split line
    buf.append(b"3\nversion\n")
    assert buf.next_line() == "version" and buf.next_line() is None


def test_clear_counts_what_it_discards_and_forgets_a_split_line() -> None:
    buf = LineBuffer()
    buf.append(b"l.7\nl.")
    assert buf.clear() == 6 and len(buf) == 0
    buf.append(b"l.5")
    buf.take_partial()
    buf.clear()
    buf.append(b"x\n")  # after a flush nothing is skipped any more
    assert buf.next_line() == "x"
