"""Physical maps of a sample on a pixel grid: the interface between the sample and the optics.

A :class:`SampleMaps` holds, per pixel at the sample (pixel size ``pixel_um``):

* ``thickness_um`` — material thickness along the optical axis (µm);
* ``n_minus_1`` — refractive index of that material minus 1 (thickness-weighted mean);
* ``absorbers`` — named absorber maps in optical-density units at the absorber's reference
  strength (decadic OD per unit of the spectrum in :mod:`sim.spectra`), e.g. ``haemoglobin``
  for unstained red cells, ``azure`` and ``eosin`` for Romanowsky-stained structures;
* ``structure`` — per-pixel structure class (:data:`STRUCTURES`), ``instance`` — object id
  (index into the smear's object list + 1; 0 = none).

Light of wavelength λ through a medium of index ``n_medium`` leaves the sample multiplied by the
complex transmission ``10^(-OD(λ)/2) · exp(i·2π/λ · t·(n - n_medium))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sim import spectra

#: Per-pixel structure classes (uint8). One literal dict; the label maps and the truth use it.
STRUCTURES: dict[str, int] = {
    "background": 0,
    "rbc": 1,
    "platelet": 2,
    "nucleus": 3,
    "cytoplasm": 4,
    "granule": 5,
    "smudge": 6,
    "debris": 7,
    "dust": 8,
    "precipitate": 9,
    "water_artefact": 10,
}

#: The five white-cell types, in the order used for type ids in labels and truth files.
WBC_TYPES: tuple[str, ...] = ("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil")


@dataclass
class SampleMaps:
    """Physical maps of one field (all arrays ``(H, W)`` float32 unless noted)."""

    pixel_um: float
    thickness_um: NDArray[np.float32]
    n_minus_1: NDArray[np.float32]
    structure: NDArray[np.uint8]
    instance: NDArray[np.int32]
    absorbers: dict[str, NDArray[np.float32]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.thickness_um.shape[0]), int(self.thickness_um.shape[1]))

    def optical_density(self, wavelength_nm: float) -> NDArray[np.float32]:
        """Decadic optical density at ``wavelength_nm`` summed over every absorber."""
        od = np.zeros(self.shape, np.float32)
        for name, amount in self.absorbers.items():
            od += np.float32(spectra.extinction(name, wavelength_nm)) * amount
        return od

    def transmission(self, wavelength_nm: float, medium_n: float = 1.0) -> NDArray[np.complex64]:
        """Complex amplitude transmission at ``wavelength_nm`` in a medium of index ``medium_n``."""
        amplitude = np.power(np.float32(10.0), -0.5 * self.optical_density(wavelength_nm))
        opd_um = self.thickness_um * (np.float32(1.0 - medium_n) + self.n_minus_1)
        phase = (2.0 * np.pi * 1e3 / wavelength_nm) * opd_um
        return (amplitude * np.exp(1j * phase.astype(np.float32))).astype(np.complex64)
