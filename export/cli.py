"""``stainless-export``: keys, ONNX, bundles, verification and TensorRT engines.

    stainless-export keygen --out keys/
    stainless-export onnx runs/x/best.pt --out model.onnx [--fp16 model.fp16.onnx]
    stainless-export bundle runs/x/best.pt --name wbc --version 1.0.0 --key keys/stainless-signing.key \\
        --out dist/ [--dataset data.zarr] [--int8] [--openvino-int8]
    stainless-export add-style dist/wbc-1.0.0.stainless --style wright-giemsa=runs/wg/style.pt --version 1.1.0 \\
        --key keys/stainless-signing.key --out dist/
    stainless-export add-openvino-int8 dist/wbc-1.0.0.stainless --dataset data.zarr --version 1.0.1 \\
        --key keys/stainless-signing.key --out dist/
    stainless-export verify dist/wbc-1.0.0.stainless --pubkey keys/stainless-signing.pub [--json]
    stainless-export engine dist/wbc-1.0.0.stainless --fp16 --max-batch 32 [--cache DIR]   (device only)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from core.config import ConfigError
from edge.device.errors import EdgeError
from export.errors import ExportError
from trainer.errors import TrainerError

log = logging.getLogger(__name__)


def _print(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, indent=1, default=str) if args.json else text)


def _keygen(args: argparse.Namespace) -> int:
    from export.keys import keygen

    priv, pub, kid = keygen(args.out, overwrite=args.force)
    _print(args, {"private": str(priv), "public": str(pub), "key_id": kid},
           f"private key {priv} (keep secret)\npublic key  {pub} (install on devices)\nkey id      {kid}")
    return 0


def _onnx(args: argparse.Namespace) -> int:
    from export.calibration import batches, synthetic_stacks
    from export.fp16 import to_fp16
    from export.onnx_export import check_fp32_parity, export_onnx, load_generator, onnx_outputs, parity, save_model

    model, ckpt = load_generator(args.checkpoint)
    c, p = int(ckpt["model"]["in_channels"]), int(ckpt["model"]["patch_size"])
    proto = export_onnx(model, c, p, args.opset)
    x = synthetic_stacks(16, c, p)
    doc: dict[str, Any] = {"onnx": str(args.out), "fp32": check_fp32_parity(model, proto, x).to_dict()}
    save_model(proto, args.out)
    if args.fp16:
        half = to_fp16(proto, batches(x, 8), args.opset)
        save_model(half.model, args.fp16)
        doc["fp16"] = parity("fp16 vs fp32", onnx_outputs(half.model, x), onnx_outputs(proto, x)).to_dict()
        doc["fp32_nodes"] = half.fp32_nodes
    _print(args, doc, "\n".join(f"{k}: {v}" for k, v in doc.items()))
    return 0


def _signing_key(args: argparse.Namespace) -> Any:
    """The private key of ``--key``, None with ``--unsigned``; False (after saying why) with neither."""
    from export.keys import load_private_key

    if args.key:
        return load_private_key(args.key)
    if args.unsigned:
        return None
    print("error: --key PRIVATE is required (or --unsigned for a test bundle devices will refuse)", file=sys.stderr)
    return False


def _bundle(args: argparse.Namespace) -> int:
    from export.bundle import BundleConfig, build_bundle
    from export.style import parse_style_args

    if (key := _signing_key(args)) is False:
        return 2
    cfg = BundleConfig(args.name, args.version, opset=args.opset, int8=args.int8, int8_format=args.int8_format,
                       int8_float_edges=args.int8_float_edges, openvino_int8=args.openvino_int8,
                       batch_max=args.max_batch,
                       batch_opt=min(8, args.max_batch), golden_count=args.golden)
    styles = parse_style_args(args.style) if args.style else None
    report = build_bundle(args.checkpoint, cfg, args.out, key, args.dataset, styles)
    lines = [f"wrote {report.path} (key {report.key_id or 'UNSIGNED'})"]
    lines += [f"  {k}: max {v['max_abs']:.3g}  median {v['median_abs']:.3g}  p99 {v['p99_abs']:.3g}"
              for k, v in report.parity.items()]
    if report.int8_quality:
        lines.append("  int8 quality vs fp32: " + ", ".join(f"{k} {v:.4g}" for k, v in report.int8_quality.items()))
    lines += [f"  gate {k}: {'PASS' if g['passed'] else 'LEFT OUT'} ({g['reason']}; {g['measured_with']})"
              for k, g in report.quality_gate.items()]
    _print(args, report.to_dict(), "\n".join(lines))
    return 0


def _add_style(args: argparse.Namespace) -> int:
    from export.style import parse_style_args, restyle_bundle

    if (key := _signing_key(args)) is False:
        return 2
    path, report = restyle_bundle(args.bundle, parse_style_args(args.style), args.version, key, args.out,
                                  args.pubkey, args.opset)
    lines = [f"wrote {path} (key {'UNSIGNED' if key is None else 'given'})"]
    lines += [f"  style {k}: max |onnx - torch| {v['max_abs']:.3g}" for k, v in report.parity.items()]
    _print(args, {"path": str(path), "parity": report.parity, "members": report.members}, "\n".join(lines))
    return 0


def _add_openvino_int8(args: argparse.Namespace) -> int:
    from export.openvino_int8 import requantize_bundle

    if (key := _signing_key(args)) is False:
        return 2
    path, gate = requantize_bundle(args.bundle, args.dataset, args.version, key, args.out, args.pubkey, args.preset)
    verdict = "PASS: added" if gate.passed else "LEFT OUT"
    _print(args, {"path": str(path), "quality_gate": gate.to_dict()},
           f"wrote {path} (key {'UNSIGNED' if key is None else 'given'})\n  gate openvino-int8: {verdict} "
           f"({gate.reason}; {gate.measured_with})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from edge.device.bundle import verify_bundle

    report = verify_bundle(args.bundle, args.pubkey, require_signature=args.pubkey is not None,
                           expected_recipe_hash=args.recipe_hash)
    marks = {True: "PASS", False: "FAIL", None: "----"}
    text = "\n".join(f"{marks[c.ok]}  {c.name:<10} {c.detail}" for c in report.checks)
    _print(args, report.to_dict(), text + f"\n{'OK' if report.ok else 'REFUSED'}: {args.bundle}")
    return 0 if report.ok else 1


def _engine(args: argparse.Namespace) -> int:
    from export.engine import build_bundle_engine

    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    report = build_bundle_engine(args.bundle, precision, args.cache, args.max_batch, args.pubkey)
    _print(args, report.to_dict(), f"engine {report.engine}: {report.golden.describe()}")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="stainless-export", description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    p.set_defaults(func=_keygen)
    p = sub.add_parser("onnx", help="export a checkpoint to ONNX and check parity with PyTorch")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fp16", type=Path, help="also write the mixed fp16 model here")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=_onnx)
    p = sub.add_parser("bundle", help="build a signed, self-testing model bundle")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True, help="semantic version, e.g. 1.0.0")
    p.add_argument("--key", type=Path, help="private key from `keygen`")
    p.add_argument("--unsigned", action="store_true", help="write without a signature (tests only)")
    p.add_argument("--out", type=Path, required=True, help="bundle file or directory")
    p.add_argument("--dataset", type=Path, help="dataset store for calibration, golden pairs and test metrics")
    p.add_argument("--int8", action="store_true", help="also build the int8 model (kept only if it passes the gate)")
    p.add_argument("--int8-format", choices=("qoperator", "qdq"), default="qoperator",
                   help="qoperator: ONNX Runtime CPU (u8/s8); qdq: TensorRT-compatible (s8/s8)")
    p.add_argument("--int8-float-edges", action="store_true", help="keep the first and last Conv in float")
    p.add_argument("--openvino-int8", nargs="?", const="mixed", default="", choices=("mixed", "performance"),
                   help="also build an OpenVINO int8 IR with NNCF (preset, default mixed; kept only if it passes "
                        "the gate; needs openvino and nncf)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--golden", type=int, default=2, help="golden samples")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--style", action="append", metavar="NAME=STYLE_PT",
                   help="add a stain style from `stainless-train fit-style` (repeatable)")
    p.set_defaults(func=_bundle)
    p = sub.add_parser("add-style", help="a new bundle version with stain styles added (or replaced), re-signed")
    p.add_argument("bundle", type=Path)
    p.add_argument("--style", action="append", required=True, metavar="NAME=STYLE_PT",
                   help="style checkpoint from `stainless-train fit-style` (repeatable)")
    p.add_argument("--version", required=True, help="the new bundle's semantic version")
    p.add_argument("--key", type=Path, help="private signing key")
    p.add_argument("--unsigned", action="store_true", help="write without a signature (tests only)")
    p.add_argument("--pubkey", type=Path, help="check the input bundle's signature with this key first")
    p.add_argument("--out", type=Path, required=True, help="bundle file or directory")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=_add_style)
    p = sub.add_parser("add-openvino-int8", help="a new bundle version with an OpenVINO int8 IR made by NNCF from "
                       "its fp32 ONNX (kept only if it passes the gate), re-signed")
    p.add_argument("bundle", type=Path)
    p.add_argument("--dataset", type=Path, required=True,
                   help="the dataset store the model was trained on: calibration (train split) and gate (test split)")
    p.add_argument("--preset", choices=("mixed", "performance"), default="mixed", help="NNCF quantisation preset")
    p.add_argument("--version", required=True, help="the new bundle's semantic version")
    p.add_argument("--key", type=Path, help="private signing key")
    p.add_argument("--unsigned", action="store_true", help="write without a signature (tests only)")
    p.add_argument("--pubkey", type=Path, help="check the input bundle's signature with this key first")
    p.add_argument("--out", type=Path, required=True, help="bundle file or directory")
    p.set_defaults(func=_add_openvino_int8)
    p = sub.add_parser("verify", help="check a bundle's signature, hashes, models and golden outputs")
    p.add_argument("bundle", type=Path)
    p.add_argument("--pubkey", type=Path, help="trusted public key; without it the signature is not checked")
    p.add_argument("--recipe-hash", help="refuse unless the bundle's recipe hash is this")
    p.set_defaults(func=_verify)
    p = sub.add_parser("engine", help="build a TensorRT engine from a bundle (on the device)")
    p.add_argument("bundle", type=Path)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp16", action="store_true")
    group.add_argument("--int8", action="store_true")
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--cache", type=Path, default=Path("engines"))
    p.add_argument("--pubkey", type=Path)
    p.set_defaults(func=_engine)
    for name in ("keygen", "onnx", "bundle", "add-style", "add-openvino-int8", "verify", "engine"):
        sub.choices[name].add_argument("--json", action="store_true", help="machine-readable output")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except EdgeError as exc:
        print(f"error [{getattr(exc, 'code', type(exc).__name__)}]: {exc}", file=sys.stderr)
        return 1
    except (ExportError, TrainerError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
