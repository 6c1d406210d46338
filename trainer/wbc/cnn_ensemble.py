"""Join several trained white-cell CNNs into one ONNX ensemble and choose its threshold.

    python -m trainer.wbc.cnn_ensemble --member a.pt --member b.pt [--member ...]
        --set DIR=PIXEL_UM|auto [--set ...] --out wbc_cnn.onnx [--holdout 0.15] [--split-seed 0]
        [--rule f1|recall] [--margin 0.01]

The members are the ``.pt`` state dicts :mod:`trainer.wbc.cnn_train` writes next to its ONNX
(same ``--set`` list, ``--holdout`` and ``--split-seed``, so no member trained on the held-out
images that choose the threshold here). The graph runs every member on the input and returns the
logit of their mean centre probability (:class:`trainer.wbc.ensemble_model.WbcEnsemble`), so
:mod:`trainer.wbc.cnn` loads it like a single model.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from trainer.wbc.cnn_model import WbcCnn, export_onnx
from trainer.wbc.cnn_train import choose_threshold, holdout_maps, relative_alpha, threshold_curves
from trainer.wbc.ensemble_model import WbcEnsemble, load_member
from trainer.wbc.net_train import split_set

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--member", action="append", type=Path, required=True, help="a member's .pt state dict")
    p.add_argument("--set", action="append", required=True, help="DIR=PIXEL_UM (µm per pixel, or auto)")
    p.add_argument("--out", type=Path, required=True, help="the ONNX ensemble to write")
    p.add_argument("--holdout", type=float, default=0.15)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--rule", choices=("f1", "recall"), default="recall")
    p.add_argument("--margin", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    net = WbcEnsemble([load_member(m, WbcCnn, "trainer.wbc.cnn_train") for m in args.member]).eval()
    rng = np.random.default_rng(args.split_seed)
    holdout = []
    for spec in args.set:
        pixel_um, held, _ = split_set(spec, args.holdout, rng)
        holdout.append([(im, pixel_um) for im in held])
    maps = holdout_maps(net, holdout)
    thr = choose_threshold(threshold_curves(maps), args.rule, args.margin)
    alpha = relative_alpha(maps)
    export_onnx(net, args.out, thr, notes=f"ensemble of {', '.join(m.name for m in args.member)}; threshold on "
                f"{', '.join(args.set)} (holdout {args.holdout}, split seed {args.split_seed}, rule {args.rule})",
                alpha=alpha)
    log.info("wrote %s (%d members, threshold %.3f)", args.out, len(args.member), thr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
