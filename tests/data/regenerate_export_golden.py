"""Regenerate the golden model bundle the edge tests read (run by hand, never by the tests).

    .venv/bin/python tests/data/regenerate_export_golden.py

Writes ``tests/data/export/tiny-1.0.0.stainless`` (RRDB n_b=1, 8 features, recipe le8 on thesis-43,
16x16 patches; fp32 + fp16 + int8 models, one golden pair of 2 cells) and ``tiny.pub``, the public half
of a throw-away key (the private half is discarded: tests that need to re-sign make their own key).
The edge tests check that the reader still accepts this stored bundle, so regenerate it only when the
bundle format changes on purpose (bump the manifest schema version then).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from export.bundle import BundleConfig, build_bundle
from export.keys import keygen, load_private_key
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from trainer.checkpoint import save_checkpoint
from trainer.models import RRDBGenerator

OUT = Path(__file__).parent / "export"
KWARGS = {"n_blocks": 1, "features": 8, "growth": 4, "res_scale": 0.2, "output": "sigmoid"}


def tiny_checkpoint(path: Path, patch: int = 16, seed: int = 0) -> Path:
    """A checkpoint in the trainer's format holding an untrained tiny RRDB generator."""
    recipe = resolve_recipe("le8", get_profile("thesis-43"))
    torch.manual_seed(seed)
    model = RRDBGenerator(3 * len(recipe), **KWARGS)
    save_checkpoint(path, {
        "kind": "best", "config": {"model": {"generator": "rrdb", **KWARGS}}, "epoch": 1, "step": 1,
        "metrics": {"val_loss": 0.1},
        "model": {"generator": "rrdb", "kwargs": KWARGS, "in_channels": 3 * len(recipe), "patch_size": patch},
        "generator": model.state_dict(),
        "recipe": {"id": recipe.id, "hash": recipe.hash, "channel_names": list(recipe.channel_names)},
    })
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = tiny_checkpoint(Path(tmp) / "best.pt")
        priv, pub, kid = keygen(Path(tmp) / "keys")
        cfg = BundleConfig("tiny", "1.0.0", int8=True, golden_count=2, calibration_count=8)
        report = build_bundle(ckpt, cfg, OUT / "tiny-1.0.0.stainless", load_private_key(priv))
        (OUT / "tiny.pub").write_bytes(pub.read_bytes())
    print(f"wrote {report.path} signed by {kid}: {report.members}")


if __name__ == "__main__":
    main()
