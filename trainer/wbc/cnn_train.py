"""Train the convolutional white-cell finder (:mod:`trainer.wbc.cnn`) on labelled photograph folders.

    python -m trainer.wbc.cnn_train --set DIR=PIXEL_UM|auto [--set ...] --out wbc_cnn.onnx
        [--steps 1500] [--batch 12] [--versions 6] [--holdout 0.15] [--seed 0] [--split-seed 0] [--cache DIR] [--fade F]
        [--mine PREV.onnx] [--negative-gain 4] [--rule f1|recall]

Each ``DIR`` holds ``images/`` and ``labels/`` (YOLO or VOC, :mod:`trainer.wbc.labelled`);
``PIXEL_UM`` is its pixel size (µm), or ``auto`` (the median red-cell estimate over the folder).
A ``holdout`` fraction of every folder's images never trains; it only chooses the detection
threshold (best mean F1 over the folders under the bench's match rule). Every training image is
seen as ``versions`` photographs: itself and ``versions - 1`` others from another lab and camera
(:mod:`trainer.wbc.cnn_aug`, applied before the flat field and the density), each at a pixel
size off by up to ±30 %; crops get random flips and 90° turns. Folders weigh the same whatever
their size. Labels near the image border follow each lab's habit (some leave cut cells out), so
the loss ignores a 6 µm band along it.

``--mine PREV.onnx``: hard negatives, the maxima ≥ ``--mine-threshold`` of an earlier model's heat
map on every training view that lie in no labelled box (:mod:`trainer.wbc.cnn_hard`); 20 % of
the crops are centred on one and the loss around each (σ 3 µm) weighs ``1 + --negative-gain``;
in folders named by ``--ignore-mined`` (labels that omit real cells) the loss ignores them instead.
``--seed`` sets the initial weights and the crops; ``--split-seed`` the held-out images and the
jittered views, so members of an ensemble (:mod:`trainer.wbc.cnn_ensemble`) share them. Next
to the ONNX the trainer writes the weights as ``.pt`` (a plain state dict) for the ensemble.
``--rule``: ``f1`` = the threshold of best mean F1 over the folders' held-out images; ``recall`` =
:func:`trainer.wbc.cnn_hard.recall_threshold` (target 0.97, margin ``--margin``).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import time
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional as F

from trainer.wbc.cnn import DENSITY_CLIP, cnn_heat_map, cnn_input, load_cnn, sigmoid
from trainer.wbc.cnn_aug import lab_jitter
from trainer.wbc.cnn_hard import f1_threshold, hard_negatives, negative_weight, recall_threshold, set_reference
from trainer.wbc.cnn_model import STRIDE, WbcCnn, export_onnx
from trainer.wbc.density import CUT_UM, NMS_UM, WORK_UM, net_input, peaks, to_image_px
from trainer.wbc.finder import read_linear
from trainer.wbc.labelled import Box, match, read_boxes
from trainer.wbc.net_train import split_set

log = logging.getLogger(__name__)

SCALE_JITTER = 0.3  # log pixel size spread (±30 %)


@dataclass(frozen=True)
class View:
    """One photograph as the net sees it: density ``(3, h, w)`` float16, field, centres ``(n, 3)``
    (x, y, box side) and hard negatives ``(k, 2)`` (x, y) in work px."""

    density: NDArray[np.float16]
    field: NDArray[np.bool_]
    centres: NDArray[np.float32]
    negatives: NDArray[np.float32] = dc_field(default_factory=lambda: np.zeros((0, 2), np.float32))


MINE_SIGMA_UM = 3.0  # loss weight bump around a hard negative
RECALL_TARGET = 0.97


def views_of(path: Path, pixel_um: float, versions: int, seed: int, fade: float = 0.0) -> list[View]:
    """The photograph itself and ``versions - 1`` jittered versions (lab, camera, scale; ``fade``:
    :func:`~trainer.wbc.cnn_aug.stain_jitter`)."""
    rng = np.random.default_rng([seed, int(hashlib.sha1(path.name.encode()).hexdigest()[:8], 16)])
    rgb = read_linear(path)
    boxes = read_boxes(path, rgb.shape[2], rgb.shape[1])
    out = []
    for k in range(versions):
        img, ps = (rgb, pixel_um) if k == 0 else (lab_jitter(rgb, pixel_um, rng, fade),
                                                   pixel_um * math.exp(rng.uniform(-SCALE_JITTER, SCALE_JITTER)))
        dens, field, zoom = net_input(img, ps)
        c = np.array([[((b.x0 + b.x1) / 2 + 0.5) * zoom - 0.5, ((b.y0 + b.y1) / 2 + 0.5) * zoom - 0.5,
                       max(b.x1 - b.x0, b.y1 - b.y0) * zoom] for b in boxes], np.float32).reshape(-1, 3)
        out.append(View(np.minimum(dens, DENSITY_CLIP).astype(np.float16), field, c))
    return out


def cached_views(path: Path, pixel_um: float, versions: int, seed: int, cache: Path | None,
                 fade: float = 0.0) -> list[View]:
    """:func:`views_of`, stored as plain ``.npz`` under ``cache`` (reused by later runs) when given."""
    if cache is None:
        return views_of(path, pixel_um, versions, seed, fade)
    spec = f"{path.resolve()}|{pixel_um:.5f}|{versions}|{seed}|v1" + (f"|fade {fade:.3f}" if fade else "")
    key = hashlib.sha1(spec.encode()).hexdigest()[:16]
    f = cache / f"{path.stem[:40]}-{key}.npz"
    if f.is_file():
        with np.load(f, allow_pickle=False) as z:
            return [View(z[f"d{k}"], z[f"f{k}"], z[f"c{k}"]) for k in range(versions)]
    views = views_of(path, pixel_um, versions, seed, fade)
    cache.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}
    for k, v in enumerate(views):
        arrays |= {f"d{k}": v.density, f"f{k}": v.field, f"c{k}": v.centres}
    np.savez(f, **arrays)
    return views


def mine(views: list[View], model: str, threshold: float) -> list[View]:
    """``views`` with their hard negatives: maxima ≥ ``threshold`` of ``model``'s heat map in no box."""
    m = load_cnn(model)
    out = []
    for v in views:
        cells = peaks(cnn_heat_map(m, v.density.astype(np.float32), v.field), threshold, NMS_UM / WORK_UM)
        xy = np.array([[c, r] for r, c, _ in cells], np.float32).reshape(-1, 2)
        out.append(replace(v, negatives=hard_negatives(xy, v.centres)))
    return out


def target(h: int, w: int, centres: NDArray[np.float32]) -> NDArray[np.float32]:
    """Gaussian bumps (peak 1) at the centres ``(n, 3)``, σ 15 % of the box side (≥ 1.5 px)."""
    t = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for x, y, s in centres:
        sig = max(0.15 * float(s), 1.5)
        t = np.maximum(t, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig**2)))
    return t


def crop(view: View, size: int, rng: np.random.Generator, negative_gain: float = 0.0
         ) -> tuple[NDArray[np.float32], ...]:
    """A ``size``² crop ``(input (4, s, s), target (s, s), weight (s, s))``, centred near a labelled
    cell 60 % of the time (near a hard negative 20 %, when the view has any and ``negative_gain``
    > 0), padded with no-field zeros, randomly flipped and turned. ``weight`` is 0 outside the image
    and within ``CUT_UM`` of its border, ``1 + negative_gain`` at hard negatives (-1: ignored)."""
    h, w = view.field.shape
    u = rng.random()
    hard = negative_gain != 0 and len(view.negatives) > 0
    if (len(view.centres) and u < 0.6) or (hard and negative_gain > 0 and u >= 0.8):
        pts = view.centres if len(view.centres) and u < 0.6 else view.negatives
        cx, cy = pts[rng.integers(len(pts))][:2]
        x0 = int(cx + rng.uniform(-size / 3, size / 3)) - size // 2
        y0 = int(cy + rng.uniform(-size / 3, size / 3)) - size // 2
    else:
        x0 = int(rng.integers(min(0, w - size), max(w - size, 0) + 1))
        y0 = int(rng.integers(min(0, h - size), max(h - size, 0) + 1))
    full = cnn_input(view.density.astype(np.float32), view.field, 1)[0]
    band = max(round(CUT_UM / WORK_UM), 1)
    weight = np.zeros((h, w), np.float32)
    weight[band:h - band, band:w - band] = 1
    if hard:
        weight *= negative_weight(h, w, view.negatives, MINE_SIGMA_UM / WORK_UM, negative_gain)
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
          lr: float = 2e-3, gains: list[float] | None = None) -> WbcCnn:
    """Fit the U-Net with weighted soft-target BCE; every step draws equally from every folder;
    ``gains``: per folder, the loss gain at its hard negatives (:func:`crop`; None = 0)."""
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
            gain = gains[k % len(groups)] if gains else 0.0
            items.append(crop(views[rng.integers(len(views))], size, rng, gain))
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


def torch_heat_map(net: nn.Module, view: View) -> NDArray[np.float32]:
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


Curve = list[tuple[float, float, float]]
HeldOut = list[tuple[list[NDArray[np.float32]], list[tuple[list[Box], float]]]]


def holdout_maps(net: nn.Module, holdout: list[list[tuple[Path, float]]]) -> HeldOut:
    """Per folder, the heat maps of its held-out images and their ``(boxes, zoom)``."""
    per_set = []
    for images in holdout:
        probs, samples = [], []
        for path, pixel_um in images:
            rgb = read_linear(path)
            dens, fld, zoom = net_input(rgb, pixel_um)
            probs.append(torch_heat_map(net, View(dens.astype(np.float16), fld, np.zeros((0, 3), np.float32))))
            samples.append((read_boxes(path, rgb.shape[2], rgb.shape[1]), zoom))
        per_set.append((probs, samples))
    return per_set


def threshold_curves(per_set: HeldOut) -> list[Curve]:
    """Per folder, ``(threshold, recall, precision)`` on its held-out images, thresholds 0.1–0.9 in
    steps of 0.025."""
    curves: list[Curve] = [[] for _ in per_set]
    for thr in np.arange(0.1, 0.91, 0.025):
        scores = [set_f1(p, s, float(thr)) for p, s in per_set]
        log.info("  threshold %.3f %s", thr, "  ".join(f"R {r:.3f} P {p:.3f}" for r, p, _ in scores))
        for curve, (r, p, _) in zip(curves, scores, strict=True):
            curve.append((float(thr), r, p))
    return curves


def relative_alpha(per_set: HeldOut) -> float:
    """The ``alpha`` of best mean F1 over the folders' held-out images when each folder's threshold
    is ``alpha`` x its own reference (:func:`trainer.wbc.cnn_hard.set_reference`)."""
    refs = [set_reference([max((p for _, _, p in peaks(m, 0.1, NMS_UM / WORK_UM)), default=0.0) for m in probs])
            for probs, _ in per_set]
    curves: list[Curve] = [[] for _ in per_set]
    for alpha in np.arange(0.3, 0.99, 0.025):
        for curve, (probs, samples), ref in zip(curves, per_set, refs, strict=True):
            r, p, _ = set_f1(probs, samples, min(float(alpha) * ref, 0.99))
            curve.append((float(alpha), r, p))
    alpha, f1 = f1_threshold(curves)
    log.info("relative threshold: references %s; alpha %.3f (mean F1 %.3f)", " ".join(f"{r:.3f}" for r in refs),
             alpha, f1)
    return alpha


def choose_threshold(curves: list[Curve], rule: str, margin: float) -> float:
    """The stored threshold under ``rule`` (``f1`` or ``recall``); logs both rules' choices."""
    f1_thr, f1 = f1_threshold(curves)
    rec_thr = recall_threshold(curves, RECALL_TARGET, margin)
    log.info("threshold by best mean F1: %.3f (F1 %.3f); by recall >= %.2f + %.2f on every folder: %.3f",
             f1_thr, f1, RECALL_TARGET, margin, rec_thr)
    if rule not in ("f1", "recall"):
        raise ValueError(f"threshold rule must be 'f1' or 'recall', found {rule!r}")
    return f1_thr if rule == "f1" else rec_thr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True, help="the ONNX model to write")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=12, help="crops of 96 µm per step")
    p.add_argument("--versions", type=int, default=6, help="views per training image (1 = no jitter)")
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0, help="initial weights and crops")
    p.add_argument("--split-seed", type=int, default=0, help="held-out images and jittered views")
    p.add_argument("--mine", default="", help="an earlier .onnx whose false alarms become hard negatives")
    p.add_argument("--mine-threshold", type=float, default=0.3)
    p.add_argument("--negative-gain", type=float, default=4.0, help="extra loss weight at hard negatives")
    p.add_argument("--ignore-mined", action="append", default=[],
                   help="folders whose labels omit real cells (path contains this): mined points are ignored")
    p.add_argument("--rule", choices=("f1", "recall"), default="recall", help="how the threshold is chosen")
    p.add_argument("--margin", type=float, default=0.01, help="recall rule: held-out recall >= 0.97 + this")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None, help="folder for the jittered views (reused by later runs)")
    p.add_argument("--fade", type=float, default=0.0,
                   help="stain fading: half the jittered views pulled up to this share towards grey (0 = off)")
    args = p.parse_args(argv)
    if not 0 <= args.fade <= 1:
        p.error(f"--fade: expected a share in [0, 1] of the way towards grey, found {args.fade}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.split_seed)
    groups, holdout, gains = [], [], []
    t0 = time.perf_counter()
    for spec in args.set:
        pixel_um, held, fit = split_set(spec, args.holdout, rng)
        holdout.append([(im, pixel_um) for im in held])
        views = [cached_views(im, pixel_um, args.versions, args.split_seed, args.cache, args.fade) for im in fit]
        if args.mine:
            views = [mine(v, args.mine, args.mine_threshold) for v in views]
            log.info("  %d hard negatives in %d views", sum(len(x.negatives) for v in views for x in v),
                     sum(len(v) for v in views))
        groups.append(views)
        gains.append(-1.0 if any(s in spec for s in args.ignore_mined) else args.negative_gain)
        log.info("  views ready (%.0f s)", time.perf_counter() - t0)
    net = train(groups, args.steps, args.seed, batch=args.batch, gains=gains if args.mine else None)
    torch.save(net.state_dict(), args.out.with_suffix(".pt"))
    maps = holdout_maps(net, holdout) if any(holdout) else []
    thr = choose_threshold(threshold_curves(maps), args.rule, args.margin) if maps else 0.5
    alpha = relative_alpha(maps) if maps else 0.0
    export_onnx(net, args.out, thr, notes=f"trained on {', '.join(args.set)}; steps {args.steps}, "
                f"batch {args.batch}, versions {args.versions}, holdout {args.holdout}, seed {args.seed}, "
                f"split seed {args.split_seed}, mined from {args.mine or '-'} (gain {args.negative_gain}), "
                f"rule {args.rule}" + (f", fade {args.fade}" if args.fade else ""), alpha=alpha)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
