"""``stainless-train denoise --out DIR [--factor K] [--skips log-add,multiply,divide] [--json]``.

Renders simulator fields, trains one despeckling net per skip connection on (short-exposure,
noise-free) darkfield planes, keeps the best on held-out planes (``DIR/denoiser.pt``), and reports
whether it improves staining at that exposure (``DIR/report.json``, ``DIR/figure.png``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from trainer.commands.common import emit, set_threads
from trainer.denoise import (
    NOISES,
    SKIPS,
    DenoiseTrainConfig,
    PairConfig,
    apply_planes,
    plane_pairs,
    render_field,
    save_denoiser,
    train_denoiser,
)
from trainer.denoise_eval import figure, open_generator, plane_ssim, score_field, summarise

log = logging.getLogger(__name__)
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default.stainless"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("denoise", help="train darkfield despeckling nets on simulator pairs; effect on staining")
    p.add_argument("--out", type=Path, required=True, help="folder for denoiser.pt, report.json, figure.png")
    p.add_argument("--factor", type=float, default=8.0, help="darkfield exposure k times shorter (gained back)")
    p.add_argument("--noise", choices=NOISES, default="camera", help="camera (simulator sensor) or a speckle model")
    p.add_argument("--looks", type=float, default=1.0, help="gamma speckle: looks L")
    p.add_argument("--skips", default=",".join(SKIPS[:2]), help=f"comma list of {', '.join(SKIPS)}")
    p.add_argument("--fields", type=int, default=12, help="training fields")
    p.add_argument("--eval-fields", type=int, default=6, help="held-out fields (staining is scored on them)")
    p.add_argument("--size", type=int, default=160, help="field side (px)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--kernel", type=int, default=5)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="generator: .stainless bundle or .onnx")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    skips = [s for s in args.skips.split(",") if s]
    if not skips or any(s not in SKIPS for s in skips):
        raise ValueError(f"--skips {args.skips!r}: choose from {', '.join(SKIPS)}")
    common = {"size_px": args.size, "exposure_factor": args.factor, "noise": args.noise, "looks": args.looks}
    t0 = time.perf_counter()
    train = [render_field(PairConfig(fields=args.fields, seed=args.seed, **common), i) for i in range(args.fields)]
    held = [render_field(PairConfig(fields=args.eval_fields, seed=args.seed + 1, **common), i)
            for i in range(args.eval_fields)]
    log.info("rendered %d + %d fields in %.1f s", len(train), len(held), time.perf_counter() - t0)
    noisy, clean = plane_pairs(train)
    nets: dict[str, Any] = {}
    for skip in skips:
        cfg = DenoiseTrainConfig(skip=skip, layers=args.layers, features=args.features, kernel=args.kernel,
                                 steps=args.steps, seed=args.seed)
        t1 = time.perf_counter()
        net = train_denoiser(noisy, clean, cfg)
        ssim_out = sum(plane_ssim(apply_planes(net, f.noisy), f.clean) for f in held) / len(held)
        nets[skip] = {"net": net, "cfg": cfg, "ssim_output": ssim_out, "train_s": time.perf_counter() - t1}
        log.info("%s: held-out plane SSIM %.4f (%.0f s)", skip, ssim_out, nets[skip]["train_s"])
    best = max(nets, key=lambda s: nets[s]["ssim_output"])
    generator = open_generator(args.model, args.threads)
    scores = [score_field(f, nets[best]["net"], generator) for f in held]
    report = {"factor": args.factor, "noise": args.noise, "model": str(args.model), "best_skip": best,
              "skips": {s: {"ssim_output": v["ssim_output"], "train_s": round(v["train_s"], 1)}
                        for s, v in nets.items()},
              **summarise(scores)}
    save_denoiser(nets[best]["net"], nets[best]["cfg"], args.out / "denoiser.pt", report)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    figure(held[0], scores[0]["denoised"], generator, args.out / "figure.png")
    st = report["staining"]
    text = (f"best {best}; planes SSIM short {report['planes']['ssim_short']:.3f} → denoised "
            f"{report['planes']['ssim_denoised']:.3f}; staining SSIM calibrated {st['calibrated']['ssim']:.4f}, "
            f"short {st['short']['ssim']:.4f}, denoised {st['denoised']['ssim']:.4f}, noise-free "
            f"{st['noise-free']['ssim']:.4f} over {report['cells']} cells → "
            f"{'improves' if report['improves_staining'] else 'does NOT improve'} staining")
    emit(report, args.json, text)
    return 0
