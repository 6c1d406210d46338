"""Where the shared real data sets are: ``$STAINLESS_DATA``, else ``../shared/data`` beside the checkout
(or one level up for worktrees). Tests that read them skip with a reason when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def shared_data(name: str) -> Path:
    """The first existing ``<data root>/name`` (the last candidate when none exists)."""
    roots = (Path(os.environ.get("STAINLESS_DATA", "/nonexistent")), _ROOT.parent / "shared/data",
             _ROOT.parent.parent / "shared/data")
    return next((r / name for r in roots if (r / name).is_dir()), roots[1] / name)


WBC_PHOTOS = shared_data("wbc-photos")
