"""The virtual microscope against a real LED-array stack: the same rig, wavelength and defocus over
a synthetic smear of the same red-cell coverage, measured the same way on both.

Measures (:func:`measure`), all on mean-normalised images so that exposure and LED power cancel:

* **darkfield / brightfield by illumination NA**: the mean of the darkfield images of each NA bin
  (:data:`NA_BINS`) over the mean of all brightfield images;
* **brightfield contrast**: std / mean of the central-LED image;
* **neighbour correlation** of the darkfield images by NA bin (:func:`neighbour_correlation`):
  how much of the darkfield looks the same from neighbouring angles, and the **far correlation**
  (:func:`far_correlation`) of high-NA images lit from far-apart angles: light that does not
  depend on the angle at all;
* **radially averaged power spectra** of the central-LED image and of one darkfield image
  (the one nearest NA 0.2), each divided by its mean squared;
* **brightfield/darkfield boundary**: the NA between the dimmest image still brighter than the
  geometric mean of the brightfield level and the first darkfield bin's level and the brightest
  one below it; it should sit at the objective NA;
* **red-cell coverage**: the simulated smear's ``rbc_cover`` is chosen so that the simulated
  field shows as many low-NA darkfield blobs per mm² (:func:`blob_density`) as the real one
  (:func:`matched_cover`: a ladder of simulated coverages, interpolated). Counting blobs the same
  way on both sides cancels the counter's bias (touching cells merge at 2x).
* **second coverage estimate** (``coverage.second_estimate``; ``cover_method="second"`` simulates
  it): the low-NA darkfield's mean² over its box variance (:func:`scatterer_density`), which for
  independent cells does not depend on how brightly each scatters nor on blobs staying apart,
  matched on simulated coverages (:func:`second_ladder`, :func:`cover_for_density`).

Simulated images (:func:`simulate`) include what the real ones went through: the LED's irradiance
(cos⁴ fall-off of a planar Lambertian array), the camera pixel's area and, image by image, the
level at which the real HDR merge clipped the darkest pixels (:func:`real_floors`). Here the real
slide is described by :class:`CompareConfig` (``stain``, ``medium_n``) at an estimated coverage; :mod:`sim.slide_match`
instead matches the simulated slide to what :mod:`sim.fpm` recovers of the real one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from firmware_bridge.rigs import Rig
from sim.camera import SensorConfig
from sim.microscope import MAX_DIFFUSE_LIGHT, Microscope, MicroscopeConfig
from sim.rasterize import Affine, rasterize
from sim.realstack import RealStack
from sim.sample import SmearConfig, make_smear
from sim.stain import StainStyle, stain_smear

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
#: Red-cell coverages simulated to turn a blob density into a coverage (:func:`matched_cover`).
COVER_LADDER = (0.04, 0.08, 0.12, 0.18, 0.26, 0.36, 0.48)
#: Coverages simulated to turn the second-order statistic into a coverage (:func:`second_ladder`).
SECOND_LADDER = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
#: Box side (camera pixels, ~15 µm: two red cells) of :func:`scatterer_density`.
DENSITY_BOX_PX = 8
#: Camera pixels of guard band around a simulated field (the FFT optics is periodic).
GUARD_PX = 12
SPECTRUM_BINS = 16
#: :func:`fit_diffuse_light` simulates the returned light once at this level.
DIFFUSE_REF = 1e-3
#: Camera pixels are integrated over this many sub-samples per side.
PIXEL_SUBSAMPLES = 3


def led_na(rig: Rig) -> NDArray[np.float64]:
    return np.array([led.na for led in rig.geometry.leds])


def df_bf_bins(means: NDArray[np.float64], na: NDArray[np.float64], objective_na: float
               ) -> list[dict[str, Any]]:
    """Per :data:`NA_BINS`: LED count and mean darkfield / mean brightfield (None if empty)."""
    bf = float(means[na < objective_na].mean())
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
    bf = means[na < objective_na].mean()
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


def second_ladder(setup: SimSetup) -> list[list[float]]:
    """:func:`scatterer_density` of ``setup`` simulated at every :data:`SECOND_LADDER` coverage:
    ``[[cover, density]]``."""
    na, obj = led_na(setup.rig), setup.rig.geometry.objective_na
    return [[cover, scatterer_density(darkfield_mean(simulate(with_smear(setup, rbc_cover=cover)), na, obj),
                                      setup.rig.sample_pixel_um)] for cover in SECOND_LADDER]


def cover_for_density(density: float, ladder: list[list[float]]) -> float:
    """The coverage of a :func:`second_ladder` at which the density is ``density``: interpolated in
    log density (it grows about tenfold per +0.2 of coverage) on the rising part of the ladder;
    densities beyond it clamp to its ends."""
    start = max((i for i in range(1, len(ladder)) if ladder[i][1] <= ladder[i - 1][1]), default=0)
    covers, dens = zip(*ladder[start:], strict=True)
    return float(np.interp(math.log(max(density, 1e-12)), np.log(np.maximum(dens, 1e-12)), covers))


@dataclass(frozen=True)
class SimSetup:
    """How to simulate a real stack: rig, field size, defocus, smear and seed."""

    rig: Rig
    shape: tuple[int, int]
    defocus_um: float
    smear: SmearConfig
    seed: int = 0
    medium_n: float = 1.0
    stain: StainStyle | str = ""
    #: Per LED, the level below which the real image reads nothing, over its brightfield mean
    #: (:func:`real_floors`); empty: no clipping.
    floors: tuple[float, ...] = ()
    #: Light returned to the sample from all directions: its image's mean over clear brightfield
    #: (:class:`sim.microscope.MicroscopeConfig`; :func:`fit_diffuse_light` measures it).
    diffuse_light: float = 0.0


def oversample_for(rig: Rig) -> int:
    """Object-grid oversampling so the spectrum holds every frequency an LED scatters into the
    pupil: (max illumination NA + objective NA) / λ below the fine grid's Nyquist frequency."""
    g = rig.geometry
    need = (max(led.na for led in g.leds) + g.objective_na) / (min(g.wavelengths_nm.values()) * 1e-3)
    return max(1, math.ceil(2.0 * need * rig.sample_pixel_um))


def simulate(setup: SimSetup) -> NDArray[np.float32]:
    """Relative intensity ``(N, H, W)`` of every LED of the rig (first colour): the camera pixel
    integrates light over its area (rendered on a grid ``PIXEL_SUBSAMPLES`` times finer, then
    box-averaged), the LED's irradiance falls off as in :func:`sim.optics.relative_irradiance`, and
    each image is clipped where its real counterpart was (``setup.floors``, relative to the
    brightfield mean)."""
    rig, s = setup.rig, PIXEL_SUBSAMPLES
    fine_rig = dataclasses.replace(rig, camera_pixel_um=rig.camera_pixel_um / s)
    config = MicroscopeConfig(oversample=max(1, math.ceil(oversample_for(rig) / s)), defocus_um=setup.defocus_um,
                              medium_n=setup.medium_n, diffuse_light=setup.diffuse_light,
                              camera=SensorConfig(pixel_um=fine_rig.camera_pixel_um))
    m = Microscope(rig.geometry, config)
    h, w = setup.shape
    smear = make_smear((w * rig.sample_pixel_um, h * rig.sample_pixel_um), setup.seed, setup.smear)
    if setup.stain:
        smear = stain_smear(smear, setup.seed, setup.stain)
    g = GUARD_PX * s
    maps = rasterize(smear, m.fine_pixel_um, m.fine_shape((h * s + 2 * g, w * s + 2 * g)),
                     transform=Affine(shift_um=(g * m.pixel_um, g * m.pixel_um)))
    field = m.prepare(maps)
    out = np.empty((len(rig.geometry.leds), h, w), np.float32)
    for start in range(0, len(out), 32):
        leds = list(range(start, min(start + 32, len(out))))
        sub = field.intensities(leds)[:, 0, g : g + h * s, g : g + w * s]
        out[start : start + len(leds)] = sub.reshape(len(leds), h, s, w, s).mean(axis=(2, 4))
    out *= m.irradiance[:, None, None].astype(np.float32)
    return clip_at_floors(out, setup)


def clip_at_floors(images: NDArray[np.float32], setup: SimSetup) -> NDArray[np.float32]:
    """Each image raised to its real counterpart's clip level (``setup.floors``, relative to the
    brightfield mean)."""
    if not setup.floors:
        return images
    bright = images[led_na(setup.rig) < setup.rig.geometry.objective_na].mean()
    return np.maximum(images, (np.asarray(setup.floors, np.float32) * bright)[:, None, None])


def fit_diffuse_light(setup: SimSetup, real_far_corr: float | None) -> tuple[float, float | None]:
    """The returned light (``diffuse_light``) at which the simulation's :func:`far_correlation`
    equals the real stack's: the share of the darkfield that is the same from every angle, which
    only light arriving from all directions makes (the direct, coherent darkfield of a defocused
    thin object decorrelates between far-apart LEDs). Returns (level, simulated far correlation
    at it); 0 when the simulation already correlates as much without it. The brightness of each
    bin is not used: it stays a test of the result. The returned light adds linearly, so two
    simulations (without, and at a reference level) give every level; clipping is applied after."""
    rig = setup.rig
    plain = dataclasses.replace(setup, floors=(), diffuse_light=0.0)
    without = simulate(plain)
    with_ref = simulate(dataclasses.replace(plain, diffuse_light=DIFFUSE_REF))
    per_unit = (with_ref - without) / np.float32(DIFFUSE_REF)

    def far(level: float) -> float:
        value = far_correlation(clip_at_floors(without + np.float32(level) * per_unit, setup), rig)
        return -1.0 if value is None else value

    start = far(0.0)
    if real_far_corr is None or real_far_corr <= start:
        return 0.0, (None if real_far_corr is None else start)
    lo, hi = 0.0, MAX_DIFFUSE_LIGHT
    if far(hi) < real_far_corr:
        return hi, far(hi)
    for _ in range(30):  # bisection in log level; the correlation rises monotonically with it
        mid = math.sqrt(max(lo, 1e-7) * hi)
        lo, hi = (mid, hi) if far(mid) < real_far_corr else (lo, mid)
    return hi, far(hi)


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
        "far_corr": far_correlation(images, rig),
        "bf_contrast": bf_contrast(images[centre]),
        "blob_density": blob_density(darkfield_mean(images, na, obj), rig.sample_pixel_um),
        "boundary": boundary(means, na, obj),
        "spectrum_bf": radial_spectrum(images[centre], rig.sample_pixel_um),
        "spectrum_df": radial_spectrum(images[df_idx], rig.sample_pixel_um),
        "spectrum_df_na": float(na[df_idx]),
        "images": {"centre": centre, "darkfield": df_idx},
    }


@dataclass(frozen=True)
class CompareConfig:
    """Options of :func:`compare_real`: the slide's preparation and the simulation seed.

    ``stain`` is the Romanowsky style of the real slide ("" = unstained); ``medium_n`` the index
    around the cells (1.0: air-dried, uncovered; ≈1.5: under a coverslip in mounting medium)."""

    rig: str = "uconn-15x15"
    stain: str = "wright-giemsa"
    medium_n: float = 1.0
    seed: int = 0
    #: None: the pupil the real stack shows (:func:`pupil_na`); a number replaces the rig's NA.
    objective_na: float | None = None
    #: Keep the rig's nominal NA even where the real stack contradicts it.
    nominal_na: bool = False
    #: Which coverage estimate the simulation uses: "blobs" (:func:`matched_cover`) or "second"
    #: (:func:`second_ladder`); both are reported.
    cover_method: str = "second"
    #: Light returned to the sample from all directions (its image's mean over clear brightfield);
    #: None: measured on the real stack (:func:`fit_diffuse_light`).
    diffuse_light: float | None = None

    def __post_init__(self) -> None:
        if self.cover_method not in ("blobs", "second"):
            raise ValueError(f"CompareConfig.cover_method must be 'blobs' or 'second', got {self.cover_method!r}")
        if self.diffuse_light is not None and not 0.0 <= self.diffuse_light <= MAX_DIFFUSE_LIGHT:
            raise ValueError(f"CompareConfig.diffuse_light must be in [0, {MAX_DIFFUSE_LIGHT}] or None (measure "
                             f"it), got {self.diffuse_light}")


def real_floors(images: NDArray[np.float32], na: NDArray[np.float64], objective_na: float) -> tuple[float, ...]:
    """Per image, the level at which the HDR merge clipped it, over the brightfield mean: its
    minimum where at least :data:`CLIP_SHARE` of its pixels sit exactly there (in the UConn stacks
    each dim darkfield image has its own level, 0.13–0.24 % of brightfield, shared by up to 60 %
    of the pixels at NA 0.4), else 0 (not clipped: its darkest pixel is light)."""
    flat = images.reshape(len(images), -1)
    lows = flat.min(axis=1)
    share = (flat == lows[:, None]).mean(axis=1)
    bright = float(images[na < objective_na].mean())
    return tuple(float(lo / bright) if s >= CLIP_SHARE else 0.0 for lo, s in zip(lows, share, strict=True))


def sim_setup(stack: RealStack, config: CompareConfig) -> SimSetup:
    """The simulation of ``stack``: its rig (objective NA replaced if asked), field size, defocus
    and floor; the smear's coverage is set later."""
    rig = stack.rig(config.rig)
    nominal = rig.geometry.objective_na
    na = config.objective_na
    if na is None and not config.nominal_na:
        means = stack.images.reshape(len(stack.images), -1).mean(axis=1).astype(np.float64)
        na = pupil_na(boundary(means, led_na(rig), nominal), nominal)
    if na is not None and na != nominal:
        rig = dataclasses.replace(rig, geometry=rig.geometry.with_objective(na))
    floors = real_floors(stack.images, led_na(rig), rig.geometry.objective_na)
    return SimSetup(rig, stack.images.shape[1:], stack.defocus_um, SmearConfig(), config.seed,
                    config.medium_n, config.stain, floors)


def estimate_cover(stack: RealStack, config: CompareConfig = CompareConfig()
                   ) -> tuple[float, float, list[list[float]]]:
    """Red-cell coverage of ``stack``'s field (:func:`matched_cover`): (coverage, real blob density,
    ladder). Counting works best near focus: for a strongly defocused colour, estimate it on a
    better-focused colour of the same field (``compare-real --cover-from``)."""
    setup = sim_setup(stack, config)
    density = blob_density(darkfield_mean(stack.images, led_na(setup.rig), setup.rig.geometry.objective_na),
                           setup.rig.sample_pixel_um)
    cover, ladder = matched_cover(setup, density)
    return cover, density, ladder


def second_estimate(stack: RealStack, config: CompareConfig = CompareConfig()) -> dict[str, Any]:
    """Red-cell coverage of ``stack``'s field from the second-order statistics of its low-NA
    darkfield (:func:`scatterer_density`, matched on :func:`second_ladder`): JSON-ready."""
    setup = sim_setup(stack, config)
    rig = setup.rig
    density = scatterer_density(darkfield_mean(stack.images, led_na(rig), rig.geometry.objective_na),
                                rig.sample_pixel_um)
    ladder = second_ladder(setup)
    return {"rbc_cover": cover_for_density(density, ladder), "real_per_mm2": density, "ladder": ladder,
            "box_px": DENSITY_BOX_PX,
            "method": "rbc_cover whose simulated low-NA darkfield mean² / (box variance x box area) "
                      "matches the real one (independent of each cell's brightness; cells may touch)"}


def compare_real(stack: RealStack, config: CompareConfig = CompareConfig(), cover_from: RealStack | None = None,
                 setup: SimSetup | None = None) -> tuple[dict[str, Any], NDArray[np.float32]]:
    """Measure ``stack`` and its simulation; returns the report (JSON-ready) and the simulated images.
    The coverage is estimated on ``cover_from`` (another colour of the same field) when given;
    ``setup`` replaces the estimate altogether (:mod:`sim.slide_match` matches one to a recovery)."""
    base = sim_setup(stack, config)
    rig = base.rig
    real = measure(stack.images, rig)
    if setup is None:
        cover, _, ladder = estimate_cover(cover_from or stack, config)
        second = second_estimate(cover_from or stack, config)
        used = cover if config.cover_method == "blobs" else second["rbc_cover"]
        setup = with_smear(base, rbc_cover=used)
        coverage: dict[str, Any] = {
            "used": config.cover_method, "blob_rbc_cover": cover, "estimated_on": str((cover_from or stack).path),
            "ladder": ladder, "method": "rbc_cover whose simulated low-NA darkfield blob density matches the real one",
            "second_estimate": second}
    else:
        coverage = {"used": "given"}
    if config.diffuse_light is None:
        level, _ = fit_diffuse_light(setup, real["far_corr"])
        setup = dataclasses.replace(setup, diffuse_light=level)
    else:
        setup = dataclasses.replace(setup, diffuse_light=config.diffuse_light)
    sim_images = simulate(setup)
    sim = measure(sim_images, rig)
    bins = [{"na_lo": r["na_lo"], "na_hi": r["na_hi"], "n_leds": r["n_leds"], "real_df_bf": r["df_bf"],
             "sim_df_bf": s["df_bf"], "factor": _factor(r["df_bf"], s["df_bf"]),
             "real_neighbour_corr": rc, "sim_neighbour_corr": sc}
            for r, s, rc, sc in zip(real["bins"], sim["bins"], real["neighbour_corr"], sim["neighbour_corr"],
                                    strict=True)]
    report = {
        "file": str(stack.path), "wavelength_nm": stack.wavelength_nm, "defocus_um": stack.defocus_um,
        "rig": rig.name, "objective_na": rig.geometry.objective_na,
        "objective_na_nominal": stack.rig(config.rig).geometry.objective_na,
        "objective_na_from": ("given" if config.objective_na is not None else "rig" if config.nominal_na
                              else "pupil edge of the real stack"),
        "pixel_um": rig.sample_pixel_um,
        "shape": list(stack.images.shape[1:]),
        "sample": {"stain": (setup.stain or "none") if isinstance(setup.stain, str) else setup.stain.name,
                   "medium_n": setup.medium_n, "seed": setup.seed},
        "bins": bins,
        "worst_factor": max((b["factor"] for b in bins if b["factor"] is not None), default=None),
        "bf_contrast": {"real": real["bf_contrast"], "sim": sim["bf_contrast"]},
        "far_corr": {"real": real["far_corr"], "sim": sim["far_corr"], "min_na": FAR_NA, "apart_na": FAR_APART},
        "diffuse_light": {"level": setup.diffuse_light, "from": "given" if config.diffuse_light is not None else
                          "the real far correlation (light the same from every angle)"},
        "coverage": {"sim_rbc_cover": setup.smear.rbc_cover, **coverage, "real_blobs_per_mm2": real["blob_density"],
                     "sim_blobs_per_mm2": sim["blob_density"]},
        "clipped": {"leds": sum(f > 0 for f in setup.floors),
                    "floor_df_bf": [min((f for f in setup.floors if f > 0), default=0.0),
                                    max(setup.floors, default=0.0)]},
        "boundary": {"real": real["boundary"], "sim": sim["boundary"]},
        "spectra": {k: {"freq_per_um": real[k][0], "real": real[k][1], "sim": sim[k][1]}
                    for k in ("spectrum_bf", "spectrum_df")},
        "spectrum_df_na": real["spectrum_df_na"],
        "images": real["images"],
    }
    return report, sim_images


def _factor(real: float | None, sim: float | None) -> float | None:
    """How far apart two ratios are (≥ 1, either direction)."""
    if not real or not sim:
        return None
    return max(real / sim, sim / real)


def with_smear(setup: SimSetup, **changes: Any) -> SimSetup:
    return dataclasses.replace(setup, smear=dataclasses.replace(setup.smear, **changes))


def matched_cover(setup: SimSetup, density: float) -> tuple[float, list[list[float]]]:
    """The ``rbc_cover`` whose simulated :func:`blob_density` equals ``density``: simulated over
    :data:`COVER_LADDER`, interpolated on the rising part of the curve (blobs merge in dense
    fields, so the count saturates); returns the coverage and the ladder ``[[cover, density]]``."""
    ladder: list[list[float]] = []
    for cover in COVER_LADDER:
        dark = darkfield_mean(simulate(with_smear(setup, rbc_cover=cover)), led_na(setup.rig),
                              setup.rig.geometry.objective_na)
        d = blob_density(dark, setup.rig.sample_pixel_um)
        if ladder and d <= ladder[-1][1]:
            break  # saturated: denser fields show no more blobs
        ladder.append([cover, d])
    covers, dens = zip(*ladder, strict=True)
    return float(np.interp(density, dens, covers)), ladder
