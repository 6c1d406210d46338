"""Stack QC: saturation, focus, PLS-vs-brightfield misalignment, empty field (pure functions).

Flags travel with every published result of a field; the ones listed in ``QcConfig.reject`` drop
the field before detection (it is reported, not stained). Misalignment is the shift between the
brightfield image and the mean of the single brightfield-LED images (which together make the same
picture): a stage slip between captures shows up as a phase-correlation peak away from zero —
the check seed 000 lacked (:func:`core.measures.pls_shift`, the dataset builder's check too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from core.measures import median_and_percentile, pls_shift
from edge.device.config import QcConfig
from edge.device.stack import Stack

#: The misalignment check measures on the central 128 x 128 px of the field (a slip moves the whole
#: field): 7.8 -> 3.1 ms CPU per 256² field, within 0.15 µm of the whole field's figure on the bench
#: (``tests/edge/device/test_qc_window.py``), against a flag threshold of 0.6 µm.
MISALIGNMENT_WINDOW_PX = 128


@dataclass(frozen=True)
class QcReport:
    flags: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    rejected: bool = False


def saturation_fraction(pixels: NDArray[np.uint16], max_adu: int) -> float:
    """Fraction of pixels at the top of the ADC range, over the given planes ``(N, C, H, W)``."""
    if pixels.size == 0:
        return 0.0
    return float(np.count_nonzero(pixels >= max_adu)) / pixels.size


def saturated_fraction_of_planes(pixels: NDArray[np.uint16], planes: list[int], max_adu: int) -> float:
    """:func:`saturation_fraction` of ``pixels[planes]`` without copying them: a plane whose maximum stays
    below ``max_adu`` (most of them) costs one pass of ``max``, and only the others are counted."""
    if not planes or pixels[0].size == 0:
        return 0.0
    hits = sum(int(np.count_nonzero(pixels[i] >= max_adu)) for i in planes if pixels[i].max() >= max_adu)
    return float(hits) / (len(planes) * pixels[0].size)


def focus_score(grey: NDArray[np.float32]) -> float:
    """Normalised variance of the Laplacian of a grey image ``(H, W)`` (scale-free; higher = sharper)."""
    mean = float(grey.mean())
    if mean <= 0:
        return 0.0
    lap = cv2.Laplacian(grey / np.float32(mean), cv2.CV_32F, ksize=3)
    return float(lap.var())


def empty_ratio(energy: NDArray[np.float32]) -> float:
    """99th percentile over median of a smoothed darkfield energy map: ≈ 1 on an empty field."""
    e = np.asarray(cv2.GaussianBlur(energy, (0, 0), 2.0), np.float32)
    med, top = median_and_percentile(e, 99.0)
    return top / med if med > 0 else 1.0


def run_qc(stack: Stack, energy: NDArray[np.float32], config: QcConfig) -> QcReport:
    """Every check on one stack; ``energy`` is the darkfield energy map the detector uses."""
    px = stack.pixels
    bf_i = stack.brightfield_index()
    bf = px[bf_i].astype(np.float32).mean(axis=0) - np.float32(stack.black_level)
    normal = stack.plane_indices(exposure_class="normal") + stack.plane_indices(exposure_class="low")
    metrics = {"saturation": saturated_fraction_of_planes(px, sorted(normal), stack.max_adu),
               "focus": focus_score(bf)}
    singles = [i for i, p in enumerate(stack.planes) if not p.darkfield and p.name != "bf"]
    if singles:
        metrics["misalignment_um"] = pls_shift(px, bf_i, singles, stack.black_level,
                                                    MISALIGNMENT_WINDOW_PX).magnitude * stack.pixel_um
    metrics["darkfield_contrast"] = empty_ratio(energy)
    flags = []
    if metrics["saturation"] > config.saturation_max:
        flags.append("saturated")
    if metrics["focus"] < config.focus_min:
        flags.append("out_of_focus")
    if metrics.get("misalignment_um", 0.0) > config.misalignment_max_um:
        flags.append("misaligned")
    if metrics["darkfield_contrast"] < config.empty_energy_max:
        flags.append("empty")
    return QcReport(tuple(flags), metrics, any(f in config.reject for f in flags))
