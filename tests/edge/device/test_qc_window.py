"""The daemon's misalignment check on the central window agrees with the whole field's on bench fields."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.measures import pls_shift
from edge.device.config import QcConfig
from edge.device.qc import MISALIGNMENT_WINDOW_PX
from edge.device.stack import Stack

#: |window − whole field| on the bench, µm: ≤ 0.15 µm at any shift (both are least sure at half a
#: pixel), ≤ 0.05 µm at whole-pixel shifts; the flag threshold is 0.6 µm.
TOLERANCE_UM, WHOLE_PIXEL_TOLERANCE_UM = 0.15, 0.05
SHIFTS_PX = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.5), (1.2, 1.2), (2.0, 0.0), (1.5, 1.4), (3.0, -1.0), (-4.0, 0.0),
             (0.7, -1.9), (0.0, -2.0)]


@pytest.fixture(scope="module")
def fields(bench_fields: list[Stack]) -> list[Stack]:
    return bench_fields[:2]


def _slipped(stack: Stack, dx: float, dy: float) -> np.ndarray:
    """The stack with its brightfield plane moved by (dx, dy) px (bilinear, mirrored edges)."""
    px = stack.pixels.copy()
    bf = stack.brightfield_index()
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    px[bf] = np.stack([np.rint(cv2.warpAffine(c.astype(np.float32), m, c.shape[::-1], flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_REFLECT)) for c in px[bf]]).astype(np.uint16)
    return px


@pytest.mark.parametrize(("dx", "dy"), SHIFTS_PX)
def test_window_misalignment_agrees_with_the_whole_field(fields: list[Stack], dx: float, dy: float) -> None:
    threshold = QcConfig().misalignment_max_um
    for stack in fields:
        singles = [i for i, p in enumerate(stack.planes) if not p.darkfield and p.name != "bf"]
        px = _slipped(stack, dx, dy)
        whole = pls_shift(px, stack.brightfield_index(), singles, stack.black_level).magnitude * stack.pixel_um
        window = pls_shift(px, stack.brightfield_index(), singles, stack.black_level,
                           MISALIGNMENT_WINDOW_PX).magnitude * stack.pixel_um
        tolerance = WHOLE_PIXEL_TOLERANCE_UM if float(dx).is_integer() and float(dy).is_integer() else TOLERANCE_UM
        assert window == pytest.approx(whole, abs=tolerance)
        assert window == pytest.approx(np.hypot(dx, dy) * stack.pixel_um, abs=0.2)
        if abs(whole - threshold) > tolerance:  # the flag the daemon raises is the same
            assert (window > threshold) == (whole > threshold)


def test_window_larger_than_the_field_is_the_whole_field(fields: list[Stack]) -> None:
    stack = fields[0]
    px = _slipped(stack, 1.0, 2.0)
    singles = [i for i, p in enumerate(stack.planes) if not p.darkfield and p.name != "bf"]
    bf = stack.brightfield_index()
    assert pls_shift(px, bf, singles, stack.black_level, 512) == pls_shift(px, bf, singles, stack.black_level)
    with pytest.raises(ValueError, match="too small"):
        pls_shift(px, bf, singles, stack.black_level, 8)
