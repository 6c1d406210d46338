"""The model's threads first: the processing thread at a lower scheduling priority (Linux).

On a CPU-only device the model and the work around it share the cores. The model's calling thread is
the critical path of every batch (OpenVINO's latency mode runs most of a batch on it, its pool thread
helps with the rest); when the processing thread (QC, detection, crops, cell inputs: ~4–5 ms of CPU per
cell) holds the core that thread wants, the batch waits. ``[daemon] process_nice`` raises the processing
thread's niceness by that much, so the scheduler gives a core to the model's thread first and processing
takes what the model leaves idle. Processing is upstream of a deep queue (``[batching] queue_size``
cells), so being held back for a batch costs nothing while the queue has cells; and it runs at full
speed whenever the model waits. Publishing stays at the model's priority: it is downstream, behind a
queue of two batches, and a starved publisher would stop the model.

Linux only: ``setpriority(PRIO_PROCESS, tid)`` changes one thread there (elsewhere the same call would
renice a *process* of that id). Raising niceness needs no privilege.

:func:`opencv_in_calling_thread`: OpenCV's own pool (one worker per core) otherwise splits the processing
and publishing threads' blurs, resizes, matrix products and DFTs across the cores; its workers wait for
work by spinning and run on the cores the model needs, and their CPU time showed up as the model pool's
(both are threads named after the process). The daemon's threads already fill the cores, so OpenCV
runs each call in the thread that makes it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

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


def opencv_in_calling_thread() -> int:
    """Make OpenCV run every call in the calling thread (``cv2.setNumThreads(1)``, process-wide); returns the
    number of threads it used before."""
    import cv2

    before = int(cv2.getNumThreads())
    cv2.setNumThreads(1)
    return before
