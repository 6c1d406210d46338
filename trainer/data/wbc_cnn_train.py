"""Train the convolutional white-cell finder (:mod:`trainer.data.wbc_cnn`) on labelled photograph folders.

    python -m trainer.data.wbc_cnn_train --set DIR=PIXEL_UM|auto [--set ...] --out wbc_cnn.onnx
        [--steps 1500] [--batch 12] [--versions 6] [--holdout 0.15] [--seed 0] [--cache DIR]

Each ``DIR`` holds ``images/`` and ``labels/`` (YOLO or VOC, :mod:`trainer.data.labelled`);
``PIXEL_UM`` is its pixel size (µm), or ``auto`` (the median red-cell estimate over the folder).
A ``holdout`` fraction of every folder's images never trains; it only chooses the detection
threshold (best mean F1 over the folders under the bench's match rule). Every training image is
seen as ``versions`` photographs: itself and ``versions - 1`` others from another lab and camera
(:mod:`trainer.data.wbc_cnn_aug`, applied before the flat field and the density), each at a pixel
size off by up to ±30 %; crops get random flips and 90° turns. Folders weigh the same whatever
their size. Labels near the image border follow each lab's habit (some leave cut cells out), so
the loss ignores a 6 µm band along it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from core.images import read_rgb
from trainer.data.labelled import Box, match, read_boxes
from trainer.data.wbc import srgb_to_linear
from trainer.data.wbc_cnn import DENSITY_CLIP, cnn_input, sigmoid
from trainer.data.wbc_cnn_aug import lab_jitter
from trainer.data.wbc_cnn_model import STRIDE, WbcCnn, export_onnx
from trainer.data.wbc_density import CUT_UM, NMS_UM, WORK_UM, net_input, peaks, to_image_px
from trainer.data.wbc_net_train import split_set

log = logging.getLogger(__name__)

SCALE_JITTER = 0.3  # log pixel size spread (±30 %)


@dataclass(frozen=True)
class View:
    """One photograph as the net sees it: density ``(3, h, w)`` float16, field, centres ``(n, 3)``
    (x, y, box side) in work px."""

    density: NDArray[np.float16]
    field: NDArray[np.bool_]
    centres: NDArray[np.float32]


def _linear(path: Path) -> NDArray[np.float32]:
    """A photograph as linear RGB ``(3, H, W)`` (8-bit files are sRGB)."""
    rgb = read_rgb(path)
    return srgb_to_linear(rgb) if rgb.dtype == np.uint8 else rgb.astype(np.float32)


def views_of(path: Path, pixel_um: float, versions: int, seed: int) -> list[View]:
    """The photograph itself and ``versions - 1`` jittered versions (lab, camera, scale)."""
    rng = np.random.default_rng([seed, int(hashlib.sha1(path.name.encode()).hexdigest()[:8], 16)])
    rgb = _linear(path)
    boxes = read_boxes(path, rgb.shape[2], rgb.shape[1])
    out = []
    for k in range(versions):
        img, ps = (rgb, pixel_um) if k == 0 else (lab_jitter(rgb, pixel_um, rng),
                                                   pixel_um * math.exp(rng.uniform(-SCALE_JITTER, SCALE_JITTER)))
        dens, field, zoom = net_input(img, ps)
        c = np.array([[((b.x0 + b.x1) / 2 + 0.5) * zoom - 0.5, ((b.y0 + b.y1) / 2 + 0.5) * zoom - 0.5,
                       max(b.x1 - b.x0, b.y1 - b.y0) * zoom] for b in boxes], np.float32).reshape(-1, 3)
        out.append(View(np.minimum(dens, DENSITY_CLIP).astype(np.float16), field, c))
    return out


def cached_views(path: Path, pixel_um: float, versions: int, seed: int, cache: Path | None) -> list[View]:
    """:func:`views_of`, stored as plain ``.npz`` under ``cache`` (reused by later runs) when given."""
    if cache is None:
        return views_of(path, pixel_um, versions, seed)
    key = hashlib.sha1(f"{path.resolve()}|{pixel_um:.5f}|{versions}|{seed}|v1".encode()).hexdigest()[:16]
    f = cache / f"{path.stem[:40]}-{key}.npz"
    if f.is_file():
        with np.load(f, allow_pickle=False) as z:
            return [View(z[f"d{k}"], z[f"f{k}"], z[f"c{k}"]) for k in range(versions)]
    views = views_of(path, pixel_um, versions, seed)
    cache.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}
    for k, v in enumerate(views):
        arrays |= {f"d{k}": v.density, f"f{k}": v.field, f"c{k}": v.centres}
    np.savez(f, **arrays)
    return views


def target(h: int, w: int, centres: NDArray[np.float32]) -> NDArray[np.float32]:
    """Gaussian bumps (peak 1) at the centres ``(n, 3)``, σ 15 % of the box side (≥ 1.5 px)."""
    t = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for x, y, s in centres:
        sig = max(0.15 * float(s), 1.5)
        t = np.maximum(t, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig**2)))
    return t


def crop(view: View, size: int, rng: np.random.Generator) -> tuple[NDArray[np.float32], ...]:
    """A ``size``² crop ``(input (4, s, s), target (s, s), weight (s, s))``, centred near a labelled
    cell 60 % of the time, padded with no-field zeros, randomly flipped and turned. ``weight`` is 0
    outside the image and within ``CUT_UM`` of its border."""
    h, w = view.field.shape
    if len(view.centres) and rng.random() < 0.6:
        cx, cy, _ = view.centres[rng.integers(len(view.centres))]
        x0 = int(cx + rng.uniform(-size / 3, size / 3)) - size // 2
        y0 = int(cy + rng.uniform(-size / 3, size / 3)) - size // 2
    else:
        x0 = int(rng.integers(min(0, w - size), max(w - size, 0) + 1))
        y0 = int(rng.integers(min(0, h - size), max(h - size, 0) + 1))
    full = cnn_input(view.density.astype(np.float32), view.field, 1)[0]
    band = max(round(CUT_UM / WORK_UM), 1)
    weight = np.zeros((h, w), np.float32)
    weight[band:h - band, band:w - band] = 1
    tgt = target(h, w, view.centres)
    planes = np.concatenate([full, tgt[None], weight[None]])
    out = np.zeros((planes.shape[0], size, size), np.float32)
    sy, sx = slice(max(y0, 0), min(y0 + size, h)), slice(max(x0, 0), min(x0 + size, w))
    out[:, sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = planes[:, sy, sx]
    out = np.rot90(out, int(rng.integers(4)), axes=(1, 2))
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    out = np.ascontiguousarray(out)
    return out[:4], out[4], out[5]


def train(groups: list[list[list[View]]], steps: int, seed: int, batch: int = 16, size: int = 96,
          lr: float = 2e-3) -> WbcCnn:
    """Fit the U-Net with weighted soft-target BCE; every step draws equally from every folder."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = WbcCnn().to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    net.train()
    t0, running = time.perf_counter(), 0.0
    for step in range(steps):
        items = []
        for k in range(batch):
            images = groups[k % len(groups)]
            views = images[rng.integers(len(images))]
            items.append(crop(views[rng.integers(len(views))], size, rng))
        x, t, wt = (torch.from_numpy(np.stack(a)) for a in zip(*items, strict=True))
        logits = net(x.to(memory_format=torch.channels_last))[:, 0]
        wt = wt * (1 + 4 * t)
        loss = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * wt).sum() / wt.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * float(loss.detach()) if step else float(loss.detach())
        if step % 200 == 0 or step == steps - 1:
            log.info("step %d loss %.4f (%.0f s)", step, running, time.perf_counter() - t0)
    return net.eval()


def torch_heat_map(net: WbcCnn, view: View) -> NDArray[np.float32]:
    """Centre probability ``(h, w)`` of a view with the torch net (for choosing the threshold)."""
    x = cnn_input(view.density.astype(np.float32), view.field, STRIDE)
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    h, w = view.field.shape
    return sigmoid(logits[0, 0, :h, :w])


def set_f1(probs: list[NDArray[np.float32]], samples: list[tuple[list[Box], float]], threshold: float
           ) -> tuple[float, float, float]:
    """``(recall, precision, F1)`` of heat maps under the bench's match rule (5 px tolerance)."""
    nb = nf = nd = nc = 0
    for prob, (boxes, zoom) in zip(probs, samples, strict=True):
        pts = [to_image_px(r, c, zoom) for r, c, _ in peaks(prob, threshold, NMS_UM / WORK_UM)]
        found, correct = match(pts, boxes, 5.0)
        nb, nf, nd, nc = nb + len(found), nf + sum(found), nd + len(correct), nc + sum(correct)
    r, p = nf / max(nb, 1), nc / max(nd, 1)
    return r, p, 2 * r * p / max(r + p, 1e-9)


def best_threshold(net: WbcCnn, holdout: list[list[tuple[Path, float]]]) -> tuple[float, float]:
    """The threshold of best mean F1 over the folders' held-out images, and that F1."""
    per_set = []
    for images in holdout:
        probs, samples = [], []
        for path, pixel_um in images:
            rgb = _linear(path)
            dens, field, zoom = net_input(rgb, pixel_um)
            probs.append(torch_heat_map(net, View(dens.astype(np.float16), field, np.zeros((0, 3), np.float32))))
            samples.append((read_boxes(path, rgb.shape[2], rgb.shape[1]), zoom))
        per_set.append((probs, samples))
    best = (-1.0, 0.5)
    for thr in np.arange(0.1, 0.91, 0.025):
        scores = [set_f1(p, s, float(thr)) for p, s in per_set]
        f1 = float(np.mean([f for _, _, f in scores]))
        log.info("  threshold %.3f %s", thr, "  ".join(f"R {r:.3f} P {p:.3f}" for r, p, _ in scores))
        if f1 > best[0]:
            best = (f1, float(thr))
    return best[1], best[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True, help="the ONNX model to write")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=12, help="crops of 96 µm per step")
    p.add_argument("--versions", type=int, default=6, help="views per training image (1 = no jitter)")
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None, help="folder for the jittered views (reused by later runs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    groups, holdout = [], []
    t0 = time.perf_counter()
    for spec in args.set:
        pixel_um, held, fit = split_set(spec, args.holdout, rng)
        holdout.append([(im, pixel_um) for im in held])
        groups.append([cached_views(im, pixel_um, args.versions, args.seed, args.cache) for im in fit])
        log.info("  views ready (%.0f s)", time.perf_counter() - t0)
    net = train(groups, args.steps, args.seed, batch=args.batch)
    thr, f1 = best_threshold(net, holdout) if any(holdout) else (0.5, float("nan"))
    log.info("threshold %.3f (mean F1 %.3f on the held-out images)", thr, f1)
    export_onnx(net, args.out, thr, notes=f"trained on {', '.join(args.set)}; steps {args.steps}, "
                f"batch {args.batch}, versions {args.versions}, holdout {args.holdout}, seed {args.seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
