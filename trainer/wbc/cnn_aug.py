"""Another lab, another camera: photometric jitter of a linear RGB photograph, applied BEFORE the
flat field and the optical density, so the finder learns what survives the normalisation.

What changes between labs and what each step models:
- stain strength and hue (:func:`stain_jitter`): the optical density against a crude white level is
  remixed between channels and scaled (paler or stronger, bluer or pinker Romanowsky batches), and
  optionally (``fade``) pulled towards its grey part: faded or poorly differentiated stains, whose
  nuclei and red cells differ less in hue;
- lamp, white balance, exposure and vignetting (:func:`lamp_jitter`);
- soft focus (Gaussian blur) and sensor noise (:func:`optics_jitter`);
- the camera's encoding (:func:`camera_jitter`): a gamma other than sRGB's and JPEG at quality
  35–95, decoded as if it were plain sRGB, as the finder will read it.
Geometry (scale ±30 %, flips, 90° turns) is applied by the trainer on the density.
Every function takes and returns a linear RGB image ``(3, H, W)`` float32 in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from trainer.wbc.finder import srgb_to_linear


def stain_jitter(rgb: NDArray[np.float32], rng: np.random.Generator, sd: float = 1.0,
                 fade: float = 0.0) -> NDArray[np.float32]:
    """Remix and rescale the optical density against the image's bright tail (``sd`` scales the spread);
    with ``fade`` > 0, half the images have their density moved a share U(0, ``fade``) of the way to
    its mean over the channels (0 draws nothing, so the jitter is the one it always was)."""
    white = np.maximum(np.percentile(rgb.reshape(3, -1), 99, axis=1), 1e-3).astype(np.float32)[:, None, None]
    od = -np.log10(np.maximum(rgb / white, 1e-4))
    mix = np.eye(3) + rng.normal(0, 0.08 * sd, (3, 3)) * (1 - np.eye(3))
    mix = np.diag(np.exp(rng.normal(0, 0.15 * sd, 3))) @ mix * np.exp(rng.normal(0, 0.25 * sd))
    od2 = np.einsum("ij,jhw->ihw", mix.astype(np.float32), od)
    if fade > 0 and rng.random() < 0.5:
        a = np.float32(rng.uniform(0, fade))
        od2 = (1 - a) * od2 + a * od2.mean(axis=0, keepdims=True)
    return np.clip(white * np.power(10.0, -od2), 0, 1).astype(np.float32)


def lamp_jitter(rgb: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """White balance per channel, exposure, and a vignetting of random strength and centre."""
    gain = np.exp(rng.normal(0, 0.2, 3) + rng.uniform(-0.4, 0.15)).astype(np.float32)[:, None, None]
    h, w = rgb.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / float(max(h, w) ** 2)
    vignette = 1.0 - rng.uniform(0, 0.6) * r2
    return np.clip(rgb * gain * vignette[None], 0, 1).astype(np.float32)


def optics_jitter(rgb: NDArray[np.float32], pixel_size_um: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Soft focus (σ 0.3–1.2 µm, 40 % of images) and shot-like noise (half of images)."""
    out = rgb
    if rng.random() < 0.4:
        sig = rng.uniform(0.3, 1.2) / pixel_size_um
        out = ndi.gaussian_filter(out, (0, sig, sig))
    if rng.random() < 0.5:
        out = out + rng.normal(0, 1, out.shape).astype(np.float32) * np.sqrt(np.maximum(out, 0)) * rng.uniform(0, 0.03)
    return np.clip(out, 0, 1).astype(np.float32)


def camera_jitter(rgb: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """Encode as 8-bit with a gamma of 1/2.2 x exp(±0.3) and maybe JPEG; decode as sRGB."""
    enc = np.power(np.clip(rgb, 0, 1), np.exp(rng.uniform(-0.3, 0.3)) / 2.2)
    rgb8 = np.ascontiguousarray(np.moveaxis(np.round(enc * 255).astype(np.uint8), 0, -1))
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", rgb8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 96))])
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            rgb8 = np.asarray(decoded, np.uint8)
    return srgb_to_linear(np.moveaxis(rgb8, -1, 0))


def lab_jitter(rgb: NDArray[np.float32], pixel_size_um: float, rng: np.random.Generator,
               fade: float = 0.0) -> NDArray[np.float32]:
    """All photometric jitters in the order light meets them: stain, lamp, optics, camera."""
    out = stain_jitter(np.asarray(rgb, np.float32), rng, fade=fade)
    out = lamp_jitter(out, rng)
    out = optics_jitter(out, pixel_size_um, rng)
    return camera_jitter(out, rng)
