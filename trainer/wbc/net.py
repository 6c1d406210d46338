"""A small learned white-cell detector (``wbc.method = "net"``): a centre heat map from stain density.

Input: the optical density against the image's own flat field (:mod:`trainer.wbc.flatfield`),
resampled to ``WORK_UM`` µm per pixel, each channel divided by its median over the stained material
(red cells dominate it), so every lab's red cells look alike and a nucleus stands out by how much
more it absorbs, whatever the stain's hue or strength. Per pixel, multi-scale features of it
(:func:`features`) go through a small MLP (~1.7 k weights, shipped as ``wbc_net.npz`` inside the
package, no pickle) to a heat map of white-cell centres; local maxima above ``net_threshold``
at least ``NMS_UM`` apart are the cells. The net was trained by :mod:`trainer.wbc.net_train` on
labelled photographs (see README).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage as ndi
from torch import nn

from trainer.errors import TrainerError
from trainer.wbc.density import NMS_UM, WORK_UM, near_edge, net_input, peaks, to_image_px

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("wbc_net.npz")


def features(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Per-pixel features ``(N_FEATURES, h, w)`` of normalised OD ``(3, h, w)`` at ``WORK_UM``.

    The OD smoothed at 0–6 µm (colour and density around the pixel, out to a white cell's size),
    a blob response (negative Laplacian of Gaussian of the summed OD at 2, 3 and 4.5 µm: a nucleus
    is a dark blob, a red-cell rim a ring) and the red and blue share of the density (a nucleus
    absorbs relatively more red than eosin does)."""
    out = [x]
    for sig in (1.5, 3.0, 6.0):
        out.append(ndi.gaussian_filter(x, (0, sig, sig)))
    total = x.sum(axis=0)
    blobs = [-(sig**2) * ndi.gaussian_laplace(total, sig) for sig in (2.0, 3.0, 4.5)]
    sm = out[1]
    share = sm / (sm.sum(axis=0, keepdims=True) + 0.3)
    return np.concatenate([*out, np.stack(blobs), share[[0, 2]]]).astype(np.float32)


N_FEATURES = 3 * 4 + 3 + 2


class WbcNet(nn.Module):
    """Per-pixel MLP (1x1 convolutions) on standardised features: centre logits ``(B, 1, h, w)``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, N_FEATURES, 1, 1))
        self.register_buffer("std", torch.ones(1, N_FEATURES, 1, 1))
        self.mlp = nn.Sequential(nn.Conv2d(N_FEATURES, width, 1), nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(),
                                 nn.Conv2d(width, 1, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp((f - self.mean) / self.std)
        return out


def save_net(net: WbcNet, path: Path, threshold: float) -> None:
    """Weights as a plain ``.npz`` (no pickle) with the detection threshold."""
    arrays = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    np.savez_compressed(path, __threshold__=np.float32(threshold), **arrays)


@functools.lru_cache(maxsize=4)
def load_net(path: str = str(SHIPPED)) -> tuple[WbcNet, float]:
    """The net of a ``.npz`` written by :func:`save_net` (eval mode) and its threshold."""
    p = Path(path)
    if not p.is_file():
        raise TrainerError(f"white-cell net weights not found at {p}; train them with "
                           "python -m trainer.wbc.net_train or use wbc.method = 'stain'")
    with np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    threshold = float(arrays.pop("__threshold__"))
    net = WbcNet(width=int(arrays["mlp.0.weight"].shape[0]))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    return net.eval(), threshold


def _np(t: torch.Tensor) -> NDArray[np.float32]:
    return np.asarray(t.detach().numpy(), np.float32)


def heat_map(net: WbcNet, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Centre probability ``(h, w)`` of normalised OD ``(3, h, w)``, smoothed over 1.5 µm."""
    f = features(x)
    h = ((f.reshape(N_FEATURES, -1) - _np(net.mean).reshape(-1, 1)) / _np(net.std).reshape(-1, 1))
    layers = [m for m in net.mlp if isinstance(m, nn.Conv2d)]
    for k, conv in enumerate(layers):  # 1x1 convolutions as matrix products: faster than torch here
        h = _np(conv.weight)[:, :, 0, 0] @ h + _np(conv.bias)[:, None]  # type: ignore[arg-type]
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
    prob = (1.0 / (1.0 + np.exp(-h[0]))).reshape(f.shape[1:]).astype(np.float32)
    return ndi.gaussian_filter(prob, 1.5 / WORK_UM).astype(np.float32)


def net_centres(rgb: NDArray[Any], pixel_size_um: float, threshold: float | None = None, model: str = "",
                stage2: str = "off") -> list[tuple[float, float, float, bool]]:
    """White-cell centres ``(x, y, score, cut)`` in image pixels of a linear RGB image ``(3, H, W)``.

    ``stage2``: ``"off"``, ``"shipped"`` (the second stage in the package,
    :mod:`trainer.wbc.stage2`) or a path to other weights. With a second stage, heat-map
    maxima above its candidate threshold (or ``threshold``) are candidates, ``score`` is its
    probability and only those at or above its threshold are kept; without, maxima above the
    net's own threshold (or ``threshold``) are cells.
    ``cut``: the cell's centre lies within a white-cell radius (6 µm) of the image border or of the
    field stop, so part of it is outside the picture.
    """
    net, thr = load_net(model or str(SHIPPED))
    feats, field, zoom = net_input(rgb, pixel_size_um)
    prob = heat_map(net, feats)
    edge = near_edge(field)
    if stage2 == "off":
        cands = peaks(prob, thr if threshold is None else threshold, NMS_UM / WORK_UM)
    else:
        from trainer.wbc.stage2 import SHIPPED_STAGE2, candidate_features, load_stage2

        second = load_stage2(str(SHIPPED_STAGE2) if stage2 == "shipped" else stage2)
        cands = peaks(prob, second.candidate_threshold if threshold is None else threshold, NMS_UM / WORK_UM)
        p2 = second.predict(candidate_features(feats, prob, field, cands))
        cands = [(r, c, float(p)) for (r, c, _), p in zip(cands, p2, strict=True) if p >= second.threshold]
    return [(*to_image_px(r, c, zoom), p, bool(edge[r, c])) for r, c, p in cands]
