from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import rawscan


def _meta(n: int) -> dict[str, object]:
    return {"schema_version": rawscan.SCHEMA_VERSION, "pixel_size_um": 0.5, "color_channels": ["r", "g", "b"],
            "planes": [{"channel": f"img{i}", "exposure_ms": 1.0, "gain": 1.0} for i in range(n)]}


def test_image_field_round_trip(tmp_path: Path) -> None:
    stack = np.random.default_rng(0).integers(0, 4095, (2, 3, 8, 10), dtype=np.uint16)
    rawscan.write_image_field(tmp_path, 0, stack, _meta(2))
    [field] = rawscan.list_fields(tmp_path)
    image = rawscan.read_image(field)
    np.testing.assert_array_equal(image.pixels, stack)
    assert image.meta["planes"][1]["channel"] == "img1"


def test_plane_count_mismatch_is_refused(tmp_path: Path) -> None:
    stack = np.zeros((2, 3, 4, 4), np.uint16)
    rawscan.write_image_field(tmp_path, 0, stack, _meta(2))
    (rawscan.field_dir(tmp_path, 0) / "unstained.json").write_text(json.dumps(_meta(3)))
    with pytest.raises(rawscan.RawScanError, match=r"2 planes but unstained\.json lists 3"):
        rawscan.read_image(rawscan.field_dir(tmp_path, 0))
