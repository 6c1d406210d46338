"""Romanowsky staining of a smear: the fixed and stained version of the same field.

:func:`stain_smear` binds azure B and eosin Y to every part according to a :class:`StainStyle`
(OD per µm of part thickness at each dye's peak, so the stained image is
``10^(−Σ ε_dye(λ)·c_dye·t)`` by Beer–Lambert), with lab-to-lab variation of dye strength and
azure/eosin balance, per-cell uptake jitter, cell shrinkage on fixation, and the imperfections
that exist only in the stained scan: stain precipitate (dark violet specks, some on cells) and
water artefacts (refractile clear blotches inside some red cells).

:func:`misregistration` draws the small shift/rotation/scale of a re-scan, to be passed to
:func:`sim.rasterize.rasterize` as ``transform``.

The dye loads were tuned by rendering ``10^(−OD)`` at the R/G/B LEDs (630/532/475 nm) and
looking: nuclei purple, neutrophil cytoplasm pale lilac-pink, lymphocyte cytoplasm sky blue,
monocyte cytoplasm grey-blue, eosinophil granules red (the 475 nm LED sits in eosin's blue
shoulder, so narrow-band LEDs render "orange-red" granules as brick red), basophil granules
purple-black, red cells pink, platelets purple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sim.cells import RBC_TEXTURE_WAVES, Part, SmearObject, texture_waves
from sim.rasterize import Affine
from sim.sample import SampleError, Smear
from sim.shapes import Blob, Profile, Spheres
from sim.spectra import DYES

Loads = dict[str, tuple[float, float]]

#: May-Grünwald-Giemsa dye loads: stain key → (azure, eosin) OD per µm at each dye's peak.
#: A key "structure:type" falls back to "structure" when a style does not list it.
_MGG: Loads = {
    # Red cells: dye per µm doubled with the dry-mass thickness (sim.sample.SmearConfig) halved, so
    # a cell binds as much dye as before (stain binds per mass, not per thickness).
    "rbc": (0.04, 0.30),
    "water_artefact": (0.04, 0.30),
    "platelet": (0.28, 0.45),
    "platelet:granule": (1.2, 2.2),
    "nucleus": (0.28, 0.60),
    "nucleus:lymphocyte": (0.30, 0.74),
    "nucleus:monocyte": (0.20, 0.50),
    "nucleus:basophil": (0.32, 0.62),
    "cytoplasm": (0.06, 0.12),
    "cytoplasm:lymphocyte": (0.45, 0.08),
    "cytoplasm:monocyte": (0.15, 0.12),
    "cytoplasm:eosinophil": (0.05, 0.15),
    "cytoplasm:basophil": (0.08, 0.13),
    "granule": (0.40, 0.40),
    "granule:eosinophil": (0.10, 2.5),
    "granule:basophil": (2.0, 3.5),
    "granule:lymphocyte": (1.0, 1.0),
    "granule:monocyte": (0.5, 0.6),
    "smudge": (0.35, 0.75),
    "debris": (0.2, 0.2),
}


def _tilt(loads: Loads, azure: float, eosin: float) -> Loads:
    return {k: (a * azure, e * eosin) for k, (a, e) in loads.items()}


#: Scale (µm) of the patches over which a red cell's bound dye varies (``StainStyle.rbc_patchiness``).
RBC_PATCH_UM = 2.5
#: Upper bound of ``StainStyle.rbc_patchiness``.
MAX_PATCHINESS = 2.0


@dataclass(frozen=True)
class StainStyle:
    """A Romanowsky stain protocol: dye loads per stain key, per-cell uptake jitter, and how
    patchily red cells bind the dye (``rbc_patchiness``: relative std of the dye a red cell
    holds over patches of ~:data:`RBC_PATCH_UM`, independent of its mass; 0, an even stain)."""

    name: str
    loads: Loads = field(default_factory=dict)
    cell_jitter: float = 0.08
    rbc_patchiness: float = 0.0

    def __post_init__(self) -> None:
        for key, pair in self.loads.items():
            if len(pair) != 2 or any(not (v >= 0 and math.isfinite(v)) for v in pair):
                raise SampleError(f"StainStyle {self.name!r}: loads[{key!r}] must be two finite numbers >= 0")
        if not 0.0 <= self.cell_jitter <= 1.0:
            raise SampleError(f"StainStyle.cell_jitter must be in [0, 1], got {self.cell_jitter}")
        if not 0.0 <= self.rbc_patchiness <= MAX_PATCHINESS:
            raise SampleError(f"StainStyle.rbc_patchiness must be in [0, {MAX_PATCHINESS}], got {self.rbc_patchiness}")

    def load(self, key: str) -> tuple[float, float]:
        """(azure, eosin) OD per µm for a stain key; (0, 0) when neither it nor its structure is listed."""
        if not key:
            return (0.0, 0.0)
        return self.loads.get(key, self.loads.get(key.split(":")[0], (0.0, 0.0)))


#: The built-in styles. Wright-Giemsa renders bluer (more azure, less eosin) than MGG.
STAIN_STYLES: dict[str, StainStyle] = {
    "mgg": StainStyle("mgg", _MGG),
    "wright-giemsa": StainStyle("wright-giemsa", _tilt(_MGG, 1.2, 0.78)),
}


def _resolve(style: StainStyle | str) -> StainStyle:
    if isinstance(style, StainStyle):
        return style
    try:
        return STAIN_STYLES[style]
    except KeyError:
        raise SampleError(f"unknown stain style {style!r}; valid styles: {', '.join(STAIN_STYLES)}") from None


def _dyed(part: Part, azure: float, eosin: float) -> Part:
    absorbers = dict(part.absorbers)
    for name, value in zip(DYES, (azure, eosin), strict=True):
        if value > 0:
            absorbers[name] = absorbers.get(name, 0.0) + value
    return replace(part, absorbers=absorbers)


def _water_artefacts(rng: np.random.Generator, rbc: Part) -> tuple[Part, ...]:
    """1–2 irregular sharp-edged depressions inside a red cell, washed free of dye."""
    if not isinstance(rbc.shape, Blob):
        return ()
    out = []
    for _ in range(int(rng.integers(1, 3))):
        r = rbc.shape.radius_um
        ang = rng.uniform(0.0, 2 * math.pi)
        c = (rbc.shape.center_um[0] + rng.uniform(0.0, 0.35) * r * math.cos(ang),
             rbc.shape.center_um[1] + rng.uniform(0.0, 0.35) * r * math.sin(ang))
        harm = tuple((k, float(a), float(b)) for k, a, b in
                     zip(range(2, 7), rng.uniform(-0.12, 0.12, 5), rng.uniform(-0.12, 0.12, 5), strict=True))
        shape = Blob(c, rng.uniform(0.2, 0.45) * r, harm)
        depth = rng.uniform(0.3, 0.55) * (rbc.profile.height_um if rbc.profile else 1.0)  # of the rim
        out.append(Part("water_artefact", shape, rbc.n, Profile("plateau", -depth, power=0.15),
                        dict(rbc.absorbers), stain="water_artefact"))
    return tuple(out)


def _precipitate(rng: np.random.Generator, smear: Smear, per_mm2: float) -> list[SmearObject]:
    """Clusters of small dark violet specks (azure-eosinate crystals) anywhere on the field.

    They cover the field and the margin the smear's objects occupy; the density varies per
    slide (log-normal factor), as precipitate does.
    """
    w, h = smear.size_um
    centres = np.array([o.center_um for o in smear.objects] + [(0.0, 0.0), (w, h)])
    (x0, y0), (x1, y1) = centres.min(axis=0), centres.max(axis=0)
    n = int(rng.poisson(per_mm2 * (x1 - x0) * (y1 - y0) * 1e-6 * rng.lognormal(0.0, 0.7)))
    objects = []
    for i in range(n):
        c = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
        k = int(rng.integers(1, 7))
        pts = tuple((c[0] + float(dx), c[1] + float(dy)) for dx, dy in rng.normal(0.0, 0.6, (k, 2)))
        radii = tuple(float(r) for r in rng.uniform(0.15, 0.6, k))
        part = Part("precipitate", Spheres(pts, radii, 0.8), 1.6,
                    absorbers={"precipitate": float(rng.uniform(1.5, 3.0)), "azure": float(rng.uniform(0.5, 1.5))})
        objects.append(SmearObject(len(smear.objects) + i, "precipitate", c, (part,)))
    return objects


def stain_smear(
    smear: Smear,
    seed: int,
    style: StainStyle | str = "mgg",
    lab_variation: float = 0.15,
    *,
    shrink: tuple[float, float] = (0.92, 0.98),
    precipitate_per_mm2: float = 200.0,
    water_artefact_fraction: float = 0.05,
) -> Smear:
    """The fixed and stained version of ``smear`` (deterministic from ``seed``).

    ``lab_variation`` is the log-normal sigma of the lab's dye strength and azure/eosin balance
    (0 = the style exactly). Cells (not dust/debris) shrink about their centre by a factor drawn
    from ``shrink``; ``precipitate_per_mm2`` is the mean density of precipitate clusters (varied
    per slide) and ``water_artefact_fraction`` the fraction of red cells with water artefacts.
    """
    st = _resolve(style)
    if smear.stained:
        raise SampleError(f"smear is already stained ({smear.stain_style}); stain the unstained smear")
    checks = {"lab_variation": (lab_variation, 0.0, 1.0), "precipitate_per_mm2": (precipitate_per_mm2, 0.0, 1e5),
              "water_artefact_fraction": (water_artefact_fraction, 0.0, 1.0)}
    for name, (v, lo, hi) in checks.items():
        if not lo <= v <= hi:
            raise SampleError(f"{name} must be in [{lo}, {hi}], got {v!r}")
    if not 0.5 <= shrink[0] <= shrink[1] <= 1.2:
        raise SampleError(f"shrink must be (lo, hi) with 0.5 <= lo <= hi <= 1.2, got {shrink!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57A1]))
    rng_patch = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57A1, 1]))  # leaves ``rng`` as it was
    strength = math.exp(rng.normal(0.0, lab_variation))
    balance = math.exp(rng.normal(0.0, lab_variation))
    objects: list[SmearObject] = []
    for obj in smear.objects:
        cell = obj.kind in ("rbc", "wbc", "platelet", "smudge")
        s = rng.uniform(*shrink) if cell else 1.0
        uptake = strength * math.exp(rng.normal(0.0, st.cell_jitter))
        tilt = balance * math.exp(rng.normal(0.0, 0.5 * st.cell_jitter))
        parts = [p.scaled(s, obj.center_um) if s != 1.0 else p for p in obj.parts]
        if obj.kind == "rbc" and rng.random() < water_artefact_fraction:
            parts += _water_artefacts(rng, parts[0])
        dyed = []
        for p in parts:
            az, eo = st.load(p.stain)
            p = _dyed(p, az * uptake * tilt, eo * uptake / tilt)
            if st.rbc_patchiness and p.stain == "rbc":
                p = replace(p, dye_texture=texture_waves(rng_patch, RBC_PATCH_UM, RBC_TEXTURE_WAVES),
                            dye_texture_amp=st.rbc_patchiness)
            dyed.append(p)
        objects.append(replace(obj, parts=tuple(dyed)))
    objects += _precipitate(rng, smear, precipitate_per_mm2)
    return Smear(smear.size_um, tuple(objects), stained=True, stain_style=st.name)


def misregistration(
    seed: int, max_shift_um: float = 15.0, max_rotation_deg: float = 0.5, max_scale: float = 0.01
) -> Affine:
    """Shift (uniform per axis), rotation and relative scale error of a re-scan of the same slide."""
    for name, v in (("max_shift_um", max_shift_um), ("max_rotation_deg", max_rotation_deg), ("max_scale", max_scale)):
        if not (v >= 0 and math.isfinite(v)):
            raise SampleError(f"{name} must be >= 0 and finite, got {v!r}")
    if max_scale >= 0.5:
        raise SampleError(f"max_scale must be below 0.5, got {max_scale}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA11E]))
    shift = rng.uniform(-max_shift_um, max_shift_um, 2)
    return Affine(shift_um=(float(shift[0]), float(shift[1])),
                  rotation_deg=float(rng.uniform(-max_rotation_deg, max_rotation_deg)),
                  scale=float(1.0 + rng.uniform(-max_scale, max_scale)))
