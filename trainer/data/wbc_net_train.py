"""Train the white-cell heat-map net (:mod:`trainer.data.wbc_net`) on labelled photograph folders.

    python -m trainer.data.wbc_net_train --set DIR=PIXEL_UM [--set ...] --out wbc_net.npz
        [--steps 3000] [--holdout 0.15] [--seed 0]

Each ``DIR`` holds ``images/`` and ``labels/`` (YOLO or VOC, :mod:`trainer.data.labelled`);
``PIXEL_UM`` is its pixel size (µm), or ``auto`` (the median red-cell estimate over the folder).
A ``holdout`` fraction of every folder's images is kept out of training and used only to choose
the detection threshold (best F1 under the bench's match rule). Augmentation makes the net see
other labs: scale ±30 %, per-channel and overall stain strength, gamma, blur (soft focus), noise,
flips and quarter turns.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from trainer.commands.find_wbc import read_rgb
from trainer.data.labelled import Box, labelled_sets, read_boxes
from trainer.data.rbcscale import folder_pixel_size
from trainer.data.wbc import srgb_to_linear
from trainer.data.wbc_net import NMS_UM, WORK_UM, WbcNet, heat_map, net_input, peaks, save_net

log = logging.getLogger(__name__)
CROP = 64


@dataclass
class Sample:
    feats: NDArray[np.float32]  # (3, h, w) at WORK_UM
    centres: NDArray[np.float32]  # (n, 3): x, y, box size, work px
    boxes: list[Box]  # image px
    zoom: float
    name: str


def _linear(path: Path) -> NDArray[np.float32]:
    rgb = read_rgb(path)
    return srgb_to_linear(rgb) if rgb.dtype == np.uint8 else rgb.astype(np.float32)


def set_pixel_size(images: list[Path], n: int = 20) -> float:
    """Median red-cell pixel-size estimate over up to ``n`` images of a folder (µm)."""
    return folder_pixel_size([_linear(p) for p in images[:: max(len(images) // n, 1)]])[0]


def load_samples(images: list[Path], pixel_um: float) -> list[Sample]:
    out = []
    for p in images:
        rgb = _linear(p)
        boxes = read_boxes(p, rgb.shape[2], rgb.shape[1])
        feats, _, zoom = net_input(rgb, pixel_um)
        c = np.array([[((b.x0 + b.x1) / 2 + 0.5) * zoom - 0.5, ((b.y0 + b.y1) / 2 + 0.5) * zoom - 0.5,
                       max(b.x1 - b.x0, b.y1 - b.y0) * zoom] for b in boxes], np.float32).reshape(-1, 3)
        out.append(Sample(feats, c, boxes, zoom, p.name))
    return out


def target(h: int, w: int, centres: NDArray[np.float32]) -> NDArray[np.float32]:
    """Gaussian bumps (peak 1) at the centres, sigma 12 % of the box size (≥ 1.2 px)."""
    t = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for x, y, s in centres:
        sig = max(0.12 * s, 1.2)
        t = np.maximum(t, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig**2)))
        r, c = round(float(y)), round(float(x))
        if 0 <= r < h and 0 <= c < w:
            t[r, c] = 1.0  # the focal loss's positive: the pixel nearest the centre
    return t


def _crop(s: Sample, rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    scale = math.exp(rng.uniform(-0.3, 0.3))
    src = math.ceil(CROP / scale)
    c, h, w = s.feats.shape
    if len(s.centres) and rng.random() < 0.6:
        x, y, _ = s.centres[rng.integers(len(s.centres))]
        x0, y0 = int(x) - rng.integers(8, max(src - 8, 9)), int(y) - rng.integers(8, max(src - 8, 9))
    else:
        x0, y0 = rng.integers(-src // 4, max(w - 3 * src // 4, 1)), rng.integers(-src // 4, max(h - 3 * src // 4, 1))
    pad = np.zeros((c, src, src), np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + src, h)), slice(max(x0, 0), min(x0 + src, w))
    pad[:, ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = s.feats[:, ys, xs]
    feats = np.stack([cv2.resize(ch, (CROP, CROP), interpolation=cv2.INTER_LINEAR) for ch in pad])
    cen = s.centres.copy()
    cen[:, 0] = (cen[:, 0] - x0 + 0.5) * scale - 0.5
    cen[:, 1] = (cen[:, 1] - y0 + 0.5) * scale - 0.5
    cen[:, 2] *= scale
    return feats, target(CROP, CROP, cen)


def augment(f: NDArray[np.float32], t: NDArray[np.float32], rng: np.random.Generator
            ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    f = f * np.exp(rng.normal(0, 0.15, (3, 1, 1)) + rng.normal(0, 0.2)).astype(np.float32)
    f = np.power(np.maximum(f, 0), rng.uniform(0.8, 1.25)).astype(np.float32)
    if rng.random() < 0.3:
        sig = rng.uniform(0.5, 1.5)
        f = np.stack([cv2.GaussianBlur(ch, (0, 0), sig) for ch in f])
    f = f + rng.normal(0, rng.uniform(0, 0.1), f.shape).astype(np.float32)
    k = int(rng.integers(4))
    f, t = np.rot90(f, k, axes=(1, 2)), np.rot90(t, k)
    if rng.random() < 0.5:
        f, t = f[:, :, ::-1], t[:, ::-1]
    return np.ascontiguousarray(f), np.ascontiguousarray(t)


def focal_loss(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on a Gaussian target heat map."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = t >= 0.99
    pos_loss = -(torch.log(p) * (1 - p) ** 2)[pos].sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - t) ** 4)[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def score(net: WbcNet, samples: list[Sample], threshold: float, tol_px: float = 5.0) -> tuple[int, int, int, int]:
    """``(boxes, found, detections, correct)`` under the bench's match rule."""
    nb = nf = nd = nc = 0
    for s in samples:
        prob = heat_map(net, s.feats)
        pts = [((c + 0.5) / s.zoom - 0.5, (r + 0.5) / s.zoom - 0.5) for r, c, _ in peaks(prob, threshold,
                                                                                          NMS_UM / WORK_UM)]
        nb += len(s.boxes)
        nf += sum(any(b.contains(x, y, tol_px) for x, y in pts) for b in s.boxes)
        nd += len(pts)
        nc += sum(any(b.contains(x, y, tol_px) for b in s.boxes) for x, y in pts)
    return nb, nf, nd, nc


def best_threshold(net: WbcNet, samples: list[Sample]) -> tuple[float, float]:
    best = (0.0, 0.5)
    for thr in np.arange(0.1, 0.91, 0.05):
        nb, nf, nd, nc = score(net, samples, float(thr))
        r, p = nf / max(nb, 1), nc / max(nd, 1)
        f1 = 2 * r * p / max(r + p, 1e-9)
        log.info("  threshold %.2f recall %.3f precision %.3f", thr, r, p)
        if f1 > best[0]:
            best = (f1, float(thr))
    return best[1], best[0]


def train(train_sets: list[list[Sample]], steps: int, seed: int, batch: int = 16) -> WbcNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = WbcNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    t0 = time.perf_counter()
    for step in range(steps):
        fs, ts = [], []
        for _ in range(batch):
            group = train_sets[rng.integers(len(train_sets))]  # each set equally often
            f, t = augment(*_crop(group[rng.integers(len(group))], rng), rng)
            fs.append(f)
            ts.append(t)
        loss = focal_loss(net(torch.from_numpy(np.stack(fs))), torch.from_numpy(np.stack(ts))[:, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            log.info("step %d loss %.3f (%.0f s)", step, float(loss.detach()), time.perf_counter() - t0)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train_sets, hold = [], []
    for spec in args.set:
        folder, _, px = spec.partition("=")
        images = [im for ims in labelled_sets(Path(folder)).values() for im in ims]
        pixel_um = set_pixel_size(images) if px in ("", "auto") else float(px)
        order = rng.permutation(len(images))
        n_hold = round(args.holdout * len(images))
        log.info("%s: %d images at %.3f µm/px (%d held out for the threshold)", folder, len(images), pixel_um, n_hold)
        hold += load_samples([images[i] for i in order[:n_hold]], pixel_um)
        train_sets.append(load_samples([images[i] for i in order[n_hold:]], pixel_um))
    net = train(train_sets, args.steps, args.seed)
    thr, f1 = best_threshold(net, hold) if hold else (0.5, float("nan"))
    log.info("threshold %.2f (F1 %.3f on the held-out images)", thr, f1)
    save_net(net, args.out, thr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
