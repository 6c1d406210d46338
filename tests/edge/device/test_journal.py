"""Log lines journald reads as priorities <0>..<7>."""

from __future__ import annotations

import logging

import pytest

from edge.device.journal import JournalFormatter, syslog_priority


@pytest.mark.parametrize(("level", "priority"), [
    (logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (logging.CRITICAL, 2),
    (logging.INFO + 5, 6), (logging.ERROR + 1, 3), (5, 7), (logging.CRITICAL + 10, 1),
])
def test_python_levels_map_to_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_every_line_starts_with_a_priority_journald_reads() -> None:
    fmt = JournalFormatter()
    for level, prefix in ((logging.ERROR, "<3>ERROR"), (logging.WARNING, "<4>WARNING"), (logging.INFO, "<6>INFO"),
                          (logging.DEBUG, "<7>DEBUG")):
        record = logging.LogRecord("edge.device.app", level, __file__, 1, "field %d failed", (7,), None)
        assert fmt.format(record) == f"{prefix} edge.device.app: field 7 failed"


def test_a_traceback_stays_on_the_records_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("edge.device.app", logging.CRITICAL, __file__, 1, "stage died", (), sys.exc_info())
    line = JournalFormatter().format(record)
    assert line.startswith("<2>CRITICAL edge.device.app: stage died\\nTraceback") and "\n" not in line
    assert "RuntimeError: boom" in line
