"""Log lines for journald: a ``<N>`` syslog priority prefix that journald reads as the line's priority.

systemd reads a leading ``<N>`` (N = 0 emergency … 7 debug, ``sd-daemon(3)``) on a service's stderr
as the priority of that line. Python's level numbers (10 … 50) are not priorities, so they are mapped
(:func:`syslog_priority`); on a terminal the lines carry a timestamp instead.
"""

from __future__ import annotations

import logging
import sys

#: Python level -> syslog priority (``<3>`` err, ``<4>`` warning, ``<6>`` info, ``<7>`` debug).
SYSLOG_PRIORITIES: tuple[tuple[int, int], ...] = (
    (logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6), (logging.DEBUG, 7),
)


def syslog_priority(levelno: int) -> int:
    """The syslog priority 0..7 of a Python level (levels between two names take the lower one's)."""
    if levelno > logging.CRITICAL:
        return 1  # alert: above anything the standard library logs
    return next((prio for level, prio in SYSLOG_PRIORITIES if levelno >= level), 7)


class JournalFormatter(logging.Formatter):
    """``<N>LEVEL logger: message``, one line per record (tracebacks folded onto it with ``\\n``)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", "\\n")
        return f"<{syslog_priority(record.levelno)}>{text}"


def setup_logging(level: str) -> None:
    """Configure the root logger once: journald lines on a pipe, timestamps on a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JournalFormatter())
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
