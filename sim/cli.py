"""``stainless-sim``: simulate raw scans of synthetic blood smears and look at them."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.rawscan import RawScanError, read_truth
from firmware_bridge.errors import BridgeError
from firmware_bridge.geometry import PROFILES
from sim.scan import ScanConfig, scan
from sim.show import write_contact_sheet
from sim.stack_sim import EdgeStray

if TYPE_CHECKING:
    from sim.realstack import RealStack

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
    c = sub.add_parser("compare-real", help="a real LED-array stack (UConn .mat format) against its simulation")
    c.add_argument("file", type=Path, help="stack with imlow_HDR, wlength, z, theta, xint, yint")
    c.add_argument("--rig", default="uconn-15x15", help="rig the stack was taken with")
    c.add_argument("--stain", default="wright-giemsa", help="stain of the real slide (mgg, wright-giemsa, none)")
    c.add_argument("--medium-n", type=float, default=1.0, help="index around the cells (1.0 air, ~1.5 mounted)")
    c.add_argument("--seed", type=int, default=0, help="seed of the first simulated field")
    c.add_argument("--fields", type=int, default=3,
                   help="simulated fields (seeds SEED, SEED+1, ...) whose measures are averaged, in the slide match "
                        "and in the comparison (default 3; each adds the whole simulation and recovery again)")
    c.add_argument("--objective-na", type=float, default=None,
                   help="objective NA to simulate (default: the pupil edge the real stack shows)")
    c.add_argument("--nominal-na", action="store_true", help="simulate the rig's nominal objective NA")
    c.add_argument("--defocus-um", type=float, default=None,
                   help="simulate and recover FILE at this defocus instead of its z (the file's sign convention "
                        "as read: the simulator's defocus)")
    c.add_argument("--slide-defocus-um", type=float, default=None,
                   help="the same for the --slide-from stack (with --sample recovered)")
    c.add_argument("--cover-from", type=Path, default=None,
                   help="estimate the red-cell coverage on this stack of the same field (best-focused colour)")
    c.add_argument("--cover-method", choices=("blobs", "second"), default="second",
                   help="coverage to simulate: second-order statistics (default) or the blob count (both reported)")
    c.add_argument("--sample", choices=("recovered", "given"), default="recovered",
                   help="simulate the slide as its Fourier-ptychographic recovery measured it (coverage, phase "
                        "delay, absorption; default) or as --stain/--medium-n/--cover-method say")
    c.add_argument("--slide-from", default="auto", metavar="auto|none|FILE",
                   help="with --sample recovered: measure coverage, medium and texture on this stack of the same "
                        "field (default auto: the colour furthest from focus among the stacks of the same field "
                        "in FILE's folder, when it is further than FILE; none: FILE itself)")
    c.add_argument("--diffuse-light", type=_auto_or_number, default=None, metavar="auto|F",
                   help="light returned to the sample from all directions, its image's mean over clear "
                        "brightfield (default auto: measured on the real stack's far correlation; 0: none)")
    c.add_argument("--rbc-texture", type=_auto_or_number, default=None, metavar="auto|F",
                   help="with --sample recovered: the red cells' texture, relative dry-mass variation over ~2.5 µm "
                        "(default auto: matched to the recovered real slide's fine structure, with how patchily "
                        "and how unevenly from cell to cell the cells took up the dye; a number: that texture, "
                        "evenly dyed cells, the style's uptake spread)")
    c.add_argument("--edge-stray", type=_edge_stray, default=None, metavar="auto|off|SHARE,FALLOFF",
                   help="the objective's stray light at the pupil edge: SHARE of an LED's light at FALLOFF NA "
                        "beyond the pupil falling as exp(-d/FALLOFF), spread evenly (default auto: measured on the "
                        "real stack's darkfield dark floor; off: none)")
    c.add_argument("--out", type=Path, default=None, help="PNG of the curves and images")
    c.add_argument("--json", action="store_true")
    r = sub.add_parser("recover-real", help="recover a real LED-array stack's complex transmission (Fourier "
                       "ptychography) and measure what the slide is made of")
    r.add_argument("file", type=Path, help="stack with imlow_HDR, wlength, z, theta, xint, yint")
    r.add_argument("--rig", default="uconn-15x15", help="rig the stack was taken with")
    r.add_argument("--iterations", type=int, default=12, help="passes over every LED (default 12)")
    r.add_argument("--defocus-um", type=float, default=None, help="defocus to start from (default: the file's z)")
    r.add_argument("--out", type=Path, default=None, help="PNG: amplitude, phase and material mask")
    r.add_argument("--json", action="store_true")
    i = sub.add_parser("import-real", help="a real LED-array stack as a raw scan (replay:// can run it)")
    i.add_argument("file", type=Path)
    i.add_argument("--out", type=Path, required=True, help="raw-scan folder to write (field_0000)")
    i.add_argument("--rig", default="uconn-15x15")
    i.add_argument("--json", action="store_true")
    return p


def _auto_or_number(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number such as 0.001, got {text!r}") from None


def _edge_stray(text: str) -> EdgeStray | None:
    if text == "auto":
        return None
    if text == "off":
        return EdgeStray()
    try:
        share, falloff = (float(v) for v in text.split(","))
        return EdgeStray(share, falloff)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'auto', 'off' or SHARE,FALLOFF such as 0.04,0.03, got {text!r} "
                                         f"({exc})") from None


def _corr(value: float | None) -> str:
    return "  -  " if value is None else f"{value:5.2f}"


def _ratio(v: float | None) -> str:
    return f"1/{1 / v:7.1f}" if v else "      -"


def _at_defocus(stack: RealStack, defocus_um: float | None) -> RealStack:
    """``stack`` with its defocus replaced (the file's z is the stage's; its images may prefer another)."""
    return stack if defocus_um is None else dataclasses.replace(stack, defocus_um=defocus_um)


def _compare(args: argparse.Namespace) -> int:
    from sim.compare_plot import write_compare_png
    from sim.compare_real import CompareConfig, compare_real
    from sim.realstack import furthest_from_focus, read_real_stack
    from sim.slide_match import compare_as_recovered

    stack = _at_defocus(read_real_stack(args.file), args.defocus_um)
    config = CompareConfig(args.rig, "" if args.stain == "none" else args.stain, args.medium_n, args.seed,
                           args.objective_na, args.nominal_na, args.cover_method, args.diffuse_light,
                           args.rbc_texture, args.edge_stray, args.fields)
    if args.sample == "recovered":
        slide_from = (furthest_from_focus(stack) if args.slide_from == "auto" else
                      None if args.slide_from == "none" else read_real_stack(args.slide_from))
        if slide_from is not None:
            slide_from = _at_defocus(slide_from, args.slide_defocus_um)
        report, sim_images = compare_as_recovered(stack, config, slide_from)
    else:
        cover_from = read_real_stack(args.cover_from) if args.cover_from else None
        report, sim_images = compare_real(stack, config, cover_from)
    if args.out is not None:
        idx = report["images"]
        report["png"] = str(write_compare_png(report, stack.images, sim_images, idx["centre"], idx["darkfield"],
                                              args.out))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.file} ({report['wavelength_nm']:.0f} nm, defocus {report['defocus_um']:.0f} µm, "
          f"simulated red-cell coverage {report['coverage']['sim_rbc_cover']:.3f}, objective NA "
          f"{report['objective_na']:.4f} from the {report['objective_na_from']})")
    seeds = report["sample"]["seeds"]
    print(f"simulated: the mean of {len(seeds)} field{'s' if len(seeds) > 1 else ''} (seeds "
          f"{', '.join(map(str, seeds))}); sim DF/BF per field in --json (bins[].sim_df_bf_fields)")
    print("NA bin       LEDs  real DF/BF  sim DF/BF  factor  neighbour corr real / sim  dark floor real / sim")
    for b in report["bins"]:
        print(f"{b['na_lo']:.2f}-{b['na_hi']:.2f}  {b['n_leds']:4d}  {_ratio(b['real_df_bf'])}  "
              f"{_ratio(b['sim_df_bf'])}  x{b['factor'] or 0:.2f}   {_corr(b['real_neighbour_corr'])} / "
              f"{_corr(b['sim_neighbour_corr'])}            {_corr(b['real_dark_floor'])} / "
              f"{_corr(b['sim_dark_floor'])}")
    c = report["bf_contrast"]
    print(f"brightfield contrast: real {c['real']:.3f}, sim {c['sim']:.3f}")
    f = report["far_corr"]
    print(f"darkfield above NA {f['min_na']} lit >= {f['apart_na']} NA apart, correlation: real {_corr(f['real'])}, "
          f"sim {_corr(f['sim'])} (light the same from every angle)")
    d = report["diffuse_light"]
    print(f"light returned from all directions: {d['level']:.2e} of brightfield (from {d['from']})")
    e = report["edge_stray"]
    print(f"stray light at the pupil edge: {e['share']:.3f} of the beam, falling over {e['falloff_na']:.3f} NA "
          f"(from {e['from']})")
    cov = report["coverage"]
    if "recovered" in report:
        rec = report["recovered"]
        print(f"slide (coverage, medium, texture) measured on {rec['slide_from']}")
        print("recovered slide  coverage  OD     phase (rad)  fine   fine: log-amplitude  phase  (sim: 1st field)")
        for side in ("real", "sim"):
            m = rec[side]
            print(f"{side:15s}  {m['coverage']:.3f}     {m['od']:.3f}  {m['phase_rad']:.3f}        {m['fine']:.3f}"
                  f"                {m['fine_amplitude']:.3f}  {m['fine_phase']:.3f}")
        bands = rec["real"]["band_power"]
        edges = bands["na_edges"]
        print("recovered object's variance per frequency band (as NA), real / sim: "
              + ", ".join(f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)))
        for key in ("log_amplitude", "phase"):
            ratios = (_factor_text(r, s) for r, s in zip(bands[key], rec["sim"]["band_power"][key], strict=True))
            print(f"  {key.replace('_', '-'):13s}  " + ", ".join(ratios))
        print("share of each bin's darkfield one thin object fitted to the other images predicts, real / sim: "
              + ", ".join(f"{_share_text(r)} / {_share_text(s)}"
                          for r, s in zip(rec["real"]["explained"], rec["sim"]["explained"], strict=True)))
        g = rec["simulated"]
        print(f"simulated: rbc_cover {g['rbc_cover']:.3f}, medium index {g['medium_n']:.3f}, stain "
              f"x{g['stain_factor']:.2f}, red-cell texture {g['rbc_texture']:.3f}, "
              f"patchy dye {g['rbc_patchiness']:.3f}")
        for w in rec["warnings"]:
            print(f"warning: {w}")
    else:
        print(f"red-cell coverage: blob count {cov['blob_rbc_cover']:.3f}, second-order "
              f"{cov['second_estimate']['rbc_cover']:.3f} (simulated: {cov['used']})")
    return 0


def _factor_text(real: float, sim: float) -> str:
    return f"x{real / sim:.2f}" if sim > 0 else "-"


def _share_text(share: float | None) -> str:
    return "-" if share is None else f"{share:.2f}"


def _recover(args: argparse.Namespace) -> int:
    from sim.fpm import RELIABLE_SIGN_MARGIN, FpmConfig, explained_bins, measure_field, recover, write_recovery_png
    from sim.realstack import read_real_stack

    stack = read_real_stack(args.file)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"pass {done}/{total} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)

    rig = stack.rig(args.rig)
    rec = recover(stack, rig, FpmConfig(iterations=args.iterations, defocus_um=args.defocus_um), progress)
    report = {"file": str(args.file), "wavelength_nm": stack.wavelength_nm, "file_defocus_um": stack.defocus_um,
              "defocus_um": rec.defocus_um, "grid_turned": rec.grid_turned, "residuals": list(rec.residuals),
              "sign_margin": rec.sign_margin,
              **measure_field(rec, stack.wavelength_nm), "bins": explained_bins(stack, rig, rec)}
    if args.out is not None:
        report["png"] = str(write_recovery_png(rec, args.out))
    if args.json:
        print(json.dumps(report))
        return 0
    cells = report["cells"]
    print(f"{args.file} ({stack.wavelength_nm:.0f} nm): recovered at {rec.pixel_um:.3f} µm pixels, residual "
          f"{rec.residuals[-1]:.4f} (other defocus sign x{rec.sign_margin:.2f}); defocus {rec.defocus_um:+.0f} µm, "
          f"LED grid turned 180°: {'yes' if rec.grid_turned else 'no'}")
    if rec.sign_margin < RELIABLE_SIGN_MARGIN:
        print("  (close to focus: the sign of the defocus and the slow phase are poorly determined)")
    print(f"material covers {report['coverage']:.3f} of the field; against the empty background it absorbs "
          f"OD {report['od']:.3f} and delays {report['phase_rad']:.2f} rad ({report['opd_nm']:.0f} nm of path)")
    print("darkfield/brightfield by NA: real vs as one thin, coherently lit object fitted to the other images "
          "predicts it")
    for b in report["bins"]:
        print(f"  {b['na_lo']:.2f}-{b['na_hi']:.2f}  {_ratio(b['real_df_bf'])}  {_ratio(b['recovered_df_bf'])}")
    if cells["count"]:
        d, a = cells["diameter_um"], cells["aspect"]
        print(f"separate cells: {cells['count']}, diameter {d['median']:.1f} µm ({d['p10']:.1f}-{d['p90']:.1f}), "
              f"aspect {a['median']:.2f}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from sim.realimport import import_real_stack

    summary = import_real_stack(args.file, args.out, args.rig)
    print(json.dumps(summary) if args.json else f"wrote {summary['field']} ({summary['planes']} planes)")
    return 0


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
        if args.cmd == "compare-real":
            return _compare(args)
        if args.cmd == "recover-real":
            return _recover(args)
        if args.cmd == "import-real":
            return _import(args)
        print(f"wrote {write_contact_sheet(args.field, args.out)}")
        return 0
    except (ValueError, BridgeError, RawScanError, OSError) as exc:
        print(f"stainless-sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
