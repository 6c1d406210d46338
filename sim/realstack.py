"""Real LED-array stacks in the UConn FPM format, and the rig geometry each one was taken with.

A stack file is MATLAB 5 (``scipy.io.loadmat``) with ``imlow_HDR`` ``(H, W, N)`` — one
high-dynamic-range image per LED, comparable across LEDs — ``wlength`` (m), ``z`` (known defocus,
m), ``theta`` (rotation of the LED array against the camera, degrees) and ``xint``/``yint``
(offset of the first LED from the patch centre, mm). Image k is the k-th LED of the rig's order
(``uconn-15x15``: a square spiral from the centre).

The file's ``z`` is our ``defocus_um`` (:data:`Z_SIGN`), measured by recovering the stack
(:mod:`sim.fpm`): the red stack (``z`` = -55 µm) is fitted with a residual of 0.0245 under
``defocus_um = -55`` with the LED grid turned 180° against the camera (a microscope inverts its
image) and cells that delay light, or equivalently by the complex-conjugate object — cells that
*advance* light, which no stained or unstained cell does — under ``+55`` with the grid as drawn;
the other sign fits at 0.041 (with a fixed pupil the best fit lies at 30–55 µm on that side). The
green stack (``z`` = +10 µm) is too close to focus to tell (best fit within 10 µm of focus, either
sign within 0.005). An earlier reading of the opposite sign rested on a sample model the recovery
showed to be wrong (air-dried cells; the slide is mounted).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from numpy.typing import NDArray

from firmware_bridge.rigs import RIGS, Rig, rig_from_dict

REQUIRED_KEYS = ("imlow_HDR", "wlength", "z", "theta", "xint", "yint")
DEFAULT_RIG = "uconn-15x15"
#: ``defocus_um = Z_SIGN * z * 1e6`` (module docstring).
Z_SIGN = 1.0
#: Two colours of one field: their central-LED images correlate ~0.95 (UConn red / green, 65 µm of
#: defocus apart); images of different fields ~0.
SAME_FIELD_CORR = 0.5


class RealStackError(ValueError):
    """A real stack file that cannot be read or does not fit its rig (message says which)."""


@dataclass(frozen=True)
class RealStack:
    """One colour of a real stack: ``images`` ``(N, H, W)`` float32 in LED order."""

    path: Path
    images: NDArray[np.float32]
    wavelength_nm: float
    defocus_um: float
    rotation_deg: float
    offset_mm: tuple[float, float]

    @property
    def channel(self) -> str:
        """r, g or b: the RGB channel nearest to the stack's wavelength."""
        return min((("r", 630.0), ("g", 532.0), ("b", 475.0)), key=lambda c: abs(c[1] - self.wavelength_nm))[0]

    def rig(self, name: str = DEFAULT_RIG) -> Rig:
        """The rig ``name`` turned by ``rotation_deg`` and shifted by ``offset_mm``, with the stack's
        wavelength as its only colour. Its LED count must match the stack's image count."""
        if name not in RIGS:
            raise RealStackError(f"unknown rig {name!r} for a real stack; valid: {', '.join(RIGS)}")
        data: dict[str, Any] = copy.deepcopy(dict(RIGS[name]))
        data["wavelengths_nm"] = {self.channel: self.wavelength_nm}
        for group in data["leds"]:
            if group["kind"] == "grid":
                group["rotation_deg"] = self.rotation_deg
                group["offset_mm"] = list(self.offset_mm)
        rig = rig_from_dict(data)
        if len(rig.geometry.leds) != len(self.images):
            raise RealStackError(
                f"{self.path}: {len(self.images)} images but rig {name!r} has {len(rig.geometry.leds)} LEDs; "
                "pass the rig the stack was taken with"
            )
        return rig


def _scalar(data: dict[str, Any], key: str, path: Path) -> float:
    value = np.asarray(data[key], dtype=np.float64).ravel()
    if value.size != 1 or not np.isfinite(value[0]):
        raise RealStackError(f"{path}: {key} must be one finite number, got shape {value.shape}")
    return float(value[0])


def read_real_stack(path: str | Path) -> RealStack:
    """Read a UConn-format stack; a missing file, key or a bad shape raises :class:`RealStackError`."""
    p = Path(path)
    try:
        data = scipy.io.loadmat(str(p))
    except (OSError, ValueError, NotImplementedError, scipy.io.matlab.MatReadError) as exc:
        raise RealStackError(f"cannot read {p} as a MATLAB stack (imlow_HDR, wlength, z, ...): {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise RealStackError(f"{p}: missing {', '.join(missing)}; expected keys {', '.join(REQUIRED_KEYS)}")
    images = np.asarray(data["imlow_HDR"], dtype=np.float32)
    if images.ndim != 3 or min(images.shape) < 1:
        raise RealStackError(f"{p}: imlow_HDR must be (H, W, N), got shape {images.shape}")
    if not np.isfinite(images).all():
        raise RealStackError(f"{p}: imlow_HDR holds NaN or infinite values")
    wavelength_nm = _scalar(data, "wlength", p) * 1e9
    if not 300.0 <= wavelength_nm <= 1100.0:
        raise RealStackError(f"{p}: wlength {wavelength_nm * 1e-9:g} m is not a visible/NIR wavelength in metres")
    return RealStack(p, np.ascontiguousarray(np.moveaxis(images, -1, 0)), wavelength_nm,
                     Z_SIGN * _scalar(data, "z", p) * 1e6, _scalar(data, "theta", p),
                     (_scalar(data, "xint", p), _scalar(data, "yint", p)))


def same_field(stack: RealStack) -> list[RealStack]:
    """The other colours of ``stack``'s field: the ``.mat`` stacks in its folder with its image shape and
    LED-array rotation, another wavelength, and a first (central-LED) image that correlates with its own by
    at least :data:`SAME_FIELD_CORR` — the same cells (files that are not such stacks are passed over). The
    array's offset may differ: the dies of an RGB LED sit a fraction of a millimetre apart."""
    found = []
    own = stack.images[0].ravel()
    for path in sorted(stack.path.resolve().parent.glob("*.mat")):
        if path == stack.path.resolve():
            continue
        try:
            other = read_real_stack(path)
        except RealStackError:
            continue
        if (other.images.shape == stack.images.shape and other.rotation_deg == stack.rotation_deg
                and other.wavelength_nm != stack.wavelength_nm
                and np.corrcoef(own, other.images[0].ravel())[0, 1] >= SAME_FIELD_CORR):
            found.append(other)
    return found


def furthest_from_focus(stack: RealStack) -> RealStack | None:
    """The colour of ``stack``'s field furthest from focus (:func:`same_field`), whose phase a recovery
    measures best, when it is further than ``stack`` itself; None otherwise."""
    others = [o for o in same_field(stack) if abs(o.defocus_um) > abs(stack.defocus_um)]
    return max(others, key=lambda o: abs(o.defocus_um)) if others else None


def write_real_stack(path: str | Path, images: NDArray[np.float32], wavelength_nm: float,
                     defocus_um: float = 0.0, rotation_deg: float = 0.0,
                     offset_mm: tuple[float, float] = (0.0, 0.0)) -> Path:
    """Write ``images`` ``(N, H, W)`` in the same format (tests and crops)."""
    p = Path(path)
    scipy.io.savemat(str(p), {
        "imlow_HDR": np.moveaxis(np.asarray(images, np.float32), 0, -1), "wlength": wavelength_nm * 1e-9,
        "z": Z_SIGN * defocus_um * 1e-6, "theta": rotation_deg, "xint": offset_mm[0], "yint": offset_mm[1],
    })
    return p
