"""``stainless-train distill --config C --students "n_blocks=1,features=16;features=8,recipe=le8" --out DIR``.

The config must set ``loss.teacher``; each student overrides ``[model]`` keys (and optionally the
recipe). Prints the trade-off table: GFLOP and measured ms per cell against SSIM and nucleus fidelity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.config import ConfigError
from trainer.commands.common import emit, set_threads
from trainer.config import load_config
from trainer.distill import tradeoff


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("distill", help="train smaller students from a teacher; report quality vs cost")
    p.add_argument("--config", type=Path, required=True, help="student training config with loss.teacher set")
    p.add_argument("--students", required=True, help='";"-separated students of ","-separated key=value')
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def parse_students(text: str) -> list[dict[str, Any]]:
    """``"n_blocks=1,features=16;recipe=le8"`` → ``[{"n_blocks": 1, "features": 16}, {"recipe": "le8"}]``."""
    students = []
    for part in filter(None, (s.strip() for s in text.split(";"))):
        spec: dict[str, Any] = {}
        for item in filter(None, part.split(",")):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--students: expected key=value, found {item!r}")
            spec[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
        students.append(spec)
    return students


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    cfg = load_config(args.config)
    if not cfg.loss.teacher:
        raise ConfigError(f"{args.config}: loss.teacher must name the teacher's checkpoint")
    rows = tradeoff(cfg, parse_students(args.students), args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tradeoff.json").write_text(json.dumps(rows, indent=2))
    lines = [f"{'model':40s} {'recipe':11s} {'GFLOP':>7s} {'ms/cell':>8s} {'SSIM':>7s} {'ΔSSIM':>7s} "
             f"{'nuc IoU':>7s} {'flagged':>7s}"]
    lines += [f"{r['model']:40s} {r['recipe']:11s} {r['gflop_per_cell']:7.3f} {r['ms_per_cell']:8.2f} "
              f"{r['ssim']:7.4f} {r['ssim_drop']:7.4f} {r['nucleus_iou']:7.3f} {r['flagged_rate']:7.3f}" for r in rows]
    emit({"rows": rows}, args.json, "\n".join(lines))
    return 0
