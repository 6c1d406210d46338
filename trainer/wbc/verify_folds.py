"""Out-of-fold scores of the white-cell verifier, so its operating point is chosen on every tuning image.

    python -m trainer.wbc.verify_folds --set DIR=PIXEL_UM|auto [--set ...] --negatives pig --first W.onnx
        --out OOF.npz [--seed 0 [--seed 1 ...]] [--folds 3] [--fold-seed 0] [--harvest-from W.onnx|N.npz ...]
        [--balance | --hard-gain G] [--steps 1500] [--batch 48] [--versions 4] [--split-seed 0] [--cache DIR]
        [--widths 16,24,32,48] [--bf16] [--save-models DIR | --load-models DIR] [--only-fold J ...] [--tta]

:mod:`trainer.wbc.verify_train` chooses the weight and threshold on its 15 % hold-out (pig: 69
photographs), too few to tell verifiers apart (three reached precision 0.99-1.00 there and 0.88-0.91 on
pig/test). Here every photograph of every tuning folder, hold-out and training part alike, goes to one of
``--folds`` folds (:func:`kfold`); per fold and seed a verifier trains exactly as that trainer does (same
harvest, ``--balance``, steps) on the other folds' photographs and scores the first stage's candidates
(``--first``, heat ≥ ``--candidate-threshold``) on this fold's. ``--save-models`` keeps the fold models;
``--load-models`` scores with them again instead of training (e.g. with ``--tta``: each crop as the mean
probability over its 8 flips and turns, :class:`trainer.wbc.ensemble_model.WbcTta`). The out-of-fold
probabilities of every candidate of every photograph are written to ``--out`` after each seed (:func:`save_oof`);
:mod:`trainer.wbc.verify_ensemble` ``--oof`` applies the trainer's rule to them, pooled.

What saw what: the verifier's scores are out-of-fold (no fold model trained on the photograph it scores);
the first stage is not retrained per fold, so where it trained on a photograph (its own 85 %) its
candidates there are in-sample: fewer confusers, surer heat.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from trainer.errors import TrainerError
from trainer.wbc.ensemble_model import WbcTta, load_member
from trainer.wbc.net_train import split_set
from trainer.wbc.verify_data import Harvest, TuningImage, tuning_record
from trainer.wbc.verify_model import WIDTHS, WbcVerifier
from trainer.wbc.verify_train import folder_harvest, probabilities, train, widths_arg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """One tuning photograph's candidates without their crops (a :class:`~trainer.wbc.verify_data.Candidates`):
    first-stage heat ``s1`` ``(n,)``, ``hits`` ``(n, boxes)``, ``boxes`` labelled cells."""

    s1: NDArray[np.float32]
    hits: NDArray[np.bool_]
    boxes: int


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold verifier probabilities: per folder (``sets``, ``precise`` = labels box every white cell)
    its photographs' ``names``, candidates (:class:`Scored`) and probabilities ``(seeds, n)`` per photograph."""

    sets: list[str]
    precise: list[bool]
    names: list[list[str]]
    images: list[list[Scored]]
    probs: list[list[NDArray[np.float32]]]
    seeds: list[int]
    first: str  # sha1 of the first stage's .onnx that proposed the candidates

    def mean(self) -> list[list[NDArray[np.float32]]]:
        """Per folder and photograph the seeds' mean probability ``(n,)``: what their ensemble outputs."""
        return [[np.asarray(p.mean(axis=0), np.float32) for p in ps] for ps in self.probs]

    def only(self, seeds: Sequence[int]) -> OutOfFold:
        """The same scores of ``seeds`` only (in that order)."""
        missing = sorted(set(seeds) - set(self.seeds))
        if missing:
            raise TrainerError(f"expected out-of-fold scores of seeds {list(seeds)}, found {self.seeds} (missing "
                               f"{missing}; run trainer.wbc.verify_folds with --seed for each)")
        rows = [self.seeds.index(s) for s in seeds]
        return OutOfFold(self.sets, self.precise, self.names, self.images,
                         [[p[rows] for p in ps] for ps in self.probs], list(seeds), self.first)


def kfold(images: Sequence[Path], k: int, seed: int) -> list[list[Path]]:
    """``k`` disjoint folds that together hold every image once, in a random order fixed by ``seed``
    (the same folds whatever order ``images`` come in); sizes differ by at most one."""
    if not 2 <= k <= len(images):
        raise ValueError(f"expected 2 ≤ folds ≤ {len(images)} (the images), found {k}")
    ordered = sorted(images, key=str)
    order = np.random.default_rng(seed).permutation(len(ordered))
    return [[ordered[i] for i in part] for part in np.array_split(order, k)]


def file_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def save_oof(path: Path, oof: OutOfFold) -> None:
    """Write ``oof`` as one plain ``.npz`` (flat arrays, no pickle): per photograph its folder, name, boxes
    and candidate count; per candidate ``s1`` and ``probs`` (seeds, n); the hits as (candidate, box) pairs."""
    flat = [(f, n, im, p) for f, (ns, ims, ps) in enumerate(zip(oof.names, oof.images, oof.probs, strict=True))
            for n, im, p in zip(ns, ims, ps, strict=True)]
    counts = np.array([len(im.s1) for _, _, im, _ in flat], np.int64)
    starts = np.cumsum(counts) - counts
    pairs = [np.stack(np.nonzero(im.hits), axis=1) + np.array([s, 0])
             for (_, _, im, _), s in zip(flat, starts, strict=True)]
    hits = np.concatenate([np.zeros((0, 2), np.int64), *pairs]).astype(np.int64)
    np.savez(path, sets=np.array(oof.sets), precise=np.array(oof.precise), seeds=np.array(oof.seeds, np.int64),
             first=np.array(oof.first), folder=np.array([f for f, *_ in flat], np.int64),
             names=np.array([n for _, n, *_ in flat]), boxes=np.array([im.boxes for *_, im, _ in flat], np.int64),
             counts=counts, s1=np.concatenate([np.zeros(0, np.float32), *(im.s1 for *_, im, _ in flat)]),
             probs=np.concatenate([np.zeros((len(oof.seeds), 0), np.float32), *(p for *_, p in flat)], axis=1),
             hit_cand=hits[:, 0], hit_box=hits[:, 1])


def load_oof(path: Path) -> OutOfFold:
    """The :class:`OutOfFold` written by :func:`save_oof`."""
    if not path.is_file():
        raise TrainerError(f"out-of-fold scores {path} not found; write them with python -m "
                           "trainer.wbc.verify_folds")
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    sets = [str(s) for s in d["sets"]]
    out: OutOfFold = OutOfFold(sets, [bool(b) for b in d["precise"]], [[] for _ in sets], [[] for _ in sets],
                               [[] for _ in sets], [int(s) for s in d["seeds"]], str(d["first"]))
    ends = np.cumsum(d["counts"])
    for i, (f, end, n) in enumerate(zip(d["folder"], ends, d["counts"], strict=True)):
        lo = int(end - n)
        hits = np.zeros((int(n), int(d["boxes"][i])), bool)
        sel = (d["hit_cand"] >= lo) & (d["hit_cand"] < end)
        hits[d["hit_cand"][sel] - lo, d["hit_box"][sel]] = True
        out.names[f].append(str(d["names"][i]))
        out.images[f].append(Scored(d["s1"][lo:end].astype(np.float32), hits, int(d["boxes"][i])))
        out.probs[f].append(d["probs"][:, lo:end].astype(np.float32))
    return out


def merge_oof(parts: Sequence[OutOfFold]) -> OutOfFold:
    """One :class:`OutOfFold` with the seeds of all ``parts``, which must score the same candidates."""
    if not parts:
        raise ValueError("expected at least one set of out-of-fold scores; found none")
    a = parts[0]
    for b in parts[1:]:
        same = (b.sets == a.sets and b.names == a.names and b.first == a.first
                and all(np.array_equal(x.s1, y.s1) for xs, ys in zip(a.images, b.images, strict=True)
                        for x, y in zip(xs, ys, strict=True)))
        if not same:
            raise TrainerError("out-of-fold scores to merge must come from the same --set list, first stage and "
                               "photographs; found different ones (rerun trainer.wbc.verify_folds with the same "
                               "arguments)")
    probs = [[np.concatenate([p.probs[f][i] for p in parts]) for i in range(len(a.names[f]))]
             for f in range(len(a.sets))]
    return OutOfFold(a.sets, a.precise, a.names, a.images, probs, [s for p in parts for s in p.seeds], a.first)


def fold_groups(chunks: Sequence[Sequence[Harvest]], held: int) -> list[Harvest]:
    """Per folder the training crops of every fold but ``held`` (``chunks[folder][fold]``)."""
    return [Harvest(np.concatenate([h.x for j, h in enumerate(c) if j != held]),
                    np.concatenate([h.y for j, h in enumerate(c) if j != held])) for c in chunks]


def _records(folds: list[list[list[Path]]], pixel_um: list[float], first: str, threshold: float
             ) -> list[list[list[TuningImage]]]:
    """``[folder][fold]`` the unjittered candidates (with crops) of every photograph."""
    return [[[tuning_record(im, px, first, threshold) for im in fold] for fold in fs]
            for fs, px in zip(folds, pixel_um, strict=True)]


def fold_model(args: argparse.Namespace, chunks: Sequence[Sequence[Harvest]], seed: int, j: int) -> torch.nn.Module:
    """The verifier of ``seed`` trained on every fold but ``j``: trained now (and saved with ``--save-models``)
    or loaded from ``--load-models``."""
    name = f"seed{seed}-fold{j}.pt"
    if args.load_models is not None:
        log.info("seed %d, fold %d: the model in %s", seed, j, args.load_models)
        return load_member(args.load_models / name, WbcVerifier,
                           "trainer.wbc.verify_folds --save-models")
    log.info("seed %d, fold %d: training on the other %d folds", seed, j, args.folds - 1)
    net = train(fold_groups(chunks, j), args.steps, seed, args.batch, balance=args.balance, hard_gain=args.hard_gain,
                widths=args.widths, bf16=args.bf16)
    if args.save_models is not None:
        args.save_models.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), args.save_models / name)
    return net


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True, help="the out-of-fold scores (.npz) to write")
    p.add_argument("--first", required=True, help="the first-stage cnn .onnx whose candidates are scored")
    p.add_argument("--harvest-from", action="append", default=[], help="proposers of the training crops "
                   "(default: --first), as trainer.wbc.verify_train")
    p.add_argument("--negatives", action="append", default=[], required=True,
                   help="folders whose labels box every white cell (path contains this)")
    p.add_argument("--seed", action="append", type=int, default=[], help="verifier seed (repeat: one set of fold "
                   "models each; default 0)")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--fold-seed", type=int, default=0, help="which photograph goes to which fold")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--versions", type=int, default=4)
    p.add_argument("--split-seed", type=int, default=0, help="the jitter of the harvested views (as the trainer's)")
    p.add_argument("--candidate-threshold", type=float, default=0.1)
    p.add_argument("--balance", action="store_true")
    p.add_argument("--hard-gain", type=float, default=1.0, help="as trainer.wbc.verify_train")
    p.add_argument("--widths", type=widths_arg, default=WIDTHS, help="as trainer.wbc.verify_train")
    p.add_argument("--bf16", action="store_true", help="as trainer.wbc.verify_train")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--save-models", type=Path, default=None,
                   help="folder for every fold model's state dict (seedS-foldJ.pt), to score other variants later")
    p.add_argument("--load-models", type=Path, default=None,
                   help="score with the fold models --save-models wrote there (same arguments) instead of training")
    p.add_argument("--only-fold", action="append", type=int, default=[],
                   help="train and score only this fold (repeat; default: all): out-of-fold scores of its "
                        "photographs alone, when there is no time for every fold")
    p.add_argument("--tta", action="store_true", help="score every crop as the mean over its 8 flips and turns")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    seeds = args.seed or [0]
    proposers = args.harvest_from or [args.first]
    pixel_um, folds, chunks, precise = [], [], [], []
    for spec in args.set:
        px, _, images = split_set(spec, 0.0, np.random.default_rng(0))  # every image, and the auto pixel size
        neg = any(s in spec for s in args.negatives)
        fs = kfold(images, args.folds, args.fold_seed)
        pixel_um.append(px)
        folds.append(fs)
        precise.append(neg)
        chunks.append([] if args.load_models is not None else  # the fold models exist: no training crops needed
                      [folder_harvest(f, px, args.versions, args.split_seed, proposers, neg, args.cache) for f in fs])
        log.info("%s: %d folds of %s photographs, %d crops", spec, args.folds, "/".join(str(len(f)) for f in fs),
                 sum(len(h.y) for h in chunks[-1]))
    chosen = sorted(set(args.only_fold)) or list(range(args.folds))
    if not all(0 <= j < args.folds for j in chosen):
        raise TrainerError(f"expected --only-fold in 0..{args.folds - 1} (--folds {args.folds}), "
                           f"found {args.only_fold}")
    kept = [[fs[j] for j in chosen] for fs in folds]
    records = _records(kept, pixel_um, args.first, args.candidate_threshold)
    scored = [[Scored(im.s1, im.hits, im.boxes) for fold in r for im in fold] for r in records]
    names = [[im.name for fold in fs for im in fold] for fs in kept]
    probs: list[list[list[NDArray[np.float32]]]] = [[[] for _ in n] for n in names]  # [folder][image][seed]
    for seed in seeds:
        for k, j in enumerate(chosen):
            net = fold_model(args, chunks, seed, j)
            if args.tta:
                net = WbcTta(net).eval()
            for f, r in enumerate(records):
                first_index = sum(len(fold) for fold in r[:k])
                for i, im in enumerate(r[k]):
                    probs[f][first_index + i].append(probabilities(net, im.x))
        oof = OutOfFold(list(args.set), precise, names, scored,
                        [[np.stack(p) for p in ps] for ps in probs], seeds[:seeds.index(seed) + 1],
                        file_digest(args.first))
        save_oof(args.out, oof)
        log.info("wrote %s (seeds %s)", args.out, oof.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
