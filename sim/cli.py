"""``stainless-sim``: simulate raw scans of synthetic blood smears and look at them."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from firmware_bridge.errors import BridgeError
from firmware_bridge.geometry import PROFILES
from sim.rawscan import RawScanError, read_truth
from sim.scan import ScanConfig, scan
from sim.show import write_contact_sheet

log = logging.getLogger("stainless.sim")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (e.g. 512x512), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"field size must be positive, got {text!r}")
    return (w, h)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stainless-sim", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan", help="simulate N fields of a slide into a raw-scan folder")
    s.add_argument("--fields", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--profile", default="thesis-43", help=f"LED array ({', '.join(PROFILES)})")
    s.add_argument("--recipe", default="full", help="stack recipe (full, full-nohe, le36, ..., na0-0.6)")
    s.add_argument("--field-size", type=_size, default=(512, 512), metavar="WxH")
    s.add_argument("--stained", action="store_true", help="also write the stained re-scan")
    s.add_argument("--hr", action="store_true", help="also write 100x/1.25 NA tiles of every white cell")
    s.add_argument("--stain-style", default="mgg", help="mgg or wright-giemsa")
    s.add_argument("--wbc-density", type=float, default=None, help="white cells per mm² (default realistic)")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    v = sub.add_parser("show", help="draw a contact sheet of one field folder")
    v.add_argument("field", type=Path, help="a fields/field_NNNN folder")
    v.add_argument("--out", type=Path, required=True, help="PNG to write")
    return p


def _scan(args: argparse.Namespace) -> int:
    smear = {} if args.wbc_density is None else {"wbc_per_mm2": args.wbc_density}
    config = ScanConfig(profile=args.profile, recipe=args.recipe, fields=args.fields, seed=args.seed,
                        field_size_px=args.field_size, stained=args.stained, hr=args.hr,
                        stain_style=args.stain_style, smear=smear)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"field {done}/{total} written ({time.perf_counter() - start:.1f} s)", file=sys.stderr)

    fields = scan(config, args.out, progress)
    wbcs = sum(len(read_truth(args.out, i)["wbcs"]) for i in range(len(fields)))
    summary = {"out": str(args.out), "fields": len(fields), "white_cells": wbcs,
               "seconds": round(time.perf_counter() - start, 2)}
    print(json.dumps(summary) if args.json else f"wrote {len(fields)} fields ({wbcs} white cells) to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "scan":
            return _scan(args)
        print(f"wrote {write_contact_sheet(args.field, args.out)}")
        return 0
    except (ValueError, BridgeError, RawScanError, OSError) as exc:
        print(f"stainless-sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
