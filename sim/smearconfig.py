"""What a smear is made of (:class:`SmearConfig`) and the simulator's sample error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import ConfigError, build_section
from sim.maps import WBC_TYPES


class SampleError(ValueError):
    """Invalid sample description or configuration (message names the offending key)."""


#: Valid closed ranges of the scalar fields of :class:`SmearConfig`.
SMEAR_RANGES: dict[str, tuple[float, float]] = {
    "rbc_cover": (0.0, 0.9),
    "rbc_diameter_um": (4.0, 12.0),
    "rbc_diameter_sd_um": (0.0, 2.0),
    "rbc_rim_um": (0.2, 4.0),
    "rbc_centre_um": (0.05, 4.0),
    "rbc_overlap": (0.0, 0.3),
    "rbc_texture": (0.0, 1.0),
    "rbc_texture_um": (0.5, 10.0),
    "echinocyte_fraction": (0.0, 1.0),
    "platelets_per_rbc": (0.0, 1.0),
    "platelet_clumps_per_mm2": (0.0, 1.0e4),
    "wbc_per_mm2": (0.0, 3000.0),
    "smudge_per_wbc": (0.0, 1.0),
    "debris_per_mm2": (0.0, 1.0e5),
    "dust_per_mm2": (0.0, 1.0e4),
    "haemoglobin_od_per_um": (0.0, 5.0),
    "margin_um": (0.0, 200.0),
    "n_rbc": (1.0, 2.0),
    "n_platelet": (1.0, 2.0),
    "n_cytoplasm": (1.0, 2.0),
    "n_nucleus": (1.0, 2.0),
    "n_granule": (1.0, 2.0),
    "n_debris": (1.0, 2.0),
    "n_dust": (1.0, 2.0),
}


@dataclass(frozen=True)
class SmearConfig:
    """Population and material parameters of a synthetic smear field.

    ``rbc_cover`` is the red cells' total disc area over the field area; a random sequential
    monolayer jams near 0.6 (with ``rbc_overlap`` 0.06); above 0.6 the cells it cannot take lie on it as
    a second layer, as in a smear's thicker part (up to 0.6 a crowded field just holds fewer);
    ``rbc_overlap`` the fraction of the sum of radii by which neighbouring red cells may overlap.
    ``wbc_fractions`` are the type
    frequencies in :data:`sim.maps.WBC_TYPES` order (neutrophil, lymphocyte, monocyte,
    eosinophil, basophil) and must sum to 1.

    Materials are those of a dried smear, calibrated against a real LED-array stack
    (``stainless-sim compare-real``, docs in the README):

    * Red-cell thickness follows from dry-mass conservation: a red cell carries 27–31 pg of
      haemoglobin (normal MCH), ~95 % of its dry mass; dried protein has a density of
      ≈1.35 g/cm³ (Fischer, Polikarpov & Craievich 2004, Protein Sci. 13:2825), so ~32 pg of dry
      matter over a 7.5 µm disc (44 µm²) is 0.54 µm thick on average. The Evans–Fung profile with
      a 0.75 µm rim and a 0.33 µm centre has that mean (the earlier 1.4/0.6 µm were the thickness
      of a live, hydrated cell, twice the material a dried cell has).
    * ``n_rbc`` 1.58: dried haemoglobin, i.e. dry protein (n ≈ 1.58–1.60; Barer & Joseph 1954,
      Q. J. Microsc. Sci. 95:399, from the specific refraction increment 0.19 ml/g).
    * ``haemoglobin_od_per_um``: decadic OD per µm at the Soret peak (415 nm): 30 pg over a
      7.5 µm disc is 0.53 OD at 415 nm (0.04 at 532 nm), spread over the 0.54 µm mean thickness.
    * White-cell nuclei vs cytoplasm: the nucleus is not denser than the cytoplasm — in living
      cells its refractive index is even slightly lower (Schürmann et al. 2016, J. Biophotonics
      9:1068, "Cell nuclei have lower refractive index and mass density than cytoplasm"), so after
      fixation and drying both are dry protein/nucleoprotein of about the same index; ``n_nucleus`` 1.475 vs
      ``n_cytoplasm`` 1.48. An unstained nucleus then shows only through its extra thickness,
      a weak phase object, not a refractile blob.
    * ``rbc_texture``: relative standard deviation of each red cell's dry mass (its thickness,
      with the dye it binds) over ``rbc_texture_um``-scale patches (random plane waves of 0.6–1.6x
      that period). Default 0, a smooth cell. The one real slide here (UConn, stained and mounted)
      has it: recovered at 0.5 µm, its cells hold twice the fine structure (above 0.3 cycles/µm)
      of smooth ones, which ``compare-real`` matches (:mod:`sim.slide_match`); no stack of an
      air-dried, unstained smear says how much the product's sample has.
    * ``platelet_clumps_per_mm2``: aggregates of 3 to ~30 platelets lying between and on the red
      cells. Default 0: a smear of anticoagulated blood spread at once has few; smears of capillary
      blood without anticoagulant, delayed smears and EDTA-dependent pseudothrombocytopenia (about
      0.1 % of samples; Bizzaro 1995, Am. J. Hematol. 50:103) show many, and a stained clump is the
      commonest look-alike of a white cell in real photographs (docs/wbc-photos.md).
        """

    rbc_cover: float = 0.5
    rbc_diameter_um: float = 7.5
    rbc_diameter_sd_um: float = 0.6
    rbc_rim_um: float = 0.75
    rbc_centre_um: float = 0.33
    rbc_overlap: float = 0.06
    rbc_texture: float = 0.0
    rbc_texture_um: float = 2.5
    echinocyte_fraction: float = 0.03
    platelets_per_rbc: float = 0.06
    platelet_clumps_per_mm2: float = 0.0
    wbc_per_mm2: float = 25.0
    wbc_fractions: tuple[float, float, float, float, float] = (0.62, 0.30, 0.05, 0.025, 0.005)
    smudge_per_wbc: float = 0.05
    debris_per_mm2: float = 150.0
    dust_per_mm2: float = 15.0
    haemoglobin_od_per_um: float = 0.98
    margin_um: float = 25.0
    n_rbc: float = 1.58
    n_platelet: float = 1.49
    n_cytoplasm: float = 1.48
    n_nucleus: float = 1.475
    n_granule: float = 1.56
    n_debris: float = 1.54
    n_dust: float = 1.53

    def __post_init__(self) -> None:
        for name, (lo, hi) in SMEAR_RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
                raise SampleError(f"SmearConfig.{name} must be a number in [{lo}, {hi}], got {value!r}")
        if self.rbc_centre_um >= self.rbc_rim_um:
            raise SampleError(
                f"SmearConfig.rbc_centre_um must be below rbc_rim_um={self.rbc_rim_um} "
                f"(a biconcave disc), got {self.rbc_centre_um}"
            )
        fr = self.wbc_fractions
        if (
            not isinstance(fr, tuple)
            or len(fr) != len(WBC_TYPES)
            or any(not isinstance(f, int | float) or f < 0 for f in fr)
            or abs(sum(fr) - 1.0) > 1e-3
        ):
            raise SampleError(
                f"SmearConfig.wbc_fractions must be {len(WBC_TYPES)} non-negative numbers "
                f"({', '.join(WBC_TYPES)}) summing to 1, got {fr!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SmearConfig:
        """Build from a mapping (e.g. a TOML table); unknown keys are rejected by name."""
        try:
            return build_section(cls, dict(d), "smear")
        except ConfigError as exc:
            raise SampleError(str(exc)) from exc
