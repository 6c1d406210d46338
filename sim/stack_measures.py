"""What :mod:`sim.compare_real` measures on an LED-array stack, real or simulated, all on
mean-normalised images so that exposure and LED power cancel (the measures are listed in that
module's docstring), and where a real HDR merge clipped each image (:func:`real_floors`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from firmware_bridge.rigs import Rig

#: Illumination-NA bins of the darkfield comparison (issue 17).
NA_BINS: tuple[tuple[float, float], ...] = (
    (0.10, 0.13), (0.13, 0.17), (0.17, 0.22), (0.22, 0.27), (0.27, 0.32), (0.32, 0.40),
)
#: Darkfield LEDs between these NAs make the coverage image (bright wherever cells scatter).
COVERAGE_NA = (0.10, 0.22)
#: :func:`far_correlation`: darkfield images above this NA, LED pairs at least this far apart in NA.
FAR_NA, FAR_APART = 0.27, 0.4
#: A real image counts as clipped at its minimum when at least this share of its pixels sit there.
CLIP_SHARE = 1e-3
#: :func:`dark_floor`: the percentile of an image taken as its darkest places.
DARK_PERCENTILE = 1.0
#: Box side (camera pixels, ~15 µm: two red cells) of :func:`scatterer_density`.
DENSITY_BOX_PX = 8
SPECTRUM_BINS = 16


#: The brightfield every darkfield figure is measured against: the LEDs within this share of the objective NA.
INNER_BRIGHTFIELD = 0.9


def led_na(rig: Rig) -> NDArray[np.float64]:
    return np.array([led.na for led in rig.geometry.leds])

def inner_brightfield(na: NDArray[np.float64], objective_na: float) -> NDArray[np.bool_]:
    """The LEDs whose direct beam the pupil passes whole: within :data:`INNER_BRIGHTFIELD` of the objective
    NA (all brightfield LEDs where none is). A real pupil's edge is not where the label says, sharp or centred:
    the UConn stacks' brightfield LEDs within 0.003 NA of it read 0.66–0.97 of the others (red, by azimuth) and
    0.43–0.74 (green), a simulated sharp one's 0.97 — as a reference for darkfield they would carry the
    objective's edge, not the light the sample is lit with, into every ratio."""
    inner = na < INNER_BRIGHTFIELD * objective_na
    return inner if inner.any() else na < objective_na

def df_bf_bins(means: NDArray[np.float64], na: NDArray[np.float64], objective_na: float
               ) -> list[dict[str, Any]]:
    """Per :data:`NA_BINS`: LED count and mean darkfield over the mean inner brightfield (:func:`inner_brightfield`;
    None if empty)."""
    bf = float(means[inner_brightfield(na, objective_na)].mean())
    out = []
    for lo, hi in NA_BINS:
        sel = (na >= max(lo, objective_na)) & (na < hi)
        ratio = float(means[sel].mean()) / bf if sel.any() else None
        out.append({"na_lo": lo, "na_hi": hi, "n_leds": int(sel.sum()), "df_bf": ratio})
    return out

def neighbour_correlation(images: NDArray[np.float32], rig: Rig) -> list[float | None]:
    """Per :data:`NA_BINS`: the mean correlation of each darkfield image with the image of its
    nearest LED. A thin object lit coherently gives a speckle that moves with the angle (≈0.2 on
    a field of red cells); light that looks the same from every angle (incoherent light, e.g. the
    sample lit a second time from all directions) raises it (the UConn stacks: 0.6–0.7)."""
    na, obj = led_na(rig), rig.geometry.objective_na
    xy = np.array([(led.x_mm, led.y_mm) for led in rig.geometry.leds])
    flat = images.reshape(len(images), -1).astype(np.float64)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    out: list[float | None] = []
    for lo, hi in NA_BINS:
        corr = []
        for k in np.flatnonzero((na >= max(lo, obj)) & (na < hi)):
            dist = np.hypot(*(xy - xy[k]).T)
            dist[k] = np.inf
            j = int(np.argmin(dist))
            if norm[k] > 0 and norm[j] > 0:
                corr.append(float(flat[k] @ flat[j] / (norm[k] * norm[j])))
        out.append(float(np.mean(corr)) if corr else None)
    return out

def dark_floor(images: NDArray[np.float32], na: NDArray[np.float64], objective_na: float) -> list[float | None]:
    """Per :data:`NA_BINS`: how dark each darkfield image's darkest places get, its
    :data:`DARK_PERCENTILE` percentile over its own mean, averaged over the bin's LEDs. Light
    scattered coherently by a thin sample is a speckle with places of almost no light (≈0.05–0.1);
    light added evenly to the image — stray light in the optics, light scattered by something out
    of focus, a camera offset — lifts them (the UConn red stack: ≈0.3 next to the pupil edge)."""
    flat = images.reshape(len(images), -1)
    out: list[float | None] = []
    for lo, hi in NA_BINS:
        sel = np.flatnonzero((na >= max(lo, objective_na)) & (na < hi))
        if not sel.size:
            out.append(None)
            continue
        rows = flat[sel].astype(np.float64)
        out.append(float(np.mean(np.percentile(rows, DARK_PERCENTILE, axis=1) / rows.mean(axis=1))))
    return out

def far_correlation(images: NDArray[np.float32], rig: Rig, min_na: float = FAR_NA, apart: float = FAR_APART
                    ) -> float | None:
    """Mean correlation, at zero shift, of the darkfield images above ``min_na`` whose LEDs lie at least
    ``apart`` apart in illumination NA (e.g. on opposite sides of the ring). Coherent scattering by
    a defocused thin object shifts between such angles by defocus x ΔNA (16 px for the UConn red
    stack) and decorrelates (≈0.03 simulated); light that is the same from every angle does not
    (UConn: 0.25 red). None if no such pair."""
    na = led_na(rig)
    sel = np.flatnonzero(na >= max(min_na, rig.geometry.objective_na))
    if len(sel) < 2:
        return None
    nxy = np.array([(led.na_x, led.na_y) for led in rig.geometry.leds])[sel]
    flat = images[sel].reshape(len(sel), -1).astype(np.float64)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    flat = flat / np.where(norm > 0, norm, 1.0)[:, None]
    far = np.hypot(*(nxy[:, None, :] - nxy[None, :, :]).transpose(2, 0, 1)) >= apart
    return float((flat @ flat.T)[far].mean()) if far.any() else None

def bf_contrast(image: NDArray[np.float32]) -> float:
    return float(image.std() / image.mean())

def radial_spectrum(image: NDArray[np.float32], pixel_um: float, bins: int = SPECTRUM_BINS
                    ) -> tuple[list[float], list[float]]:
    """Radially averaged power spectrum of ``image / mean − 1``: bin centres (cycles/µm, up to
    Nyquist) and mean power per bin (relative units, per pixel)."""
    h, w = image.shape
    rel = image / image.mean() - 1.0
    window = np.outer(np.hanning(h), np.hanning(w))  # the field edges are not periodic
    power = np.abs(np.fft.fft2(rel * window)) ** 2 / (window**2).sum()
    fy, fx = np.meshgrid(np.fft.fftfreq(h, pixel_um), np.fft.fftfreq(w, pixel_um), indexing="ij")
    f = np.hypot(fx, fy)
    nyq = 0.5 / pixel_um
    edges = np.linspace(0.0, nyq, bins + 1)
    idx = np.digitize(f.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < bins)
    sums = np.bincount(idx[ok], power.ravel()[ok], bins)
    counts = np.maximum(np.bincount(idx[ok], minlength=bins), 1)
    return [float(v) for v in 0.5 * (edges[1:] + edges[:-1])], [float(v) for v in sums / counts]

def boundary(means: NDArray[np.float64], na: NDArray[np.float64], objective_na: float) -> dict[str, float]:
    """Where the images turn dark: the highest NA of an image above the threshold and the lowest
    NA of one below it (threshold: geometric mean of the brightfield and the first darkfield bin)."""
    bf = means[inner_brightfield(na, objective_na)].mean()
    first = (na >= objective_na) & (na < NA_BINS[0][1])
    df = means[first].mean() if first.any() else means[na >= objective_na].mean()
    thr = math.sqrt(bf * df)
    bright, dark = na[means >= thr], na[means < thr]
    return {"threshold_df_bf": float(thr / bf), "last_bright_na": float(bright.max()) if bright.size else 0.0,
            "first_dark_na": float(dark.min()) if dark.size else 1.0}

def pupil_na(edge: dict[str, float], nominal: float) -> float:
    """The objective NA the real stack shows: ``nominal`` when its bright and dark images fall on
    either side of it (``edge`` from :func:`boundary`); otherwise a tenth of the gap past the
    brightest-NA image that is still brightfield (or before the lowest-NA one already dark).

    A printed NA is a nominal figure: the UConn green stack has an LED at NA 0.1014 in brightfield
    under a "0.1" objective. Which LEDs the pupil passes decides whether an image is brightfield at
    all, so the simulation must use the pupil the data shows, not the label."""
    lo, hi = edge["last_bright_na"], edge["first_dark_na"]
    if lo < nominal <= hi:
        return nominal
    return lo + 0.1 * (hi - lo) if nominal <= lo else hi - 0.1 * (hi - lo)

def darkfield_mean(images: NDArray[np.float32], na: NDArray[np.float64], objective_na: float = 0.0
                   ) -> NDArray[np.float64]:
    """Mean of the low-NA darkfield images (:data:`COVERAGE_NA`, and beyond ``objective_na``: a
    pupil wider than 0.10 passes LEDs at NA 0.100–0.101 as brightfield, and one such image adds a
    uniform level 20x an empty field's darkfield): every cell lights up in it."""
    sel = (na >= max(COVERAGE_NA[0], objective_na)) & (na < COVERAGE_NA[1])
    return np.asarray(images[sel].mean(axis=0), np.float64)

def blob_density(dark: NDArray[np.float64], pixel_um: float) -> float:
    """Scatterers per mm² in a :func:`darkfield_mean` image: every red cell scatters into the
    low-NA darkfield LEDs as a bright blob, the glass between cells does not. The image is smoothed
    over about a red cell (σ = 1.5 px, which also removes the pixel-scale speckle and noise of real
    frames) and its local maxima (5x5) above the median are counted."""
    smooth = ndimage.gaussian_filter(dark, 1.5)
    peaks = (smooth == ndimage.maximum_filter(smooth, 5)) & (smooth > np.median(smooth))
    return float(peaks.sum() / (smooth.size * pixel_um * pixel_um * 1e-6))

def scatterer_density(dark: NDArray[np.float64], pixel_um: float, box_px: int = DENSITY_BOX_PX) -> float:
    """Independent scatterers per mm² in a :func:`darkfield_mean` image, from its second-order
    statistics (Campbell's theorem): for N independent cells per area, each adding an image ``a·s(x)``,
    the mean is ``N·E[a]·∫s`` and the variance of the mean over a box of area A (large against a
    cell) is ``N·E[a²]·(∫s)² / A``, so ``mean² / (Var·A) = N·E[a]²/E[a²]``: the scale of each cell's
    brightness and the shape of its image cancel, and cells may touch. What does not cancel (the
    spread of brightness between cells, packing that is more even than random, a uniform
    background) is calibrated by simulating known coverages (:func:`second_ladder`). The low-NA
    darkfield images it averages are bright enough not to be clipped (:func:`real_floors`)."""
    box = ndimage.uniform_filter(dark, box_px, mode="constant")
    h = box_px // 2
    box = box[h : dark.shape[0] - h, h : dark.shape[1] - h]
    if box.size < 4:
        raise ValueError(f"scatterer_density: a {dark.shape} image holds too few {box_px}-px boxes; "
                         f"give an image at least {2 * box_px} px on a side or a smaller box_px")
    area_mm2 = (box_px * pixel_um * 1e-3) ** 2
    return float(dark.mean() ** 2 / (box.var() * area_mm2))

def mean_of(measures: list[Any]) -> Any:
    """The mean of several fields' measures of the same form (:func:`measure`, :func:`sim.fpm.measure_field`):
    numbers averaged, dicts key by key, lists and tuples item by item; what is equal in all (counts,
    indices, labels) or not a number (None, text) is kept from the first."""
    first = measures[0]
    if all(_same(m, first) for m in measures[1:]):
        return first
    if isinstance(first, dict):
        return {k: mean_of([m[k] for m in measures]) for k in first}
    if isinstance(first, list | tuple):
        return type(first)(mean_of([m[i] for m in measures]) for i in range(len(first)))
    if isinstance(first, np.ndarray):
        return np.mean(measures, axis=0)
    if isinstance(first, int | float) and not isinstance(first, bool) and all(m is not None for m in measures):
        return float(np.mean(measures))
    return first


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(a, b)) if isinstance(a, np.ndarray) else bool(a == b)
    except (ValueError, TypeError):
        return False


def measure(images: NDArray[np.float32], rig: Rig) -> dict[str, Any]:
    """Every measure of the module docstring for one stack ``(N, H, W)``."""
    na = led_na(rig)
    obj = rig.geometry.objective_na
    means = images.reshape(len(images), -1).mean(axis=1).astype(np.float64)
    centre = int(np.argmin(na))
    df_idx = int(np.argmin(np.abs(na - 0.2)))
    return {
        "bins": df_bf_bins(means, na, obj),
        "neighbour_corr": neighbour_correlation(images, rig),
        "dark_floor": dark_floor(images, na, obj),
        "far_corr": far_correlation(images, rig),
        "bf_contrast": bf_contrast(images[centre]),
        "blob_density": blob_density(darkfield_mean(images, na, obj), rig.sample_pixel_um),
        "boundary": boundary(means, na, obj),
        "spectrum_bf": radial_spectrum(images[centre], rig.sample_pixel_um),
        "spectrum_df": radial_spectrum(images[df_idx], rig.sample_pixel_um),
        "spectrum_df_na": float(na[df_idx]),
        "images": {"centre": centre, "darkfield": df_idx},
    }

def real_floors(images: NDArray[np.float32], na: NDArray[np.float64], objective_na: float) -> tuple[float, ...]:
    """Per image, the level at which the HDR merge clipped it, over the inner brightfield mean
    (:func:`inner_brightfield`): its minimum where at least :data:`CLIP_SHARE` of its pixels sit exactly
    there (in the UConn stacks each dim darkfield image has its own level, 0.13–0.24 % of brightfield,
    shared by up to 60 % of the pixels at NA 0.4), else 0 (not clipped: its darkest pixel is light)."""
    flat = images.reshape(len(images), -1)
    lows = flat.min(axis=1)
    share = (flat == lows[:, None]).mean(axis=1)
    bright = float(images[inner_brightfield(na, objective_na)].mean())
    return tuple(float(lo / bright) if s >= CLIP_SHARE else 0.0 for lo, s in zip(lows, share, strict=True))
