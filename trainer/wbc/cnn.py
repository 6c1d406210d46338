"""The convolutional white-cell finder (``wbc.method = "cnn"``), torch-free at run time.

Input: the normalised stain density at 1 µm per pixel and the illuminated field
(:func:`trainer.wbc.density.net_input`: the image's own flat field, optical density, each
channel over the red cells' median), so the same cell looks alike from any lab, camera or stain
batch. A small U-Net (:mod:`trainer.wbc.cnn_model`, ~65 k weights, receptive field ~38 µm:
it sees a cell's shape and its neighbours, which the per-pixel ``net`` cannot) turns it into a
heat map of white-cell centres; local maxima above the threshold stored with the model, at least
``NMS_UM`` apart, are the cells. The model ships as ONNX (``wbc_cnn.onnx``, no pickle) and runs in
ONNX Runtime on one CPU thread; it was trained by :mod:`trainer.wbc.cnn_train` (see README).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from trainer.errors import TrainerError
from trainer.wbc.density import NMS_UM, WORK_UM, density_input, near_edge, peaks, to_image_px
from trainer.wbc.session import onnx_session

log = logging.getLogger(__name__)

SHIPPED_CNN = Path(__file__).with_name("wbc_cnn.onnx")
DENSITY_CLIP = 10.0  # the net sees normalised density up to this (nuclei reach ~3-6 x the red cells)


class CnnModel(NamedTuple):
    session: ort.InferenceSession
    threshold: float
    stride: int
    alpha: float = 0.0  # relative threshold = alpha x the set's reference (0 = the model has none)


@functools.lru_cache(maxsize=4)
def load_cnn(path: str = str(SHIPPED_CNN)) -> CnnModel:
    """The ONNX Runtime session of a model written by ``export_onnx``, its threshold and stride."""
    p = Path(path)
    session = onnx_session(p, f"white-cell CNN not found at {p}; train one with python -m "
                              "trainer.wbc.cnn_train or use wbc.method = 'net'")
    meta = session.get_modelmeta().custom_metadata_map
    if "threshold" not in meta or "stride" not in meta:
        raise TrainerError(f"{p}: expected 'threshold' and 'stride' in the model's metadata (written by "
                           f"trainer.wbc.cnn_model.export_onnx), found {sorted(meta)}")
    return CnnModel(session, float(meta["threshold"]), int(meta["stride"]), float(meta.get("relative_alpha", 0)))


def cnn_input(density: NDArray[np.float32], field: NDArray[np.bool_], stride: int) -> NDArray[np.float32]:
    """The net's input ``(1, 4, h', w')``: density clipped to ``DENSITY_CLIP`` and the field mask,
    zero-padded at the bottom and right to multiples of ``stride`` (outside the image = no field)."""
    h, w = field.shape
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    x = np.zeros((1, 4, hp, wp), np.float32)
    x[0, :3, :h, :w] = np.minimum(density, DENSITY_CLIP)
    x[0, 3, :h, :w] = field
    return x


def sigmoid(z: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), np.float32)  # overflow-free logistic


def cnn_heat_map(model: CnnModel, density: NDArray[np.float32], field: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Centre probability ``(h, w)`` of normalised density ``(3, h, w)`` and its field ``(h, w)``."""
    x = cnn_input(density, field, model.stride)
    logits = model.session.run(["logits"], {"density": x})[0]
    h, w = field.shape
    return sigmoid(np.asarray(logits, np.float32)[0, 0, :h, :w])


def cnn_centres(rgb: NDArray[Any], pixel_size_um: float, threshold: float | None = None, model: str = "",
                verify: str = "off") -> list[tuple[float, float, float, bool]]:
    """White-cell centres ``(x, y, score, cut)`` in image pixels of a linear RGB image ``(3, H, W)``.

    ``threshold``: heat-map level of a cell (None = the model's own; with a second check, the level
    of the combined score); ``model``: an ``.onnx`` path ("" = the shipped one); ``verify``: the
    second check (:mod:`trainer.wbc.verify`): ``"off"``, ``"shipped"`` or an ``.onnx`` path.
    ``cut``: the centre lies within a white-cell radius (6 µm) of the image border or the field stop,
    so part of the cell is outside the picture."""
    m = load_cnn(model or str(SHIPPED_CNN))
    d = density_input(rgb, pixel_size_um)
    prob = cnn_heat_map(m, d.density, d.field)
    edge = near_edge(d.field)
    if verify == "off":
        cells = peaks(prob, m.threshold if threshold is None else threshold, NMS_UM / WORK_UM)
    else:
        from trainer.wbc.verify import SHIPPED_VERIFY, load_verifier, verify_scores

        v = load_verifier(str(SHIPPED_VERIFY) if verify == "shipped" else verify)
        cands = peaks(prob, v.candidate_threshold, NMS_UM / WORK_UM)
        xy = np.array([to_image_px(r, c, d.zoom) for r, c, _ in cands], np.float32).reshape(-1, 2)
        _, score = verify_scores(v, d, pixel_size_um, xy, np.array([p for _, _, p in cands], np.float32))
        thr = v.threshold if threshold is None else threshold
        cells = [(r, c, float(s)) for (r, c, _), s in zip(cands, score, strict=True) if s >= thr]
    return [(*to_image_px(r, c, d.zoom), p, bool(edge[r, c])) for r, c, p in cells]
