"""The model's threads first: the stages around the model run at a lower scheduling priority (Linux).

On a CPU-only device the model and the work around it (processing: QC, detection, crops; publishing:
fidelity, headers, sends) share the cores. The model's calling thread is the critical path of every
batch (OpenVINO's latency mode runs most of a batch on it, its pool thread helps with the rest); when
processing holds the core it wants, the batch waits. ``[daemon] stage_nice`` raises the niceness of the
processing and publishing threads by that much, so the scheduler gives a core to the model's thread
first and the stages take what the model leaves idle; they still run whenever the model waits for a
batch, so the queue in front of the model never runs dry for lack of their priority.

Linux only: ``setpriority(PRIO_PROCESS, tid)`` changes one thread there (elsewhere the same call would
renice a *process* of that id). Raising niceness needs no privilege.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

#: The largest niceness Linux has.
MAX_NICE = 19


def lowered_nice(current: int, increment: int) -> int:
    """The niceness ``increment`` steps below ``current`` in priority, at most :data:`MAX_NICE` (pure)."""
    if increment < 0:
        raise ValueError(f"lowered_nice: expected an increment >= 0 (lowering only), found {increment}")
    return min(MAX_NICE, current + increment)


def lower_thread_priority(increment: int) -> int | None:
    """Raise the calling thread's niceness by ``increment``; its niceness afterwards, or None when unchanged
    (``increment`` 0, not Linux, or refused — logged)."""
    if increment == 0 or not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        nice = lowered_nice(os.getpriority(os.PRIO_PROCESS, tid), increment)
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        log.warning("could not lower the priority of thread %s by %d: %s", threading.current_thread().name,
                    increment, exc)
        return None
    return nice
