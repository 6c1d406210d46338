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


def test_view_crop_shares_the_field_inside_and_copies_at_the_border() -> None:
    f = field()
    inside, border = crop(f, (15.2, 10.4), 8, view=True)
    assert not border and np.shares_memory(inside, f)
    np.testing.assert_array_equal(inside, crop(f, (15.2, 10.4), 8)[0])
    edge, border = crop(f, (1.0, 1.0), 8, view=True)
    assert border and not np.shares_memory(edge, f)


def test_normalise_into_a_batch_row_equals_a_fresh_array() -> None:
    f = field()
    norm = Normalisation(np.array([16.0, 40.0], np.float32), np.array([4079.0, 900.0], np.float32))
    patch = crop(f, (15.2, 10.4), 8, view=True)[0]  # a strided view, as the daemon passes it
    batch = np.full((3, 6, 8, 8), -1.0, np.float32)
    got = normalise(patch, norm, batch[1])
    assert np.shares_memory(got, batch)
    np.testing.assert_array_equal(batch[1], normalise(np.ascontiguousarray(patch), norm))
    assert (batch[0] == -1).all() and (batch[2] == -1).all()  # the neighbouring rows untouched
    with pytest.raises(ValueError, match=r"out must be a C-contiguous float32 \(6, 8, 8\)"):
        normalise(patch, norm, batch[:, 0])


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_border_padding_by_slices_equals_numpy_pad(mode: str) -> None:
    """Border crops are padded by slice copies; every centre and size gives what ``np.pad`` gives (numpy's
    ``reflect``, ``symmetric`` for a crop one pixel wide, ``edge``, ``constant`` at ``fill``)."""
    rng = np.random.default_rng(5)
    f = rng.integers(0, 4096, (3, 2, 30, 41), dtype=np.uint16)
    padded = 0
    for size in (1, 2, 3, 8, 9, 31, 40, 64):
        for _ in range(120):
            c = (float(rng.uniform(-0.49, 40.49)), float(rng.uniform(-0.49, 29.49)))
            got, border = crop(f, c, size, mode, fill=7.0)
            x0, y0 = crop_window(c, size)
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(41, x0 + size), min(30, y0 + size)
            width = [(0, 0), (0, 0), (cy0 - y0, y0 + size - cy1), (cx0 - x0, x0 + size - cx1)]
            sub = f[..., cy0:cy1, cx0:cx1]
            if mode == "constant":
                want = np.pad(sub, width, mode="constant", constant_values=7)
            else:
                want = np.pad(sub, width, mode="symmetric" if mode == "reflect" and min(sub.shape[-2:]) < 2 else mode)
            assert got.dtype == f.dtype and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
            padded += border
    assert padded > 400  # about half of these crops cross the border
