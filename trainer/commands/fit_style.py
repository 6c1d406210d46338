"""``stainless-train fit-style CONFIG.toml [--threads N] [--json]``: learn a stain style from unpaired images."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from trainer.commands.common import emit, set_threads
from trainer.style.config import load_style_config
from trainer.style.fit import fit_style


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fit-style", help="train a CycleGAN stain style (A → B) from two folders of unpaired images")
    p.add_argument("config", type=Path)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: all CPUs)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    cfg = load_style_config(args.config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the loop saves style.pt after the current step and returns

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = fit_style(cfg, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    m = result.metrics
    emit(result.to_dict(), args.json,
         f"{result.status} after {result.epoch} epoch(s), {result.step} steps; style {cfg.train.style!r} in "
         f"{result.run_dir}/style.pt; colour shift {m.get('shift', float('nan')):.2f} toward B, nucleus IoU "
         f"before/after {m.get('nucleus_iou', float('nan')):.3f}; strip: {result.run_dir}/strip.png")
    return 130 if result.status == "interrupted" else 0
