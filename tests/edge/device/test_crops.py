from __future__ import annotations

import numpy as np
import pytest

from edge.device.crops import Normalisation, crop, crop_window, normalise


def field(h: int = 20, w: int = 30) -> np.ndarray:
    return np.arange(2 * 3 * h * w, dtype=np.uint16).reshape(2, 3, h, w)


def test_inside_crop_is_a_plain_slice() -> None:
    f = field()
    patch, border = crop(f, (15.2, 10.4), 8)
    assert not border
    x0, y0 = crop_window((15.2, 10.4), 8)
    np.testing.assert_array_equal(patch, f[..., y0:y0 + 8, x0:x0 + 8])


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_border_cells_are_padded_and_flagged(mode: str) -> None:
    f = field()
    patch, border = crop(f, (1.0, 18.0), 8, mode, fill=7)
    assert border and patch.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(patch[..., :6, 3:], f[..., 14:20, 0:5])  # the in-field part is untouched
    if mode == "constant":
        assert (patch[..., :, :3] == 7).all()
    if mode == "edge":
        np.testing.assert_array_equal(patch[..., :6, 0], f[..., 14:20, 0])


def test_crop_outside_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        crop(field(), (100.0, 100.0), 8)


def test_normalise_is_plane_major_and_clipped() -> None:
    raw = np.full((2, 3, 4, 4), 100, np.uint16)
    raw[1] = 5000
    x = normalise(raw, Normalisation.uniform(2, 16.0, 4079.0))
    assert x.shape == (6, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[:3], (100 - 16) / 4079, rtol=1e-6)
    assert (x[3:] == 1.0).all()
