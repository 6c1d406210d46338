"""Second check of the convolutional white-cell finder: each candidate looked at closely (torch-free).

At 1 µm per pixel (:mod:`trainer.wbc.cnn`) a white cell's nucleus is a blob: lobes, the rim of
cytoplasm around a lymphocyte's round nucleus and granules are mostly lost, so platelet clumps,
dense red cells, smudged cells and stain precipitate pass as cells. Here every heat-map maximum at or
above the verifier's ``candidate_threshold`` is cut out at ``VERIFY_UM`` µm per pixel (``CROP_PX`` px
= 40 µm square, the cell and its neighbours) from the same lab-independent input as the first stage
(the image's own flat field, optical density, each channel over the red cells' median; plus the
illuminated-field mask) and scored by a small CNN (:mod:`trainer.wbc.verify_model`, ONNX,
one CPU thread). The final score is ``s1 ** (1 - weight) * s2 ** weight`` (first-stage heat, second-
stage probability); ``weight`` and the final ``threshold`` live in the model's metadata, chosen on images
the verifier never trained on (the trainer's hold-out, or out-of-fold scores with
:mod:`trainer.wbc.verify_ensemble` ``--oof``, as for the shipped one). Trained by
:mod:`trainer.wbc.verify_train`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from trainer.errors import TrainerError
from trainer.wbc.density import Density
from trainer.wbc.session import onnx_session

SHIPPED_VERIFY = Path(__file__).with_name("wbc_verify.onnx")
VERIFY_UM = 0.5  # µm per pixel of the crops
CROP_PX = 80  # crop side at VERIFY_UM: 40 µm
DENSITY_CLIP = 10.0


class Verifier(NamedTuple):
    session: ort.InferenceSession
    weight: float  # of the second stage in the geometric mean of the two scores
    threshold: float  # on the combined score
    candidate_threshold: float  # first-stage heat that makes a candidate


@functools.lru_cache(maxsize=4)
def load_verifier(path: str = str(SHIPPED_VERIFY)) -> Verifier:
    """The ONNX Runtime session of a verifier written by
    :func:`trainer.wbc.verify_model.export_verifier` and its stored choices."""
    p = Path(path)
    session = onnx_session(p, f"white-cell verifier not found at {p}; train one with python -m "
                              "trainer.wbc.verify_train or set wbc.stage2 = 'off'")
    meta = session.get_modelmeta().custom_metadata_map
    need = ("weight", "threshold", "candidate_threshold", "crop_px", "verify_um")
    if any(k not in meta for k in need):
        raise TrainerError(f"{p}: expected {need} in the verifier's metadata (written by "
                           f"trainer.wbc.verify_model.export_verifier), found {sorted(meta)}")
    if int(meta["crop_px"]) != CROP_PX or abs(float(meta["verify_um"]) - VERIFY_UM) > 1e-6:
        raise TrainerError(f"{p}: trained on {meta['crop_px']} px crops at {meta['verify_um']} µm/px, this "
                           f"version cuts {CROP_PX} px at {VERIFY_UM}; retrain with trainer.wbc.verify_train")
    return Verifier(session, float(meta["weight"]), float(meta["threshold"]), float(meta["candidate_threshold"]))


def fine_density(d: Density, pixel_size_um: float) -> tuple[NDArray[np.float32], NDArray[np.bool_], float]:
    """``(density (3, h, w), field (h, w), zoom)`` at ``VERIFY_UM``: the full-resolution OD of
    ``d`` resampled (area average when shrinking), over the same per-channel reference, clipped to
    ``DENSITY_CLIP``; ``zoom`` = fine px per image px."""
    zoom = pixel_size_um / VERIFY_UM
    h, w = d.od.shape[1:]
    size = (max(round(w * zoom), 8), max(round(h * zoom), 8))
    interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    fine = np.stack([cv2.resize(c, size, interpolation=interp) for c in d.od]) / d.ref[:, None, None]
    field = cv2.resize(d.field_full.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return np.clip(fine, 0, DENSITY_CLIP).astype(np.float32), field, zoom


def crops(density: NDArray[np.float32], field: NDArray[np.bool_], xy: NDArray[Any], side: int = CROP_PX
          ) -> NDArray[np.float32]:
    """``(n, 4, side, side)``: density (3 channels) and field mask around the points ``xy`` ``(n, 2)``
    (x, y in the same pixels), zero (no field) beyond the image."""
    pts = np.asarray(xy, np.float32).reshape(-1, 2)
    half = side // 2
    planes = np.concatenate([density, field[None].astype(np.float32)])
    pad = np.pad(planes, ((0, 0), (half, half), (half, half)))
    out = np.zeros((len(pts), 4, side, side), np.float32)
    h, w = field.shape
    for i, (x, y) in enumerate(pts):
        c, r = int(np.clip(round(float(x)), 0, w - 1)), int(np.clip(round(float(y)), 0, h - 1))
        out[i] = pad[:, r:r + side, c:c + side]  # pad offset half cancels the -half
    return out


def combine(s1: NDArray[np.float32], s2: NDArray[np.float32], weight: float) -> NDArray[np.float32]:
    """The final score ``s1 ** (1 - weight) * s2 ** weight`` (scores in [0, 1], ``weight`` in [0, 1])."""
    if not 0 <= weight <= 1:
        raise ValueError(f"expected a second-stage weight in [0, 1], found {weight}")
    a, b = np.clip(np.asarray(s1, np.float64), 1e-6, 1), np.clip(np.asarray(s2, np.float64), 1e-6, 1)
    return np.asarray(np.exp((1 - weight) * np.log(a) + weight * np.log(b)), np.float32)


def verify_probability(v: Verifier, x: NDArray[np.float32], batch: int = 64) -> NDArray[np.float32]:
    """The second stage's white-cell probability ``(n,)`` of crops ``(n, 4, CROP_PX, CROP_PX)``."""
    out = [np.zeros(0, np.float32)]
    for k in range(0, len(x), batch):
        z = np.asarray(v.session.run(["logits"], {"crops": np.ascontiguousarray(x[k:k + batch])})[0], np.float32)
        out.append(0.5 * (1.0 + np.tanh(0.5 * z.reshape(-1))))
    return np.concatenate(out).astype(np.float32)


def verify_scores(v: Verifier, d: Density, pixel_size_um: float, image_xy: NDArray[np.float32],
                  s1: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``(second-stage probability, combined score)`` ``(n,)`` of candidates at image pixels
    ``image_xy`` ``(n, 2)`` whose first-stage heat is ``s1``."""
    if not len(s1):
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    fine, field, zoom = fine_density(d, pixel_size_um)
    xy = (np.asarray(image_xy, np.float32).reshape(-1, 2) + 0.5) * zoom - 0.5
    p2 = verify_probability(v, crops(fine, field, xy))
    return p2, combine(np.asarray(s1, np.float32), p2, v.weight)
