"""NVTX ranges for Nsight Systems (Jetson, RTX) when the ``nvtx`` package is importable; a no-op otherwise.

``with nvtx_range("process/qc"): ...`` marks a stage on the timeline of ``nsys profile``. Without
``nvtx`` installed the context manager does nothing and costs one attribute lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

try:  # optional: pip install nvtx (the NVIDIA Tools Extension bindings)
    import nvtx as _nvtx
except ImportError:  # the usual case on a CPU-only device
    _nvtx = None

#: True when ranges are emitted (``nvtx`` imported).
ENABLED: bool = _nvtx is not None
_annotate: Callable[..., Any] | None = getattr(_nvtx, "annotate", None)


def nvtx_range(name: str) -> contextlib.AbstractContextManager[Any]:
    """A context manager marking ``name`` on the NVTX timeline (``contextlib.nullcontext`` without ``nvtx``)."""
    if _annotate is None:
        return contextlib.nullcontext()
    return _annotate(name, domain="stainless")
