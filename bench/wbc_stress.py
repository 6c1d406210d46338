"""White-cell finder under another lab's photographs: the photo bench on perturbed copies.

    python bench/wbc_stress.py --data ../shared/data/wbc-photos [--sets pig/test,pig/valid] [--every 1]
        [--perturb all|NAME,NAME] [--method cnn|net|...] [--stage2 ...] [--baseline net] [--json]

Every photograph is changed as a different lab, microscope or camera would change it, as 8-bit sRGB
(the form a finder meets): half or double the resolution, soft focus, heavy JPEG, stain hue turned
±25°, saturation halved (a faded or poorly differentiated stain) or raised 1.6x, another camera gamma,
a bluish white balance, under-exposure (:data:`PERTURBATIONS`). Then, per perturbation, the finder and
a baseline finder run exactly as ``bench/wbc_photos.py`` runs them (``auto`` scale read from the
changed photographs, the same match rule; boxes follow a change of size). The table gives F1 per set
for both and, per perturbation, the finder's mean F1 over the sets relative to its own on the
unchanged photographs (``none``, run in the same process): a reading of robustness, not a target.
A set whose scale cannot be read under a perturbation is reported as left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wbc_photos import Perturb, run
from trainer.data.config import WBC_METHODS, WbcConfig, photo_finder
from trainer.errors import TrainerError

log = logging.getLogger(__name__)


def _hwc(f: Any) -> Perturb:
    """A change written on an (H, W, 3) RGB image, applied to the bench's (3, H, W)."""
    def apply(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        out = f(np.ascontiguousarray(np.moveaxis(rgb, 0, -1)))
        return np.ascontiguousarray(np.moveaxis(np.asarray(out, np.uint8), -1, 0))
    return apply


def _hsv(img: NDArray[np.uint8], hue_deg: float = 0.0, sat: float = 1.0) -> NDArray[np.uint8]:
    h = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    h[..., 0] = np.mod(h[..., 0] + hue_deg / 360 * 256, 256)
    h[..., 1] = np.clip(h[..., 1] * sat, 0, 255)
    return cv2.cvtColor(np.round(h).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


def _jpeg(img: NDArray[np.uint8], quality: int) -> NDArray[np.uint8]:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise TrainerError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def _gamma(img: NDArray[np.uint8], g: float) -> NDArray[np.uint8]:
    return np.round(255 * (img / 255.0) ** g).astype(np.uint8)


PERTURBATIONS: dict[str, Perturb | None] = {
    "none": None,
    "half-size": _hwc(lambda im: cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)),
    "double-size": _hwc(lambda im: cv2.resize(im, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)),
    "blur-2px": _hwc(lambda im: cv2.GaussianBlur(im, (0, 0), 2.0)),
    "jpeg-25": _hwc(lambda im: _jpeg(im, 25)),
    "hue+25": _hwc(lambda im: _hsv(im, hue_deg=25)),
    "hue-25": _hwc(lambda im: _hsv(im, hue_deg=-25)),
    "saturation-0.5": _hwc(lambda im: _hsv(im, sat=0.5)),
    "saturation-1.6": _hwc(lambda im: _hsv(im, sat=1.6)),
    "gamma-0.6": _hwc(lambda im: _gamma(im, 0.6)),
    "gamma-1.6": _hwc(lambda im: _gamma(im, 1.6)),
    "bluish": _hwc(lambda im: np.clip(im * np.array([0.8, 1.0, 1.25]), 0, 255)),
    "dark": _hwc(lambda im: im * 0.55),
}


def stress(data: Path, finders: dict[str, WbcConfig], names: list[str], sets: list[str] | None,
           every: int = 1) -> dict[str, Any]:
    """Per perturbation and finder: per set recall, precision and F1, sets left out, mean F1 over the
    sets scored, and that mean relative to the finder's own on the unchanged photographs."""
    out: dict[str, Any] = {}
    for name in ["none", *[n for n in names if n != "none"]]:
        out[name] = {}
        for label, cfg in finders.items():
            scores, _, skipped = run(data, cfg, "auto", 5.0, sets, perturb=PERTURBATIONS[name], every=every)
            per_set = {k: {m: round(getattr(v, m), 3) for m in ("recall", "precision", "f1")}
                       for k, v in scores.items()}
            mean = float(np.mean([d["f1"] for d in per_set.values()])) if per_set else 0.0
            ref = out["none"][label]["mean_f1"] if name != "none" else mean
            out[name][label] = {"sets": per_set, "mean_f1": round(mean, 3),
                                "relative": round(mean / ref, 3) if ref else 0.0,
                                **({"left_out": skipped} if skipped else {})}
            log.info("%s, %s: mean F1 %.3f", name, label, mean)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/wbc-photos"))
    p.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    p.add_argument("--every", type=int, default=1, help="every n-th photograph of each set")
    p.add_argument("--perturb", default="all", help=f"all, or some of: {', '.join(list(PERTURBATIONS)[1:])}")
    p.add_argument("--method", choices=WBC_METHODS, default=None, help="finder (default: the photo default, as "
                   "find-wbc)")
    p.add_argument("--stage2", default=None, help="as the photo bench's")
    p.add_argument("--baseline", choices=WBC_METHODS, default="net",
                   help="a second finder run alongside, without a second stage")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = list(PERTURBATIONS) if args.perturb == "all" else [n for n in args.perturb.split(",") if n]
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown or args.every < 1:
        print(f"wbc_stress: error: expected --perturb all or names from {', '.join(PERTURBATIONS)} and "
              f"--every >= 1, found {','.join(unknown) or '-'} / {args.every}", file=sys.stderr)
        return 2
    method, stage2 = photo_finder(args.method, args.stage2)
    label = f"{method}+{stage2}" if stage2 != "off" else method
    if label == args.baseline:
        print(f"wbc_stress: error: the finder and --baseline are both {label}; name another baseline",
              file=sys.stderr)
        return 2
    finders = {label: WbcConfig(method=method, stage2=stage2), args.baseline: WbcConfig(method=args.baseline)}
    try:
        report = stress(args.data, finders, names, [s for s in args.sets.split(",") if s] or None, args.every)
    except TrainerError as exc:
        print(f"wbc_stress: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"finders": list(finders), "every": args.every, "perturbations": report}, indent=1))
        return 0
    labels = list(finders)
    sets = sorted({s for r in report.values() for d in r.values() for s in d["sets"]})
    print(f"F1 per set, {labels[0]} ({labels[1]}); mean relative to the unchanged photographs")
    print(f"{'perturbation':<16}" + "".join(f"{s:>18}" for s in sets) + f"{'relative':>10}{'baseline':>10}")
    for name, r in report.items():
        cells = [f"{r[labels[0]]['sets'][s]['f1']:.3f} ({r[labels[1]]['sets'][s]['f1']:.3f})"
                 if s in r[labels[0]]["sets"] and s in r[labels[1]]["sets"] else "left out" for s in sets]
        print(f"{name:<16}" + "".join(f"{c:>18}" for c in cells)
              + f"{r[labels[0]]['relative']:>10.3f}{r[labels[1]]['relative']:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
