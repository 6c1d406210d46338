"""Camera counts for raw-input parity tests: model inputs taken back to ``uint16`` counts, with dark and
saturated pixels so the normalisation's clip matters."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge.device.crops import Normalisation


def plane_normalisation(planes: int, seed: int = 0) -> Normalisation:
    """A different black level and white range on every plane (a calibrated camera's), within 12 bits."""
    rng = np.random.default_rng(seed)
    offset, scale = rng.uniform(8, 64, planes), rng.uniform(900, 4000, planes)
    return Normalisation(offset.astype(np.float32), scale.astype(np.float32))


def counts_from_inputs(x: NDArray[np.float32], norm: Normalisation, seed: int = 0) -> NDArray[np.uint16]:
    """``x`` ``(B, N·C, P, P)`` in [0, 1] as counts ``round(x · scale + offset)`` per plane, ~1 % of pixels
    below the black level (0) and ~1 % saturated (65535): ``normalise`` of the result is ``x`` with those
    pixels clipped to 0 and 1."""
    offset, scale = norm.per_channel(x.shape[1])
    counts = np.rint(x * scale[:, None, None] + offset[:, None, None]).astype(np.uint16)
    u = np.random.default_rng(seed).random(counts.shape)
    counts[u < 0.01] = 0
    counts[u > 0.99] = np.iinfo(np.uint16).max
    return counts
