"""Join several trained white-cell verifiers into one ONNX ensemble and choose its weight and threshold.

    python -m trainer.wbc.verify_ensemble --member a.pt [--member b.pt ...] --set DIR=PIXEL_UM|auto [--set ...]
        --first W.onnx --negatives pig --out V.onnx [--oof A.npz ... [--oof-seed K ...]] [--tta] [--holdout 0.15]
        [--split-seed 0]

The members are the ``.pt`` state dicts :mod:`trainer.wbc.verify_train` writes next to its ONNX (other
``--seed``, same folders and split). The graph runs every member on the crops and returns the logit of their
mean probability (:class:`trainer.wbc.ensemble_model.WbcEnsemble`), so ``--stage2 V.onnx`` runs it
unchanged. The rule of the trainer (:func:`trainer.wbc.verify_data.choose_combination`) picks the weight
and threshold, either on the same 15 % hold-out the members never trained on (default), or with ``--oof`` on
the pooled out-of-fold scores of :mod:`trainer.wbc.verify_folds` (one file or several, one seed per
member: the mean of the seeds' fold models stands for the mean of the members). One member gives a single
verifier with the other rule; a member may also be a single verifier's ``.onnx`` (e.g. the shipped one). ``--tta``
exports the ensemble behind 8-view test-time augmentation (:class:`trainer.wbc.ensemble_model.WbcTta`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from trainer.errors import TrainerError
from trainer.wbc.ensemble_model import WbcEnsemble, WbcTta, load_member
from trainer.wbc.net_train import split_set
from trainer.wbc.verify import load_verifier
from trainer.wbc.verify_data import Candidates, choose_combination, tuning_record
from trainer.wbc.verify_folds import OutOfFold, file_digest, load_oof, merge_oof
from trainer.wbc.verify_model import WbcVerifier, export_verifier
from trainer.wbc.verify_train import probabilities

log = logging.getLogger(__name__)

Tuning = tuple[list[list[Candidates]], list[list[NDArray[np.float32]]], list[bool]]


def holdout_tuning(net: torch.nn.Module, sets: list[str], negatives: list[str], first: str, holdout: float,
                   split_seed: int, candidate_threshold: float) -> Tuning:
    """``(candidates, probabilities, precise)`` per folder on the trainer's held-out photographs."""
    rng = np.random.default_rng(split_seed)
    folders: list[list[Candidates]] = []
    s2 = []
    for spec in sets:
        px, held, _ = split_set(spec, holdout, rng)
        ims = [tuning_record(im, px, first, candidate_threshold) for im in held]
        folders.append(list(ims))
        s2.append([probabilities(net, im.x) for im in ims])
    return folders, s2, [any(s in spec for s in negatives) for spec in sets]


def oof_tuning(oof: OutOfFold, sets: list[str], first: str, members: int) -> Tuning:
    """``(candidates, probabilities, precise)`` per folder from out-of-fold scores, checked against the
    ensemble they stand for."""
    if oof.sets != sets or oof.first != file_digest(first):
        raise TrainerError(f"the out-of-fold scores were made on {oof.sets} behind another first stage or folders; "
                           f"expected {sets} behind {first} (pass the same --set list and --first)")
    if len(oof.seeds) != members:
        raise TrainerError(f"expected one out-of-fold seed per member ({members}), found seeds {oof.seeds}; pass "
                           "the trainer.wbc.verify_folds outputs of the members' seeds")
    return [list(ims) for ims in oof.images], oof.mean(), oof.precise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--member", action="append", type=Path, required=True, help="a member's .pt state dict")
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--first", required=True, help="the first-stage cnn .onnx the members were trained behind")
    p.add_argument("--negatives", action="append", default=[], required=True,
                   help="folders whose labels box every white cell (path contains this)")
    p.add_argument("--out", type=Path, required=True, help="the ONNX ensemble to write")
    p.add_argument("--oof", action="append", type=Path, default=[],
                   help="out-of-fold scores of trainer.wbc.verify_folds (repeat per file): choose on them, not the "
                        "hold-out")
    p.add_argument("--oof-seed", action="append", type=int, default=[],
                   help="use these seeds of the --oof scores (repeat; default: all, one per member)")
    p.add_argument("--tta", action="store_true", help="the exported graph scores every crop as the mean over its "
                   "8 flips and turns (choose on out-of-fold scores made with trainer.wbc.verify_folds --tta)")
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--candidate-threshold", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    members = [load_member(m, WbcVerifier, "trainer.wbc.verify_train") for m in args.member]
    net: torch.nn.Module = members[0] if len(members) == 1 else WbcEnsemble(members).eval()  # one: as it is
    if args.tta:
        net = WbcTta(net).eval()
    if args.oof:
        oof = merge_oof([load_oof(f) for f in args.oof])
        oof = oof.only(args.oof_seed) if args.oof_seed else oof
        folders, s2, precise = oof_tuning(oof, args.set, args.first, len(args.member))
        on = f"out-of-fold scores {', '.join(f.name for f in args.oof)}, seeds {oof.seeds}"
    else:
        folders, s2, precise = holdout_tuning(net, args.set, args.negatives, args.first, args.holdout,
                                              args.split_seed, args.candidate_threshold)
        on = f"holdout {args.holdout}, split seed {args.split_seed}"
    weight, thr, table = choose_combination(folders, s2, precise)
    for row in table:
        log.info("  %s", "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    log.info("chosen on %d photographs: weight %.2f, threshold %.3f", sum(len(f) for f in folders), weight, thr)
    what = f"{'8-view TTA of the ' if args.tta else ''}ensemble of {', '.join(m.name for m in args.member)}"
    was = [load_verifier(str(m)).session.get_modelmeta().custom_metadata_map.get("notes", "")
           for m in args.member if m.suffix == ".onnx"]
    what += "".join(f" [a member's own notes: {n}]" for n in was if n)
    export_verifier(net, args.out, weight, thr, args.candidate_threshold,
                    notes=f"{what} behind {Path(args.first).name}; "
                    f"weight and threshold on {', '.join(args.set)} ({on})")
    log.info("wrote %s (members: %d)", args.out, len(args.member))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
