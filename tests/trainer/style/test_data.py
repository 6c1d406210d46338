"""Reading unpaired image folders, random crops, and synthetic cells of one stain style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.errors import TrainerError
from trainer.style.data import centre_crops, load_domains, random_crops, read_folder, render_style_cells


def test_folders_are_read_as_unit_floats_and_split(style_folders: tuple[Path, Path]) -> None:
    a, b = style_folders
    d = load_domains(a, b, 3, 16, 0.25)
    assert (len(d.a_train), len(d.a_val), len(d.b_train), len(d.b_val)) == (6, 2, 6, 2)
    img = d.a_train[0]
    assert img.dtype == np.float32 and img.shape == (3, 32, 32) and img.min() >= 0.0 and img.max() <= 1.0
    assert img.max() > 0.8  # 8-bit PNGs divided by 255, not left at 0..255 or squashed


def test_npy_images_carry_n_channels(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 65535, (2, 20, 24), dtype=np.uint16))
    [img] = read_folder(tmp_path, 2, 16)
    assert img.shape == (2, 20, 24) and img.dtype == np.float32 and img.max() <= 1.0
    with pytest.raises(TrainerError, match="2 channels, the config expects 3"):
        read_folder(tmp_path, 3, 16)


@pytest.mark.parametrize(("setup", "match"), [
    ("missing", "not found"), ("empty", "holds no images"), ("small", "smaller than data.patch_size"),
    ("float", r"in \[0, 1\]")])
def test_bad_folders_say_what_is_wrong(tmp_path: Path, setup: str, match: str) -> None:
    folder = tmp_path / "imgs"
    if setup != "missing":
        folder.mkdir()
    if setup == "small":
        np.save(folder / "s.npy", np.zeros((3, 8, 8), np.float32))
    if setup == "float":
        np.save(folder / "f.npy", np.full((3, 32, 32), 2.0, np.float32))
    with pytest.raises(TrainerError, match=match):
        read_folder(folder, 3, 16)


def test_random_crops_keep_content_and_vary(style_folders: tuple[Path, Path]) -> None:
    images = read_folder(style_folders[0], 3, 16)
    rng = np.random.default_rng(1)
    x = random_crops(images, 5, 16, rng).numpy()
    assert x.shape == (5, 3, 16, 16)
    assert not np.allclose(x[0], x[1])
    pixels = np.concatenate([im.reshape(3, -1) for im in images], axis=1)
    # every crop pixel is a pixel of some image (crops, flips and quarter turns only move pixels)
    assert all(np.min(np.abs(pixels.T[:, None, :] - x[k].reshape(3, -1).T[None]).sum(-1), axis=0).max() < 1e-6
               for k in range(2))
    c = centre_crops(images, 16).numpy()
    np.testing.assert_array_equal(c[0], images[0][:, 8:24, 8:24])


def test_synthetic_cells_of_two_styles_are_unpaired_pngs(tmp_path: Path) -> None:
    n_a = render_style_cells(tmp_path / "mgg", "mgg", 2, seed=1, crop_px=32, field_px=96)
    n_b = render_style_cells(tmp_path / "wg", "wright-giemsa", 2, seed=2, crop_px=32, field_px=96)
    a, b = read_folder(tmp_path / "mgg", 3, 32), read_folder(tmp_path / "wg", 3, 32)
    assert n_a == n_b == 2 and len(a) == len(b) == 2 and a[0].shape == (3, 32, 32)
    assert not np.allclose(a[0], b[0], atol=0.05)  # other smears: other cells
    # a white cell in the middle is darker than the crop's brightest background
    assert all(im[:, 12:20, 12:20].mean() < np.percentile(im.mean(0), 90) for im in a + b)
