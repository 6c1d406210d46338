"""The objects of a smear and how each kind is built: red cells, platelets, the five white cells,
smudge cells, debris and dust, as parts with shapes, thickness profiles and materials.

All lengths are µm in sample coordinates (origin top-left, x right, y down). Absorbers are given
as decadic OD per µm of part thickness at the absorber's spectral peak (:mod:`sim.spectra`), so
absorption follows the local thickness (Beer–Lambert): thick nuclei come out darker than thin
cytoplasm, red cells paler in their thin centres.

Refractive indices are those of dried cell material in air (≈1.47–1.57): close to immersion oil
(1.515), so an oil objective erases most of the phase contrast, as it does on real slides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from sim.maps import STRUCTURES, WBC_TYPES
from sim.shapes import Blob, Capsule, Point, Profile, Shape, Spheres, inside
from sim.smearconfig import SmearConfig

#: Object kinds; ``precipitate`` objects are only made by staining (:mod:`sim.stain`).
#: Staining water artefacts are parts of the red cell they sit in (structure ``water_artefact``).
KINDS: tuple[str, ...] = ("rbc", "platelet", "wbc", "smudge", "debris", "dust", "precipitate")

#: Cell diameter range (µm) of each white-cell type in a dried thin smear.
WBC_DIAMETER_UM: dict[str, tuple[float, float]] = {
    "neutrophil": (10.0, 13.0),
    "lymphocyte": (7.0, 10.0),
    "monocyte": (14.0, 18.0),
    "eosinophil": (11.0, 14.0),
    "basophil": (10.0, 13.0),
}

#: Outline perturbations of a WBC body stay below this (relative), so 1.12·R bounds the cell.
WBC_BOUND = 1.12

Harmonics = tuple[tuple[int, float, float], ...]
#: Plane waves ``(kx, ky, phase)`` in rad/µm and rad (a part's texture).
Waves = tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class Part:
    """One physical part of an object.

    ``profile`` is required for Blob and Capsule shapes and must be None for Spheres (each
    sphere's thickness is its diameter times ``Spheres.flatten``). ``stain`` is the key a stain
    style looks up (e.g. ``"nucleus:neutrophil"``); "" takes no dye. ``texture`` holds plane
    waves ``(kx, ky, phase)`` (rad/µm, rad) about the shape centre that modulate the thickness
    by ``1 + texture_amp·√2·mean(cos)·√n`` (relative std ``texture_amp``): chromatin clumps
    and smudge streaks. ``dye_texture`` / ``dye_texture_amp`` modulate, the same way, only the
    dye the part bound (:data:`sim.spectra.DYES`), not its mass: patchy staining.
    """

    structure: str
    shape: Shape
    n: float
    profile: Profile | None = None
    absorbers: dict[str, float] = field(default_factory=dict)
    stain: str = ""
    texture: Waves = ()
    texture_amp: float = 0.0
    dye_texture: Waves = ()
    dye_texture_amp: float = 0.0

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ValueError(f"part structure {self.structure!r} unknown; valid: {', '.join(STRUCTURES)}")
        if isinstance(self.shape, Spheres) != (self.profile is None):
            raise ValueError("a part needs a profile unless its shape is Spheres (and then must not have one)")

    def scaled(self, s: float, about: Point) -> Part:
        """The part shrunk/grown by ``s`` about ``about`` (thickness unchanged)."""
        def grown(waves: Waves) -> Waves:
            return tuple((kx / s, ky / s, ph) for kx, ky, ph in waves)

        return replace(self, shape=self.shape.scaled(s, about), texture=grown(self.texture),
                       dye_texture=grown(self.dye_texture))


@dataclass(frozen=True)
class SmearObject:
    """A cell or particle: ``id`` is its index in the smear (instance label = id + 1)."""

    id: int
    kind: str
    center_um: Point
    parts: tuple[Part, ...]
    wbc_type: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"object kind {self.kind!r} unknown; valid: {', '.join(KINDS)}")
        if (self.kind == "wbc") != (self.wbc_type is not None):
            raise ValueError(f"object {self.id}: wbc_type is required for kind 'wbc' and only for it")
        if self.wbc_type is not None and self.wbc_type not in WBC_TYPES:
            raise ValueError(f"wbc_type {self.wbc_type!r} unknown; valid: {', '.join(WBC_TYPES)}")


# ---------------------------------------------------------------- helpers


def _harmonics(rng: np.random.Generator, amplitudes: dict[int, float]) -> Harmonics:
    """Random Fourier perturbations: order k with amplitude uniform in [0, max], random phase."""
    out = []
    for k, a_max in sorted(amplitudes.items()):
        a, ph = rng.uniform(0.0, a_max), rng.uniform(0.0, 2 * math.pi)
        out.append((k, float(a * math.cos(ph)), float(a * math.sin(ph))))
    return tuple(out)


def _oriented(k: int, amplitude: float, angle: float) -> tuple[int, float, float]:
    """Harmonic of order k with its maximum at ``angle`` (rad)."""
    return (k, amplitude * math.cos(k * angle), amplitude * math.sin(k * angle))


#: Plane waves in a red cell's texture (``SmearConfig.rbc_texture``): enough for a granular, not
#: striped, look.
RBC_TEXTURE_WAVES = 12


def texture_waves(rng: np.random.Generator, wavelength_um: float, waves: int = 7) -> Waves:
    """Random plane waves around ``wavelength_um``: enough of them to look blotchy, not striped."""
    out = []
    for _ in range(waves):
        k = 2 * math.pi / (wavelength_um * rng.uniform(0.6, 1.6))
        th = rng.uniform(0.0, math.pi)
        out.append((k * math.cos(th), k * math.sin(th), float(rng.uniform(0.0, 2 * math.pi))))
    return tuple(out)


def _offset(c: Point, dist: float, angle: float) -> Point:
    return (c[0] + dist * math.cos(angle), c[1] + dist * math.sin(angle))


def _granule_centres(
    rng: np.random.Generator, body: Blob, avoid: tuple[Shape, ...], count: int, reach: float = 0.9
) -> tuple[Point, ...]:
    """``count`` points uniform inside ``reach``·body outline, outside every shape in ``avoid``."""
    r = body.max_radius()
    cand = rng.uniform(-r, r, size=(max(8 * count, 64), 2)).astype(np.float32)
    cand += np.asarray(body.center_um, np.float32)
    x, y = cand[:, 0], cand[:, 1]
    u, _ = body.polar(x, y)
    ok = u < reach
    for shape in avoid:
        ok &= ~inside(shape, x, y)
    pts = cand[ok][:count]
    return tuple((float(px), float(py)) for px, py in pts)


# ---------------------------------------------------------------- red cells and platelets


def build_rbc(rng: np.random.Generator, center: Point, radius: float, cfg: SmearConfig) -> tuple[Part, ...]:
    """Biconcave disc: rim ≈ ``cfg.rbc_rim_um``, centre ≈ ``cfg.rbc_centre_um``, haemoglobin."""
    amps = {2: 0.05, 3: 0.02, 4: 0.01}
    if rng.random() < cfg.echinocyte_fraction:  # crenated drying artefact: many small spikes
        amps[int(rng.integers(10, 16))] = 0.035
    # Cell-to-cell spread of thickness: 7 % (rim) and 13 % (centre), relative.
    rim = float(np.clip(rng.normal(cfg.rbc_rim_um, 0.07 * cfg.rbc_rim_um), 0.5 * cfg.rbc_rim_um, 1.5 * cfg.rbc_rim_um))
    centre = float(np.clip(rng.normal(cfg.rbc_centre_um, 0.13 * cfg.rbc_centre_um), 0.3 * cfg.rbc_centre_um, 0.9 * rim))
    return (
        Part("rbc", Blob(center, radius, _harmonics(rng, amps)), cfg.n_rbc,
             Profile("biconcave", rim, centre), {"haemoglobin": cfg.haemoglobin_od_per_um}, stain="rbc"),
    )


def textured_rbc(parts: tuple[Part, ...], rng: np.random.Generator, cfg: SmearConfig) -> tuple[Part, ...]:
    """A red cell's parts with ``cfg.rbc_texture``: its dry mass (thickness and the dye it binds)
    varies by that relative std over patches of ~``cfg.rbc_texture_um``."""
    return tuple(replace(p, texture=texture_waves(rng, cfg.rbc_texture_um, RBC_TEXTURE_WAVES),
                         texture_amp=cfg.rbc_texture) for p in parts)


def build_platelet(rng: np.random.Generator, center: Point, radius: float, cfg: SmearConfig) -> tuple[Part, ...]:
    """Irregular thin disc (hyalomere) with a few granules in the middle (granulomere)."""
    body = Blob(center, radius, _harmonics(rng, {2: 0.15, 3: 0.08, 5: 0.04}))
    n_gran = int(rng.integers(4, 12))
    centres = _granule_centres(rng, body, (), n_gran, reach=0.55)
    radii = tuple(float(r) for r in rng.uniform(0.12, 0.25, len(centres)))
    return (
        Part("platelet", body, cfg.n_platelet, Profile("dome", float(rng.uniform(0.5, 0.9)), power=0.7),
             stain="platelet"),
        Part("platelet", Spheres(centres, radii, 0.8), cfg.n_granule, stain="platelet:granule"),
    )


# ---------------------------------------------------------------- white cells


def _lobe_chain(
    rng: np.random.Generator, center: Point, radius: float, n_lobes: int, lobe_r: float, span_deg: tuple[float, float]
) -> list[tuple[Point, float, float]]:
    """Lobe centres along an arc about the cell centre: ``[(centre, lobe radius, tangent angle)]``."""
    arc_r = rng.uniform(0.36, 0.48) * radius
    span = math.radians(rng.uniform(*span_deg))
    start = rng.uniform(0.0, 2 * math.pi)
    lobes = []
    for i in range(n_lobes):
        a = start + span * (i / max(n_lobes - 1, 1) - 0.5 * (n_lobes == 1))
        jitter = rng.uniform(-0.08, 0.08) * radius
        lobes.append((_offset(center, arc_r + jitter, a), lobe_r * rng.uniform(0.85, 1.15), a + math.pi / 2))
    return lobes


def _lobed_nucleus(
    rng: np.random.Generator, lobes: list[tuple[Point, float, float]], wbc: str, cfg: SmearConfig
) -> list[Part]:
    """Lobes (elongated blobs along the chain) joined by thin chromatin strands (capsules)."""
    parts = []
    texture = texture_waves(rng, 1.1)
    for c, r, tangent in lobes:
        shape = Blob(c, r, (_oriented(2, rng.uniform(0.12, 0.25), tangent), *_harmonics(rng, {3: 0.05})))
        parts.append(Part("nucleus", shape, cfg.n_nucleus, Profile("dome", rng.uniform(1.2, 1.6), power=0.6),
                          stain=f"nucleus:{wbc}", texture=texture, texture_amp=0.12))
    for (c0, r0, _), (c1, r1, _) in pairwise(lobes):
        dx, dy = c1[0] - c0[0], c1[1] - c0[1]
        d = math.hypot(dx, dy)
        if d < 0.9 * (r0 + r1):
            continue  # lobes touch: no visible strand
        ux, uy = dx / d, dy / d
        p0 = (c0[0] + 0.6 * r0 * ux, c0[1] + 0.6 * r0 * uy)
        p1 = (c1[0] - 0.6 * r1 * ux, c1[1] - 0.6 * r1 * uy)
        parts.append(Part("nucleus", Capsule(p0, p1, rng.uniform(0.14, 0.26)), cfg.n_nucleus,
                          Profile("dome", rng.uniform(0.5, 0.8), power=0.5), stain=f"nucleus:{wbc}"))
    return parts


def _round_nucleus(
    rng: np.random.Generator, center: Point, radius: float, rel: tuple[float, float], wbc: str,
    cfg: SmearConfig, notch: tuple[float, float, float] = (0.0, 0.0, 1.0), elong: float = 0.06,
    chromatin: tuple[float, float] = (1.2, 0.12),
) -> Part:
    """A single nucleus of radius ``rel``·R, placed eccentrically inside the cell."""
    r_n = rng.uniform(*rel) * radius
    room = max(0.92 * radius - r_n * (1.0 + elong), 0.0)
    c = _offset(center, rng.uniform(0.0, room), rng.uniform(0.0, 2 * math.pi))
    shape = Blob(c, r_n, _harmonics(rng, {2: elong, 3: 0.03, 4: 0.02}), notch)
    return Part("nucleus", shape, cfg.n_nucleus, Profile("dome", rng.uniform(1.3, 1.8), power=0.55),
                stain=f"nucleus:{wbc}", texture=texture_waves(rng, chromatin[0]), texture_amp=chromatin[1])


def _granules(
    rng: np.random.Generator, body: Blob, avoid: tuple[Shape, ...], wbc: str, r_range: tuple[float, float],
    fill: float, cfg: SmearConfig, flatten: float = 0.7,
) -> Part:
    """Granules of radius ``r_range`` (µm) covering a fraction ``fill`` of the body area."""
    r_mean = 0.5 * (r_range[0] + r_range[1])
    count = int(fill * math.pi * body.radius_um**2 / (math.pi * r_mean**2))
    centres = _granule_centres(rng, body, avoid, count)
    radii = tuple(float(r) for r in rng.uniform(*r_range, len(centres)))
    return Part("granule", Spheres(centres, radii, flatten), cfg.n_granule, stain=f"granule:{wbc}")


def build_wbc(
    rng: np.random.Generator, center: Point, radius: float, wbc: str, cfg: SmearConfig
) -> tuple[Part, ...]:
    """White cell of type ``wbc``: dome-shaped cytoplasm body, nucleus by type, granules by type."""
    body = Blob(center, radius, _harmonics(rng, {2: 0.05, 3: 0.04, 4: 0.025}))
    cyto_h = {"lymphocyte": 0.9, "monocyte": 1.3}.get(wbc, 1.2) * rng.uniform(0.85, 1.15)
    parts: list[Part] = [Part("cytoplasm", body, cfg.n_cytoplasm, Profile("dome", cyto_h, power=0.6),
                              stain=f"cytoplasm:{wbc}")]
    if wbc == "neutrophil":
        n_lobes = int(rng.choice([2, 3, 4, 5], p=[0.1, 0.45, 0.35, 0.1]))
        lobes = _lobe_chain(rng, center, radius, n_lobes, 0.29 * radius * (3.0 / (n_lobes + 1)) ** 0.3, (150, 300))
        nucleus = _lobed_nucleus(rng, lobes, wbc, cfg)
        parts += nucleus
        parts.append(_granules(rng, body, tuple(p.shape for p in nucleus), wbc, (0.12, 0.2), 0.12, cfg))
    elif wbc == "eosinophil":
        n_lobes = 2 if rng.random() < 0.85 else 3
        lobes = _lobe_chain(rng, center, radius, n_lobes, 0.3 * radius, (110, 170))
        nucleus = _lobed_nucleus(rng, lobes, wbc, cfg)
        parts += nucleus
        parts.append(_granules(rng, body, tuple(p.shape for p in nucleus), wbc, (0.25, 0.45), 0.45, cfg))
    elif wbc == "lymphocyte":
        nucleus_part = _round_nucleus(rng, center, radius, (0.72, 0.86), wbc, cfg, chromatin=(1.1, 0.12))
        parts.append(nucleus_part)
        if rng.random() < 0.25:  # large granular lymphocyte: a few azurophilic granules
            parts.append(_granules(rng, body, (nucleus_part.shape,), wbc, (0.15, 0.25), 0.01, cfg))
    elif wbc == "monocyte":
        notch = (rng.uniform(0.35, 0.6), rng.uniform(0.0, 2 * math.pi), rng.uniform(0.45, 0.8))
        nucleus_part = _round_nucleus(rng, center, radius, (0.5, 0.6), wbc, cfg, notch=notch, elong=0.18,
                                      chromatin=(0.7, 0.08))
        parts.append(nucleus_part)
        parts.append(_granules(rng, body, (nucleus_part.shape,), wbc, (0.08, 0.14), 0.015, cfg, flatten=0.6))
    else:  # basophil: lobed nucleus obscured by coarse granules lying over it too
        n_lobes = int(rng.choice([1, 2, 3], p=[0.3, 0.5, 0.2]))
        lobes = _lobe_chain(rng, center, radius, n_lobes, 0.33 * radius, (60, 140))
        parts += _lobed_nucleus(rng, lobes, wbc, cfg)
        parts.append(_granules(rng, body, (), wbc, (0.2, 0.45), 0.25, cfg))
    return tuple(parts)


# ---------------------------------------------------------------- damaged cells and particles


def build_smudge(rng: np.random.Generator, center: Point, radius: float, cfg: SmearConfig) -> tuple[Part, ...]:
    """Smudge cell: nuclear material smeared out without a membrane, thin and streaky."""
    drag = rng.uniform(0.0, math.pi)
    amps = {3: 0.08, 4: 0.06, 5: 0.04, 6: 0.03}
    body = Blob(center, radius, (_oriented(2, rng.uniform(0.12, 0.3), drag), *_harmonics(rng, amps)))
    # Streaks along the drag direction: waves across it, of spread wavelength and direction.
    streaks = []
    for _ in range(9):
        k = 2 * math.pi / rng.uniform(0.8, 3.0)
        d = drag + math.pi / 2 + rng.uniform(-0.6, 0.6)
        streaks.append((k * math.cos(d), k * math.sin(d), float(rng.uniform(0, 2 * math.pi))))
    parts = [Part("smudge", body, cfg.n_nucleus, Profile("plateau", rng.uniform(0.3, 0.6), power=0.3),
                  stain="smudge", texture=tuple(streaks), texture_amp=0.35)]
    for _ in range(int(rng.integers(1, 4))):
        c = _offset(center, rng.uniform(0.0, 0.5) * radius, rng.uniform(0.0, 2 * math.pi))
        blob = Blob(c, rng.uniform(0.25, 0.45) * radius, _harmonics(rng, {2: 0.2, 3: 0.1}))
        parts.append(Part("smudge", blob, cfg.n_nucleus, Profile("dome", rng.uniform(0.3, 0.6), power=1.0),
                          stain="smudge"))
    return tuple(parts)


def build_debris(rng: np.random.Generator, center: Point, radius: float, cfg: SmearConfig) -> tuple[Part, ...]:
    """Small irregular refractile particle with a little grey absorption."""
    shape = Blob(center, radius, _harmonics(rng, {2: 0.25, 3: 0.15, 4: 0.08, 5: 0.05}))
    return (Part("debris", shape, cfg.n_debris, Profile("dome", rng.uniform(0.2, 0.8), power=1.0),
                 {"neutral": float(rng.uniform(0.05, 0.3))}, stain="debris"),)


def build_dust(rng: np.random.Generator, center: Point, radius: float, cfg: SmearConfig) -> tuple[Part, ...]:
    """Large faint particle with very soft edges (lies off the focal plane, on glass)."""
    shape = Blob(center, radius, _harmonics(rng, {2: 0.2, 3: 0.1, 4: 0.05}))
    return (Part("dust", shape, cfg.n_dust, Profile("dome", rng.uniform(0.05, 0.25), power=2.0),
                 {"neutral": float(rng.uniform(0.05, 0.2))}),)
