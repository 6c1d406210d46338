"""Keep the daemon's big per-field arrays in reused memory instead of fresh pages (glibc).

Every field allocates and frees arrays of megabytes: a cell's model input (``132 x 64 x 64``
float32, 2.1 MB), a batch (up to 17 MB), the stacks. glibc serves such requests with ``mmap`` and
returns them to the kernel on ``free`` unless its *dynamic* threshold has been raised by an earlier
larger free, so whether a field pays ~500 page faults per cell depends on allocation history —
measured here: building a field's cell inputs took 10 ms instead of 5 ms once an unrelated
15 MB copy was removed from QC. Fixing the thresholds makes the cost independent of that history:
requests up to ``MMAP_THRESHOLD_MB`` come from the heap, and up to ``TRIM_THRESHOLD_MB`` of free
heap is kept for the next field rather than given back and faulted in again. (Resident memory
still grows at the start of a run, with or without this: the in-memory replay spool fills up to
``[spool] max_mb``, ONNX Runtime's arena steps once per new batch shape and batch buffers are added
up to ``[batching] queue_size``'s bound as the queue first gets that deep; then it is flat.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

#: Requests below this many MiB come from the heap (glibc's maximum for its dynamic threshold: 32 MiB).
MMAP_THRESHOLD_MB = 32
#: Free memory at the top of a heap kept for reuse before it is returned to the kernel.
TRIM_THRESHOLD_MB = 128
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def tune_malloc(mmap_threshold_mb: int = MMAP_THRESHOLD_MB, trim_threshold_mb: int = TRIM_THRESHOLD_MB) -> bool:
    """Fix glibc's mmap and trim thresholds for this process; False (and nothing changed) elsewhere
    (macOS, musl) or when glibc refuses the values."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): keep the allocator's defaults
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20))
    log.debug("malloc thresholds: mmap %d MiB, trim %d MiB: %s", mmap_threshold_mb, trim_threshold_mb,
              "set" if ok else "refused")
    return ok
