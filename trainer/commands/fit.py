"""``stainless-train fit CONFIG.toml [--resume] [--json]``."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from trainer.commands.common import emit, set_threads
from trainer.config import load_config
from trainer.fit import fit
from trainer.runlog import Progress

#: Exit codes: 0 finished / early-stopped / stopped-after-steps, 128+signal when interrupted.
INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fit", help="train a generator from a TOML config")
    p.add_argument("config", type=Path)
    p.add_argument("--resume", action="store_true", help="continue the run in train.out from last.pt")
    p.add_argument("--stop-after-steps", type=int, default=0, metavar="N",
                   help="debug: save last.pt and stop after N optimiser steps in total")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: CPUs / local processes)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    cfg = load_config(args.config)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()  # the loop saves last.pt after the current step and returns

    previous = {s: signal.signal(s, on_signal) for s in INTERRUPTED}
    try:
        main_rank = os.environ.get("RANK", "0") == "0"
        result = fit(cfg, resume=args.resume, stop_after_steps=args.stop_after_steps, stop=stop,
                     progress=Progress(cfg.train.log_every_steps, enabled=None if main_rank else False))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if main_rank:
        emit(result.to_dict(), args.json,
             f"{result.status} at epoch {result.epoch}, step {result.step}; best val_loss {result.best_val_loss:.5f} "
             f"(epoch {result.best_epoch}); checkpoints in {result.run_dir}")
    return INTERRUPTED[signal.Signals(received[0])] if result.status == "interrupted" and received else 0
