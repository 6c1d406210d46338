"""Train the white-cell heat-map net (:mod:`trainer.wbc.net`) on labelled photograph folders.

    python -m trainer.wbc.net_train --set DIR=PIXEL_UM [--set ...] --out wbc_net.npz
        [--epochs 4] [--holdout 0.15] [--seed 0]

Each ``DIR`` holds ``images/`` and ``labels/`` (YOLO or VOC, :mod:`trainer.wbc.labelled`);
``PIXEL_UM`` is its pixel size (µm), or ``auto`` (the median red-cell estimate over the folder).
A ``holdout`` fraction of every folder's images is kept out of training and used only to choose
the detection threshold (best F1 under the bench's match rule). Augmentation makes the net see
other labs: scale ±30 %, per-channel and overall stain strength, gamma, blur (soft focus), noise.
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
from scipy import ndimage as ndi
from torch import nn

from trainer.wbc.finder import read_linear
from trainer.wbc.labelled import Box, labelled_sets, match, read_boxes
from trainer.wbc.net import N_FEATURES, NMS_UM, WORK_UM, WbcNet, features, heat_map, net_input, peaks, save_net
from trainer.wbc.rbcscale import sampled_pixel_size

log = logging.getLogger(__name__)


@dataclass
class Sample:
    feats: NDArray[np.float32]  # (3, h, w) at WORK_UM
    centres: NDArray[np.float32]  # (n, 3): x, y, box size, work px
    boxes: list[Box]  # image px
    zoom: float
    name: str


def split_set(spec: str, holdout: float, rng: np.random.Generator) -> tuple[float, list[Path], list[Path]]:
    """``DIR=PIXEL_UM|auto`` → (pixel size, held-out images, training images): a random
    ``holdout`` share of the folder's labelled images never trains (it picks the threshold)."""
    folder, _, px = spec.partition("=")
    images = [im for ims in labelled_sets(Path(folder)).values() for im in ims]
    pixel_um = sampled_pixel_size(images, read_linear)[0] if px in ("", "auto") else float(px)
    order = rng.permutation(len(images))
    n_hold = round(holdout * len(images))
    log.info("%s: %d images at %.3f µm/px (%d held out for the threshold)", folder, len(images), pixel_um, n_hold)
    return pixel_um, [images[i] for i in order[:n_hold]], [images[i] for i in order[n_hold:]]


def load_samples(images: list[Path], pixel_um: float) -> list[Sample]:
    out = []
    for p in images:
        rgb = read_linear(p)
        boxes = read_boxes(p, rgb.shape[2], rgb.shape[1])
        feats, _, zoom = net_input(rgb, pixel_um)
        c = np.array([[((b.x0 + b.x1) / 2 + 0.5) * zoom - 0.5, ((b.y0 + b.y1) / 2 + 0.5) * zoom - 0.5,
                       max(b.x1 - b.x0, b.y1 - b.y0) * zoom] for b in boxes], np.float32).reshape(-1, 3)
        out.append(Sample(feats, c, boxes, zoom, p.name))
    return out


def target(h: int, w: int, centres: NDArray[np.float32]) -> NDArray[np.float32]:
    """Gaussian bumps (peak 1) at the centres, sigma 15 % of the box size (≥ 1.2 px)."""
    t = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for x, y, s in centres:
        sig = max(0.15 * s, 1.2)
        t = np.maximum(t, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig**2)))
    return t


def _jitter(x: NDArray[np.float32], rng: np.random.Generator) -> tuple[NDArray[np.float32], float]:
    """Another lab and camera: stain strength per channel and overall, gamma, soft focus, noise,
    scale ±30 %. Returns the jittered OD and its zoom."""
    scale = math.exp(rng.uniform(-0.3, 0.3))
    h, w = x.shape[1:]
    size = (max(round(w * scale), 8), max(round(h * scale), 8))
    y = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in x])
    y = y * np.exp(rng.normal(0, 0.15, (3, 1, 1)) + rng.normal(0, 0.2)).astype(np.float32)
    y = np.power(np.maximum(y, 0), rng.uniform(0.8, 1.25))
    if rng.random() < 0.3:
        y = ndi.gaussian_filter(y, (0, *(2 * [rng.uniform(0.5, 1.5)])))
    y = y + rng.normal(0, rng.uniform(0, 0.08), y.shape)
    return np.maximum(y, 0).astype(np.float32), scale


def pixel_samples(s: Sample, rng: np.random.Generator, copies: int = 2, negatives: int = 1500
                  ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Feature vectors ``(n, N_FEATURES)`` and soft targets ``(n,)`` from ``copies`` jittered
    versions of a sample: every pixel near a centre, random pixels and the densest pixels."""
    fs, ts = [], []
    for k in range(copies):
        x, scale = (s.feats, 1.0) if k == 0 else _jitter(s.feats, rng)
        f = features(x).reshape(N_FEATURES, -1)
        cen = s.centres * np.float32(scale)
        t = target(x.shape[1], x.shape[2], cen).ravel()
        dense = np.argsort(x.sum(axis=0).ravel())[-negatives:]
        idx = np.unique(np.concatenate([np.nonzero(t > 0.05)[0], rng.integers(0, t.size, negatives), dense]))
        fs.append(f[:, idx].T)
        ts.append(t[idx])
    return np.concatenate(fs), np.concatenate(ts)


def score(probs: list[NDArray[np.float32]], samples: list[Sample], threshold: float, tol_px: float = 5.0
          ) -> tuple[int, int, int, int]:
    """``(boxes, found, detections, correct)`` of heat maps under the bench's match rule."""
    nb = nf = nd = nc = 0
    for prob, s in zip(probs, samples, strict=True):
        pts = [((c + 0.5) / s.zoom - 0.5, (r + 0.5) / s.zoom - 0.5)
               for r, c, _ in peaks(prob, threshold, NMS_UM / WORK_UM)]
        found, correct = match(pts, s.boxes, tol_px)
        nb, nf, nd, nc = nb + len(found), nf + sum(found), nd + len(correct), nc + sum(correct)
    return nb, nf, nd, nc


def best_threshold(net: WbcNet, samples: list[Sample]) -> tuple[float, float]:
    """The heat-map threshold of best F1 on held-out samples, and that F1."""
    probs = [heat_map(net, s.feats) for s in samples]
    best = (0.0, 0.5)
    for thr in np.arange(0.1, 0.91, 0.05):
        nb, nf, nd, nc = score(probs, samples, float(thr))
        r, p = nf / max(nb, 1), nc / max(nd, 1)
        f1 = 2 * r * p / max(r + p, 1e-9)
        log.info("  threshold %.2f recall %.3f precision %.3f", thr, r, p)
        if f1 > best[0]:
            best = (f1, float(thr))
    return best[1], best[0]


def train(train_sets: list[list[Sample]], epochs: int, seed: int, batch: int = 4096) -> WbcNet:
    """Fit the per-pixel MLP on pixel samples drawn equally from every set (soft-target BCE)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    per_set = [[pixel_samples(s, rng) for s in group] for group in train_sets]
    n_max = max(sum(len(t) for _, t in group) for group in per_set)
    fs, ts = [], []
    for group in per_set:  # repeat smaller sets so each set weighs the same
        f = np.concatenate([a for a, _ in group])
        t = np.concatenate([b for _, b in group])
        reps = rng.integers(0, len(t), n_max)
        fs.append(f[reps])
        ts.append(t[reps])
    f_all = torch.from_numpy(np.concatenate(fs))
    t_all = torch.from_numpy(np.concatenate(ts))
    log.info("%d pixel samples (%.1f %% near a centre)", len(t_all), 100 * float((t_all > 0.5).float().mean()))
    net = WbcNet()
    net.mean.copy_(f_all.mean(0).view(1, -1, 1, 1))
    net.std.copy_(f_all.std(0).clamp(min=1e-3).view(1, -1, 1, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    steps = epochs * (len(t_all) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(steps, 1))
    net.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(t_all))
        total = 0.0
        for k in range(len(t_all) // batch):
            i = order[k * batch:(k + 1) * batch]
            logits = net(f_all[i][:, :, None, None])[:, 0, 0, 0]
            loss = nn.functional.binary_cross_entropy_with_logits(logits, t_all[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log.info("epoch %d loss %.4f (%.0f s)", epoch, total / max(len(t_all) // batch, 1), time.perf_counter() - t0)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train_sets, hold = [], []
    for spec in args.set:
        pixel_um, held, fit = split_set(spec, args.holdout, rng)
        hold += load_samples(held, pixel_um)
        train_sets.append(load_samples(fit, pixel_um))
    net = train(train_sets, args.epochs, args.seed)
    thr, f1 = best_threshold(net, hold) if hold else (0.5, float("nan"))
    log.info("threshold %.2f (F1 %.3f on the held-out images)", thr, f1)
    save_net(net, args.out, thr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
