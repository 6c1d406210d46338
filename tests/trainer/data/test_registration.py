"""Coarse registration (Canny + NCC, ECC refinement) against a known similarity transform."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from trainer.data.config import RegistrationConfig
from trainer.data.registration import Registration, RegistrationError, register


def _similarity(tx: float, ty: float, deg: float, scale: float, centre: tuple[float, float]) -> np.ndarray:
    """Unstained → stained pixel map: rotate/scale about ``centre`` then shift."""
    m = cv2.getRotationMatrix2D(centre, -deg, scale)  # OpenCV's angle is counter-clockwise on screen
    m[:, 2] += (tx, ty)
    return m


@pytest.mark.parametrize("refine", ["similarity", "translation"])
def test_recovers_shift_rotation_and_scale(stained_frames: list, refine: str) -> None:
    _, fixed, _ = stained_frames[0]
    h, w = fixed.shape[-2:]
    truth = _similarity(9.3, -6.6, 0.4, 1.006, (w / 2, h / 2))
    # The stained frame is the same field seen through ``truth``: stained(M·x) = fixed(x).
    img = np.ascontiguousarray(np.moveaxis(fixed, 0, -1))
    moving = cv2.warpAffine(img, truth, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    reg = register(np.moveaxis(moving, -1, 0), fixed, RegistrationConfig(margin_px=24, refine=refine), 16, 16)
    ys, xs = np.mgrid[40:h - 40:20, 40:w - 40:20]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    expected = pts @ truth[:, :2].T + truth[:, 2]
    err = np.hypot(*(reg.to_stained(pts) - expected).T)
    assert reg.score > 0.5
    assert math.sqrt(float(np.mean(err**2))) < (0.15 if refine == "similarity" else 1.5)
    np.testing.assert_allclose(reg.to_unstained(reg.to_stained(pts)), pts, atol=1e-6)


def test_unrelated_images_are_rejected_with_the_reason(stained_frames: list) -> None:
    a, b = stained_frames[0][1], stained_frames[2][1]
    with pytest.raises(RegistrationError, match=r"below registration\.min_score"):
        register(a, b[:, ::-1, :].copy(), RegistrationConfig(margin_px=24, min_score=0.5), 16, 16)


def test_size_mismatch_and_blank_images_are_explained(stained_frames: list) -> None:
    a = stained_frames[0][1]
    with pytest.raises(RegistrationError, match="must have the field's size"):
        register(a, a[:, :200, :200].copy(), RegistrationConfig(margin_px=24))
    with pytest.raises(RegistrationError, match="no edges"):
        register(np.full_like(a, 1000), a, RegistrationConfig(margin_px=24))
    with pytest.raises(RegistrationError, match="leaves no template"):
        register(a, a, RegistrationConfig(margin_px=200))


def test_identity_maps_points_to_themselves() -> None:
    reg = Registration(np.array([[1.0, 0, 2.0], [0, 1.0, -3.0]]), 1.0, 1.0)
    np.testing.assert_allclose(reg.to_stained(np.array([[10.0, 10.0]])), [[12.0, 7.0]])
