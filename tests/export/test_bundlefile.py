"""``export.bundlefile.resign_bundle``: the same members under a new version and key, the source verified first."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device.bundle import read_members, verify_bundle
from edge.device.errors import BundleError
from edge.device.manifest import MANIFEST_NAME, SIGNATURE_NAME
from export.bundlefile import resign_bundle
from export.errors import ExportError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "default.stainless"
DEMO_PUB = ROOT / "models" / "demo-key" / "stainless-signing.pub"


def test_a_resigned_bundle_keeps_every_member_and_verifies_with_the_new_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    out = resign_bundle(SHIPPED, "0.3.0", key, tmp_path / "new.stainless", DEMO_PUB)
    report = verify_bundle(out, key.public_key(), require_signature=True, run_self_test=False)
    assert report.manifest is not None and report.manifest.version == "0.3.0"
    report.raise_for_failure()
    old, new = read_members(SHIPPED), read_members(out)
    skip = (MANIFEST_NAME, SIGNATURE_NAME)
    assert {k: v for k, v in old.items() if k not in skip} == {k: v for k, v in new.items() if k not in skip}
    with pytest.raises(BundleError):  # the demo key no longer vouches for it
        verify_bundle(out, DEMO_PUB, require_signature=True, run_self_test=False).raise_for_failure()


def test_resigning_refuses_a_bad_version_or_a_source_the_given_key_did_not_sign(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ExportError, match="semantic version"):
        resign_bundle(SHIPPED, "latest", key, tmp_path / "x.stainless")
    with pytest.raises(BundleError):
        resign_bundle(SHIPPED, "0.3.0", key, tmp_path / "x.stainless", key.public_key())
    assert not (tmp_path / "x.stainless").exists()
