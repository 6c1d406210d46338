"""``stainless-train ablation --config C --recipes full-nohe,le18,brightfield [--seeds 0,1] --out DIR
[--resume] [--json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.ablation import format_table, run_ablation
from trainer.commands.common import emit, set_threads
from trainer.config import load_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ablation", help="train + evaluate one model per stack recipe and seed (seed Table 4.1)")
    p.add_argument("--config", type=Path, required=True, help="base training config (TOML)")
    p.add_argument("--recipes", required=True, help="comma-separated sub-recipes of the dataset's capture")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds per recipe")
    p.add_argument("--generators", default="", help="comma-separated generators (default: the config's)")
    p.add_argument("--epochs", type=int, default=0, help="epochs per run (default: the config's train.epochs)")
    p.add_argument("--dataset", type=Path, help="dataset store (default: the config's data.path)")
    p.add_argument("--out", type=Path, required=True, help="folder for the runs and ablation.json")
    p.add_argument("--resume", action="store_true",
                   help="continue the runs already in OUT from their last.pt (finished ones are only re-evaluated)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    base = load_config(args.config)
    if args.epochs:
        base = base.with_overrides(train={"epochs": args.epochs})
    if args.dataset:
        base = base.with_overrides(data={"path": str(args.dataset)})
    result = run_ablation(base, [r for r in args.recipes.split(",") if r],
                          [int(s) for s in args.seeds.split(",") if s], args.out,
                          [g for g in args.generators.split(",") if g] or None, resume=args.resume)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps(result, indent=2))
    emit(result, args.json, format_table(result["table"]))
    return 0
