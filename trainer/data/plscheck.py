"""Brightfield vs oblique-PLS misalignment: the check seed 000's error analysis asked for.

The brightfield image of a stack is captured with every LED inside the objective's NA lit at once,
so it is (up to LED weights) the sum of the single-LED oblique brightfield images of the same
stack. If the stage or the sample slipped between the captures, the brightfield plane is shifted
against the PLS planes, and every training pair built from that stack is inconsistent.

:func:`pls_shift` picks the planes from the sidecar; :func:`core.measures.pls_shift` (the daemon's QC
measures the same way) rebuilds a pseudo-brightfield from the oblique planes (each normalised by
its own background level, then averaged) and measures the shift of the real brightfield plane
against it by phase correlation (subpixel). The decision (flag or reject above ``pls.max_shift_px``)
belongs to the builder.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core import measures
from core.measures import PlsShift

log = logging.getLogger(__name__)


def oblique_planes(planes: list[dict[str, Any]], objective_na: float) -> list[int]:
    """Indices of single-LED planes inside the objective's NA (normal exposure)."""
    out = []
    for p in planes:
        if p.get("led") is None or p.get("exposure_class", "normal") != "normal":
            continue
        na_x, na_y = p.get("na_x"), p.get("na_y")
        if na_x is not None and na_y is not None and np.hypot(na_x, na_y) < objective_na:
            out.append(int(p["plane"]))
    return out


def pls_shift(stack: NDArray[np.uint16], planes: list[dict[str, Any]], objective_na: float,
              black_level: float = 0.0) -> PlsShift | None:
    """Shift of the brightfield plane of ``stack`` ``(N, C, H, W)`` against its oblique planes.

    ``planes`` is the ``unstained.json`` plane list. Returns None when the stack has no
    brightfield plane or no oblique brightfield plane to compare with (e.g. a darkfield-only recipe).
    """
    bf = [i for i, p in enumerate(planes) if p.get("led") is None]
    oblique = oblique_planes(planes, objective_na)
    if not bf or not oblique:
        return None
    return measures.pls_shift(stack, bf[0], oblique, black_level)
