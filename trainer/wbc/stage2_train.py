"""Train the white-cell finder's second stage (:mod:`trainer.wbc.stage2`) on labelled folders.

    python -m trainer.wbc.stage2_train --set DIR=PIXEL_UM [--set ...] --out wbc_stage2.npz
        [--net wbc_net.npz] [--candidate-threshold 0.1] [--holdout 0.3] [--seed 0]

The first stage (``--net``, default the shipped one) proposes candidates on every image of every
``DIR`` (heat-map maxima above ``--candidate-threshold``); a candidate is a white cell when its
centre lies inside a labelled box grown by 5 px (the bench's rule). Candidates within 6 µm of the
image border are left out of training: whether a set labels cells cut by the border is a
convention of its annotators, not something a cell's look can tell. A ``holdout`` fraction of
each folder's images is kept out of training and chooses the threshold (best F1 of recall and
precision under the match rule, summed over the folders with equal weight).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from trainer.wbc.finder import read_linear
from trainer.wbc.labelled import labelled_sets, read_boxes
from trainer.wbc.net import NMS_UM, SHIPPED, WORK_UM, heat_map, load_net, net_input, peaks
from trainer.wbc.rbcscale import sampled_pixel_size
from trainer.wbc.stage2 import N_STAGE2, Stage2, candidate_features, save_stage2

log = logging.getLogger(__name__)
BORDER_UM = 6.0


@dataclass
class Candidates:
    """The candidates of one labelled image."""

    feats: NDArray[np.float32]  # (n, N_STAGE2)
    hits: NDArray[np.bool_]  # (n, boxes): candidate inside box grown by tol
    border: NDArray[np.bool_]  # (n,): within BORDER_UM of the image border
    name: str

    @property
    def label(self) -> NDArray[np.bool_]:
        return np.asarray(self.hits.any(axis=1), bool)


def image_candidates(path: Path, pixel_um: float, net_path: str, threshold: float, tol_px: float = 5.0
                     ) -> Candidates:
    """Candidates of one photograph and how they match its labelled boxes."""
    rgb = read_linear(path)
    boxes = read_boxes(path, rgb.shape[2], rgb.shape[1])
    net, _ = load_net(net_path)
    x, field, zoom = net_input(rgb, pixel_um)
    prob = heat_map(net, x)
    cand = peaks(prob, threshold, NMS_UM / WORK_UM)
    feats = candidate_features(x, prob, field, cand)
    pts = [((c + 0.5) / zoom - 0.5, (r + 0.5) / zoom - 0.5) for r, c, _ in cand]
    hits = np.array([[b.contains(px, py, tol_px) for b in boxes] for px, py in pts], bool).reshape(len(pts),
                                                                                                 len(boxes))
    h, w = rgb.shape[1:]
    m = BORDER_UM / pixel_um
    border = np.array([min(px, py, w - 1 - px, h - 1 - py) < m for px, py in pts], bool)
    return Candidates(feats, hits, border, path.name)


def score(cands: list[Candidates], keep: list[NDArray[np.bool_]]) -> tuple[float, float]:
    """``(recall, precision)`` under the match rule when only ``keep`` candidates are detections."""
    nb = nf = nd = nc = 0
    for c, k in zip(cands, keep, strict=True):
        nb += c.hits.shape[1]
        nf += int(c.hits[k].any(axis=0).sum())
        nd += int(k.sum())
        nc += int(c.label[k].sum())
    return nf / max(nb, 1), nc / max(nd, 1)


def fit(x: NDArray[np.float32], y: NDArray[np.float32], w: NDArray[np.float32], hidden: int = 16,
        epochs: int = 300, seed: int = 0, weight_decay: float = 1e-3) -> tuple[Stage2, float]:
    """A one-hidden-layer MLP by full-batch Adam on weighted BCE; returns it (thresholds 0.5, 0)."""
    torch.manual_seed(seed)
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-3)
    xt = torch.from_numpy((x - mean) / std)
    yt, wt = torch.from_numpy(y), torch.from_numpy(w)
    model = nn.Sequential(nn.Linear(N_STAGE2, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        loss = nn.functional.binary_cross_entropy_with_logits(model(xt)[:, 0], yt, weight=wt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    l1, l2 = model[0], model[2]
    assert isinstance(l1, nn.Linear) and isinstance(l2, nn.Linear)
    s = Stage2(mean.astype(np.float32), std.astype(np.float32), l1.weight.detach().numpy().copy(),
               l1.bias.detach().numpy().copy(), l2.weight.detach().numpy()[0].copy(), float(l2.bias.detach()[0]),
               0.5, 0.0)
    return s, float(loss.detach())


def training_arrays(groups: list[list[Candidates]]) -> tuple[NDArray[np.float32], ...]:
    """Features, labels and weights (each folder weighs the same, classes balanced within it)."""
    xs, ys, ws = [], [], []
    for group in groups:
        f = np.concatenate([c.feats[~c.border] for c in group])
        y = np.concatenate([c.label[~c.border] for c in group]).astype(np.float32)
        pos = max(float(y.sum()), 1.0)
        neg = max(float(len(y) - y.sum()), 1.0)
        xs.append(f)
        ys.append(y)
        ws.append(np.where(y > 0, 0.5 / pos, 0.5 / neg).astype(np.float32))
    w = np.concatenate(ws)
    return np.concatenate(xs), np.concatenate(ys), (w / w.mean()).astype(np.float32)


def choose_threshold(s: Stage2, groups: list[list[Candidates]]) -> tuple[float, float]:
    """The probability threshold of best mean F1 over the held-out folders, and that F1."""
    best = (-1.0, 0.5)
    probs = [[s.predict(c.feats) for c in g] for g in groups]
    for thr in np.arange(0.05, 0.96, 0.025):
        f1s = []
        for g, pg in zip(groups, probs, strict=True):
            r, p = score(g, [pr >= thr for pr in pg])
            f1s.append(2 * r * p / max(r + p, 1e-9))
            log.info("  threshold %.3f recall %.3f precision %.3f", thr, r, p)
        if float(np.mean(f1s)) > best[0]:
            best = (float(np.mean(f1s)), float(thr))
    return best[1], best[0]


def folder_candidates(folder: Path, px: str, net_path: str, threshold: float) -> tuple[list[Candidates], float]:
    images = [im for ims in labelled_sets(folder).values() for im in ims]
    pixel_um = sampled_pixel_size(images, read_linear)[0] if px in ("", "auto") else float(px)
    return [image_candidates(p, pixel_um, net_path, threshold) for p in images], pixel_um


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--net", default=str(SHIPPED), help="first-stage weights (.npz)")
    p.add_argument("--candidate-threshold", type=float, default=0.1)
    p.add_argument("--holdout", type=float, default=0.3)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    train_g, hold_g = [], []
    for spec in args.set:
        folder, _, px = spec.partition("=")
        cands, pixel_um = folder_candidates(Path(folder), px, args.net, args.candidate_threshold)
        order = rng.permutation(len(cands))
        n_hold = round(args.holdout * len(cands))
        log.info("%s: %d images at %.3f µm/px, %d candidates (%d held-out images)", folder, len(cands), pixel_um,
                 sum(len(c.feats) for c in cands), n_hold)
        hold_g.append([cands[i] for i in order[:n_hold]])
        train_g.append([cands[i] for i in order[n_hold:]])
    x, y, w = training_arrays(train_g)
    s, loss = fit(x, y, w, hidden=args.hidden, seed=args.seed)
    log.info("%d training candidates (%.0f %% cells), loss %.4f", len(y), 100 * y.mean(), loss)
    thr, f1 = choose_threshold(s, hold_g) if any(hold_g) else (0.5, float("nan"))
    log.info("threshold %.3f (mean F1 %.3f on the held-out images)", thr, f1)
    save_stage2(Stage2(s.mean, s.std, s.w1, s.b1, s.w2, s.b2, thr, args.candidate_threshold), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
