"""Deterministic train/val/test assignment by slide (or by field for single-slide sets).

A unit (a slide id) goes to a split by a hash of its name, so the assignment never depends on
which other slides exist, on build order or on resuming: adding slides later never moves a slide
that is already in the store, and no slide ever lands in two splits. With few slides the
proportions are only approximately 8:1:1; the build report prints the counts.
"""

from __future__ import annotations

import hashlib

from trainer.data.store import SPLITS


def unit_fraction(unit: str, salt: str = "") -> float:
    """A stable number in [0, 1) for ``unit``: the first 8 bytes of SHA-256(salt/unit)."""
    digest = hashlib.sha256(f"{salt}/{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(unit: str, ratios: tuple[float, float, float] = (8.0, 1.0, 1.0), salt: str = "") -> str:
    """The split (``train``, ``val`` or ``test``) of ``unit`` under ``ratios`` (any scale)."""
    total = sum(ratios)
    if total <= 0 or any(r < 0 for r in ratios) or len(ratios) != len(SPLITS):
        raise ValueError(f"split ratios must be {len(SPLITS)} non-negative numbers, not all 0; found {ratios}")
    u = unit_fraction(unit, salt) * total
    edge = 0.0
    for name, r in zip(SPLITS, ratios, strict=True):
        edge += r
        if u < edge:
            return name
    return list(SPLITS)[-1]
