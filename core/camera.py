"""Camera settings shared by the device and the simulator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exposure:
    """Camera settings of one image: exposure time (ms) and analogue gain (×)."""

    exposure_ms: float
    gain: float = 1.0

    @property
    def effective_ms(self) -> float:
        """Exposure × gain: what ADU scale with."""
        return self.exposure_ms * self.gain
