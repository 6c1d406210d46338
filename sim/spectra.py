"""Absorption spectra of the absorbers in a blood smear, normalised to 1 at their main peak.

Each spectrum is a sum of Gaussian bands (centre nm, width nm as 1/e half-width, relative height)
shaped after published absorption curves; the simulator needs their relative values at the
three LED wavelengths, not spectroscopic accuracy.

* ``haemoglobin`` (oxy-Hb): Soret band at 415 nm, Q bands at 541 and 577 nm. Under the
  630/532/475 nm LEDs green and blue are absorbed (a few hundredths OD), red hardly: unstained
  red cells look faintly pinkish-buff.
* ``azure`` (azure B / polychrome methylene blue): 648 nm with a dimer shoulder at 595 nm.
* ``eosin`` (eosin Y, bound): 522 nm with a shoulder at 490 nm.
* ``precipitate``: stain precipitate, broadband dark violet.
* ``neutral``: grey (wavelength-independent) absorption of dust and debris.
"""

from __future__ import annotations

import math

Band = tuple[float, float, float]

#: The stain's dyes (what a stain adds to a part, and what patchy staining modulates).
DYES: tuple[str, ...] = ("azure", "eosin")

SPECTRA: dict[str, tuple[Band, ...]] = {
    # Fitted to Prahl's oxy-Hb molar extinction table (400-650 nm): 475/532/630 nm come out at
    # 0.057/0.082/0.0014 of the Soret peak, as tabulated.
    "haemoglobin": (
        (416.0, 11.4, 0.623),
        (403.8, 35.0, 0.377),
        (542.8, 18.6, 0.081),
        (576.4, 11.4, 0.093),
        (437.2, 99.9, 0.058),
    ),
    "azure": ((648.0, 30.0, 1.0), (595.0, 30.0, 0.55), (520.0, 45.0, 0.12)),
    "eosin": ((522.0, 18.0, 1.0), (490.0, 22.0, 0.35), (560.0, 25.0, 0.08)),
    "precipitate": ((560.0, 140.0, 1.0),),
    "neutral": ((550.0, 1.0e4, 1.0),),
}


def extinction(name: str, wavelength_nm: float) -> float:
    """Relative extinction of absorber ``name`` at ``wavelength_nm`` (peak = 1)."""
    try:
        bands = SPECTRA[name]
    except KeyError:
        raise ValueError(f"unknown absorber {name!r}; valid absorbers: {', '.join(SPECTRA)}") from None
    return sum(h * math.exp(-(((wavelength_nm - c) / w) ** 2)) for c, w, h in bands)
