"""The shipped models (default and fast): signed by the demo key, golden outputs reproduce on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.device.bundle import verify_bundle
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile

ROOT = Path(__file__).resolve().parents[3]
BUNDLE = ROOT / "models" / "default.stainless"
DEMO_KEY = ROOT / "models" / "demo-key" / "stainless-signing.pub"


@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_bundle_verifies_and_reproduces_its_golden_outputs(name: str) -> None:
    recipe = resolve_recipe("full-nohe", get_profile("thesis-43"))
    report = verify_bundle(ROOT / "models" / f"{name}.stainless", DEMO_KEY, require_signature=True,
                           expected_recipe_hash=recipe.hash)
    assert report.ok, report.to_dict()
    assert report.manifest is not None and report.manifest.name == name
    assert report.manifest.channels == recipe.channel_names
    assert report.golden and all(g.passed for g in report.golden)


def test_default_bundle_is_refused_under_another_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    report = verify_bundle(BUNDLE, other, require_signature=True, run_self_test=False)
    assert not report.ok and report.error is not None and "signature" in report.error.code
