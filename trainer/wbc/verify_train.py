"""Train the white-cell verifier (:mod:`trainer.wbc.verify`) behind a first-stage ``cnn`` model.

    python -m trainer.wbc.verify_train --set DIR=PIXEL_UM|auto [--set ...] --out wbc_verify.onnx
        [--first wbc_cnn.onnx] [--harvest-from W.onnx|N.npz ...] [--negatives pig] [--steps 1500] [--batch 48]
        [--versions 4] [--holdout 0.15] [--split-seed 0] [--seed 0] [--candidate-threshold 0.1] [--cache DIR]
        [--balance | --hard-gain G] [--widths 16,24,32,48] [--bf16]

The folders are split as the first stage's trainer splits them (same ``--holdout``, ``--split-seed``
and ``--set`` order), so the held-out images are ones neither stage trained on. Training crops
(:func:`trainer.wbc.verify_data.harvest`): labelled cells and first-stage candidates in labelled
boxes are positives in every folder; candidates in no box are negatives only in folders whose path
contains a ``--negatives`` string (labels that box every white cell; chula boxes one per photograph,
so its unboxed candidates are mostly real cells and are left out). Repeated ``--harvest-from`` proposers
(cnn ``.onnx``, net ``.npz``) propose the union of their candidates. Every image is seen as itself and
``versions - 1`` versions from another lab and camera at a pixel size off by up to ±20 %; crops get
random 2 µm shifts, flips and 90° turns. Folders weigh the same. On the held-out images the
combination weight and the final threshold are chosen
(:func:`trainer.wbc.verify_data.choose_combination`) and stored with the model.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from trainer.wbc.cnn import SHIPPED_CNN
from trainer.wbc.net_train import split_set
from trainer.wbc.verify import CROP_PX
from trainer.wbc.verify_data import SHIFT_PX, Harvest, TuningImage, choose_combination, harvest, tuning_record
from trainer.wbc.verify_hard import hard_negatives
from trainer.wbc.verify_model import WIDTHS, WbcVerifier, export_verifier

log = logging.getLogger(__name__)


def folder_harvest(images: list[Path], pixel_um: float, versions: int, seed: int, models: list[str],
                   negatives: bool, cache: Path | None) -> Harvest:
    """:func:`harvest` of every image of a folder, stored as one plain ``.npz`` in ``cache`` when given;
    ``models``: the proposers of candidates (their union)."""
    f = None
    if cache is not None:
        digest = "+".join(hashlib.sha1(Path(m).read_bytes()).hexdigest()[:12] for m in models)
        names = "|".join(str(p.resolve()) for p in images)
        key = hashlib.sha1(f"{names}|{pixel_um:.5f}|{versions}|{seed}|{digest}|{negatives}|v1".encode()).hexdigest()
        f = cache / f"verify-{key[:16]}.npz"
        if f.is_file():
            with np.load(f, allow_pickle=False) as z:
                return Harvest(z["x"], z["y"])
    parts = []
    t0 = time.perf_counter()
    for k, p in enumerate(images):
        parts.append(harvest(p, pixel_um, versions, seed, models, negatives))
        if k % 50 == 0:
            log.info("  harvested %d/%d images (%.0f s)", k, len(images), time.perf_counter() - t0)
    out = Harvest(np.concatenate([h.x for h in parts]), np.concatenate([h.y for h in parts]))
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez(f, x=out.x, y=out.y)
    return out


def augment(x: NDArray[np.float16], rng: np.random.Generator) -> NDArray[np.float32]:
    """A random ``CROP_PX`` window (shift up to ``SHIFT_PX``) of a wide crop, turned and flipped."""
    dy, dx = rng.integers(0, 2 * SHIFT_PX + 1, 2)
    out = np.rot90(x[:, dy:dy + CROP_PX, dx:dx + CROP_PX].astype(np.float32), int(rng.integers(4)), axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if rng.random() < 0.5 else out)


def draw(g: Harvest, rng: np.random.Generator, balance: bool, cdf: NDArray[np.float64] | None = None) -> int:
    """A crop index of ``g``: uniform, or with ``balance`` a cell and a non-cell equally often (when
    the folder has both; more proposers bring more non-cells, which would otherwise shift the prior), or
    with ``cdf`` (:func:`draw_cdf`) in proportion to each crop's weight."""
    if cdf is not None:
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))
    if balance and 0 < g.y.sum() < len(g.y):
        pool = np.flatnonzero(g.y == (rng.random() < 0.5))
        return int(pool[rng.integers(len(pool))])
    return int(rng.integers(len(g.y)))


def draw_cdf(g: Harvest, hard_gain: float) -> NDArray[np.float64] | None:
    """Cumulative draw weights of ``g``'s crops: ``hard_gain`` for its hard negatives
    (:func:`trainer.wbc.verify_hard.hard_negatives`), 1 for the rest; ``None`` (uniform) at gain 1
    or when the folder has none."""
    if hard_gain < 1:
        raise ValueError(f"expected a hard-negative gain ≥ 1, found {hard_gain}")
    hard = hard_negatives(g.x, g.y) if hard_gain != 1 else np.zeros(len(g.y), bool)
    log.info("  %d of %d non-cells hard (no nucleus-sized dark body), drawn %.1fx", int(hard.sum()),
             int((g.y < 0.5).sum()), hard_gain)
    return np.cumsum(np.where(hard, hard_gain, 1.0)) if hard.any() else None


def train(groups: list[Harvest], steps: int, seed: int, batch: int = 48, lr: float = 2e-3,
          balance: bool = False, hard_gain: float = 1.0, widths: tuple[int, int, int, int] = WIDTHS,
          bf16: bool = False) -> WbcVerifier:
    """Fit the verifier (stage ``widths``) with BCE; every step draws equally from every folder (:func:`draw`
    within one; ``hard_gain`` > 1 draws each folder's hard negatives that many times as often, not with
    ``balance``). ``bf16``: the forward pass under torch's bf16 autocast (AMX / AVX-512 BF16 CPUs: 2-3x faster
    here; the weights stay fp32)."""
    if balance and hard_gain != 1:
        raise ValueError("expected either --balance or --hard-gain, found both (they set the draw two ways)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cdfs = [draw_cdf(g, hard_gain) if hard_gain != 1 else None for g in groups]
    net = WbcVerifier(widths)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    net.train()
    t0, running = time.perf_counter(), 0.0
    for step in range(steps):
        xs, ys = [], []
        for k in range(batch):
            g = groups[k % len(groups)]
            i = draw(g, rng, balance, cdfs[k % len(groups)])
            xs.append(augment(g.x[i], rng))
            ys.append(g.y[i])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(torch.from_numpy(np.stack(xs)))
        loss = F.binary_cross_entropy_with_logits(logits.float(), torch.tensor(ys, dtype=torch.float32))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * float(loss.detach()) if step else float(loss.detach())
        if step % 100 == 0 or step == steps - 1:
            log.info("step %d loss %.4f (%.0f s)", step, running, time.perf_counter() - t0)
    return net.eval()


def widths_arg(text: str) -> tuple[int, int, int, int]:
    """``--widths`` as four positive channel counts."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive channel counts like 16,24,32,48, found {text!r}")
    return values


def probabilities(net: torch.nn.Module, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Second-stage probability ``(n,)`` of crops ``(n, 4, CROP_PX, CROP_PX)`` with the torch net."""
    if not len(x):
        return np.zeros(0, np.float32)
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(np.ascontiguousarray(x, np.float32)))).numpy().astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True, help="the ONNX verifier to write")
    p.add_argument("--first", default=str(SHIPPED_CNN), help="the first-stage cnn .onnx (default: shipped)")
    p.add_argument("--harvest-from", action="append", default=[],
                   help="a proposer whose candidates become training crops: a cnn .onnx or a net .npz (default: "
                        "--first); repeat it for the union of several (a model that never trained on these "
                        "images proposes more, and more varied, confusers)")
    p.add_argument("--negatives", action="append", default=[],
                   help="folders whose labels box every white cell (path contains this): unboxed candidates "
                        "are negatives there; elsewhere they are left out")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--versions", type=int, default=4, help="views per training image (1 = no jitter)")
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--split-seed", type=int, default=0, help="held-out images (as the first stage's) and jitter")
    p.add_argument("--seed", type=int, default=0, help="initial weights and batches")
    p.add_argument("--candidate-threshold", type=float, default=0.1, help="first-stage heat of a candidate")
    p.add_argument("--balance", action="store_true",
                   help="within a folder, draw cells and non-cells equally often (default: as harvested)")
    p.add_argument("--hard-gain", type=float, default=1.0,
                   help="draw the hard negatives (no nucleus-sized dark body: platelet-, smudge-like; "
                        "trainer.wbc.verify_hard) this many times as often (default 1: as harvested)")
    p.add_argument("--widths", type=widths_arg, default=WIDTHS,
                   help=f"channels of the four stages, comma-separated (default {','.join(map(str, WIDTHS))})")
    p.add_argument("--bf16", action="store_true", help="train under bf16 autocast (CPUs with AMX or AVX-512 BF16)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=None, help="folder for the harvested crops (reused by later runs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.negatives:
        p.error("--negatives: name at least one folder whose labels box every white cell (e.g. pig)")
    torch.set_num_threads(args.threads)
    proposers = args.harvest_from or [args.first]
    rng = np.random.default_rng(args.split_seed)
    groups: list[Harvest] = []
    tuning: list[list[TuningImage]] = []
    precise = []
    for spec in args.set:
        pixel_um, held, fit = split_set(spec, args.holdout, rng)
        neg = any(s in spec for s in args.negatives)
        g = folder_harvest(fit, pixel_um, args.versions, args.split_seed, proposers, neg, args.cache)
        log.info("%s: %d crops, %d positive", spec, len(g.y), int(g.y.sum()))
        groups.append(g)
        tuning.append([tuning_record(im, pixel_um, args.first, args.candidate_threshold) for im in held])
        precise.append(neg)
    net = train(groups, args.steps, args.seed, args.batch, balance=args.balance, hard_gain=args.hard_gain,
                widths=args.widths, bf16=args.bf16)
    torch.save(net.state_dict(), args.out.with_suffix(".pt"))
    s2 = [[probabilities(net, im.x) for im in ims] for ims in tuning]
    weight, thr, table = choose_combination(tuning, s2, precise)
    for row in table:
        log.info("  %s", "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    log.info("chosen: weight %.2f, threshold %.3f", weight, thr)
    export_verifier(net, args.out, weight, thr, args.candidate_threshold,
                    notes=f"trained on {', '.join(args.set)} behind {Path(args.first).name} (crops from "
                    f"{' + '.join(Path(m).name for m in proposers)}); negatives from "
                    f"{', '.join(args.negatives)}; steps {args.steps}, batch {args.batch}, versions {args.versions}, "
                    f"holdout {args.holdout}, seed {args.seed}, split seed {args.split_seed}, widths "
                    f"{','.join(map(str, args.widths))}{', bf16' if args.bf16 else ''}"
                    f"{', balanced' if args.balance else ''}"
                    f"{f', hard negatives x{args.hard_gain:g}' if args.hard_gain != 1 else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
