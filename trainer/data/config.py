"""The dataset-build config: one frozen dataclass per step, loaded from TOML.

```toml
[registration]          # coarse stained → unstained registration (seed 000, 3.1.3)
margin_px = 64          # crop of the stained image before template matching (seed: 264 on 1900x1200)
[wbc]                   # white-cell localisation in the stained image
method = "od"           # od (optical density) | stain (per-image stain vectors) | net | cnn (learned) | hsv
min_area_um2 = 15.0
[align]
crop_px = 64
search_px = 5
[hr]
scales = [0.98, 0.99, 1.0, 1.01, 1.02]
[pls]
max_shift_px = 1.0
action = "flag"         # flag | reject
[build]
split_by = "slide"      # slide | field
```

Unknown keys, wrong types and out-of-range values raise :class:`~trainer.errors.ConfigError`
naming ``section.key``. Lengths in ``*_um`` / ``*_um2`` are on the sample, so the same config
works at any magnification; ``*_px`` are camera pixels of the 20x images.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.config import build_sections, read_toml
from core.config import require as _check


@dataclass(frozen=True)
class RegistrationConfig:
    """Canny edges + normalised correlation coefficient, then ECC refinement of a similarity."""

    margin_px: int = 64
    canny_low: float = 40.0  # on the 8-bit grey image
    canny_high: float = 100.0
    edge_blur_px: float = 1.5  # Gaussian sigma on the edge maps before matching
    refine: str = "similarity"  # none | translation | similarity (ECC on edge maps)
    min_score: float = 0.15  # NCC of the edge maps below this: field rejected

    def __post_init__(self) -> None:
        _check(self.margin_px >= 8, "registration.margin_px", ">= 8", self.margin_px)
        _check(0 < self.canny_low < self.canny_high, "registration.canny_low/high", "0 < low < high",
               (self.canny_low, self.canny_high))
        _check(self.edge_blur_px >= 0, "registration.edge_blur_px", ">= 0", self.edge_blur_px)
        _check(self.refine in ("none", "translation", "similarity"), "registration.refine",
               "none, translation or similarity", self.refine)
        _check(-1.0 <= self.min_score <= 1.0, "registration.min_score", "in [-1, 1]", self.min_score)


WBC_METHODS = ("od", "stain", "net", "cnn", "hsv")
# Finder for stained photographs (find-wbc, bench/wbc_photos.py) when no method is named: the cnn
# with its shipped check beat net on a lab it never saw in every leave-one-set-out reading
# (docs/wbc-photos.md, rule H). The dataset builder's default stays od (simulated stained scans).
PHOTO_METHOD, PHOTO_STAGE2 = "cnn", "shipped"


def photo_finder(method: str | None, stage2: str | None) -> tuple[str, str]:
    """(method, stage2) for a photograph: the photo default when no method is named, else the named
    method with ``stage2`` or no second stage, so a command that names its method means what it said."""
    if method is None:
        return PHOTO_METHOD, stage2 or PHOTO_STAGE2
    return method, stage2 or "off"


@dataclass(frozen=True)
class WbcConfig:
    """Stained-image localisation (defaults tuned on both simulated stain styles)."""

    method: str = "od"
    smooth_um: float = 0.5  # Gaussian sigma on the optical density
    # nucleus threshold = this x the median OD of the stained material (2.0 since the red cells got
    # their dry-mass thickness: at 1.8 nuclei merged with neighbouring red-cell rims; recall on the
    # tuning seeds 1000-1023 0.961 -> 0.993)
    od_relative: float = 2.0
    od_low_relative: float = 2.0  # hysteresis: grow nuclei into OD above this x the median (= od_relative: off)
    od_min: float = 0.2  # ... but never below this OD
    hue_deg: tuple[float, float] = (200.0, 340.0)  # hsv method: blue → purple → magenta
    saturation_min: float = 0.25  # hsv method, 0..1
    value_max: float = 0.7  # hsv method, 0..1 of the background brightness
    closing_um: float = 0.8  # disc radius of the morphological closing
    merge_um: float = 1.5  # parts closer than this are one cell (a lobed nucleus)
    min_area_um2: float = 15.0
    max_area_um2: float = 250.0
    max_elongation: float = 4.0  # major / minor axis of the cell's mask
    min_solidity: float = 0.55  # mask area / convex hull area
    min_od_relative: float = 1.95  # a cell's mean OD must reach this x the median OD of the stained material
    stain_relative: float = 1.3  # stain method: nuclear density above this x its material 99th percentile
    model: str = ""  # net / cnn method: weights file (net: .npz, cnn: .onnx); "" = the one shipped in the package
    net_threshold: float = 0.0  # net / cnn method: heat-map threshold; 0 = the one stored with the weights
    # second stage that accepts or rejects each heat-map candidate: "off" = the heat map alone (see
    # README), "shipped" = the one in the package, or a file (net: .npz features + MLP, cnn: .onnx
    # verifier that looks at each candidate at 0.5 µm per pixel)
    stage2: str = "off"

    def __post_init__(self) -> None:
        _check(self.method in WBC_METHODS, "wbc.method", " | ".join(WBC_METHODS), self.method)
        _check(self.stain_relative > 0, "wbc.stain_relative", "> 0", self.stain_relative)
        _check(0 <= self.net_threshold < 1, "wbc.net_threshold", "in [0, 1)", self.net_threshold)
        _check(self.stage2 in ("off", "shipped") or self.stage2.endswith((".npz", ".onnx")), "wbc.stage2",
               "off | shipped | a .npz (net) or .onnx (cnn) path", self.stage2)
        _check(self.method == "cnn" or not self.stage2.endswith(".onnx"), "wbc.stage2",
               "an .onnx second stage only with method 'cnn'", self.stage2)
        _check(self.method != "cnn" or not self.stage2.endswith(".npz"), "wbc.stage2", "off, shipped or an .onnx "
               "verifier with method 'cnn' (a .npz second stage was trained on the net's heat map)", self.stage2)
        _check(self.method != "cnn" or not self.model or self.model.endswith(".onnx"), "wbc.model",
               "'' or an .onnx file with method 'cnn'", self.model)
        for key in ("smooth_um", "closing_um", "merge_um", "od_min"):
            _check(getattr(self, key) >= 0, f"wbc.{key}", ">= 0", getattr(self, key))
        _check(0 < self.od_low_relative <= self.od_relative, "wbc.od_low_relative/od_relative", "0 < low <= high",
               (self.od_low_relative, self.od_relative))
        _check(0 <= self.hue_deg[0] < 360 and 0 <= self.hue_deg[1] <= 360, "wbc.hue_deg",
               "two angles in [0, 360]", self.hue_deg)
        _check(0 <= self.saturation_min <= 1 and 0 < self.value_max <= 1, "wbc.saturation_min/value_max",
               "in [0, 1]", (self.saturation_min, self.value_max))
        _check(0 < self.min_area_um2 < self.max_area_um2, "wbc.min_area_um2/max_area_um2", "0 < min < max",
               (self.min_area_um2, self.max_area_um2))
        _check(self.max_elongation >= 1, "wbc.max_elongation", ">= 1", self.max_elongation)
        _check(0 <= self.min_solidity <= 1, "wbc.min_solidity", "in [0, 1]", self.min_solidity)
        _check(self.min_od_relative >= 0, "wbc.min_od_relative", ">= 0", self.min_od_relative)


@dataclass(frozen=True)
class AlignConfig:
    """Crops and the fine ±search_px SSIM alignment of each stained crop."""

    crop_px: int = 64
    search_px: int = 5
    subpixel: bool = True
    min_gain: float = 0.02  # apply the fine offset only if it raises SSIM by this much over offset 0
    min_ssim: float = 0.2  # below: QC flag low_alignment

    def __post_init__(self) -> None:
        _check(self.crop_px >= 16 and self.crop_px % 2 == 0, "align.crop_px", "an even number >= 16", self.crop_px)
        _check(0 <= self.search_px <= 32, "align.search_px", "in [0, 32]", self.search_px)
        _check(-1 <= self.min_ssim <= 1, "align.min_ssim", "in [-1, 1]", self.min_ssim)


@dataclass(frozen=True)
class HrConfig:
    """Matching of 100x tiles to the stained 20x image (LoG preprocessing of seed 000)."""

    gaussian_ksize: int = 9
    laplacian_ksize: int = 7
    search_um: float = 4.0  # how far a tile may sit from where the stage put it
    scales: tuple[float, ...] = (0.98, 0.99, 1.0, 1.01, 1.02)  # relative to the nominal ratio
    scale_min_gain: float = 0.01  # a non-nominal scale must beat the nominal NCC by this much
    min_score: float = 0.08  # NCC of the LoG images (20x vs 100x optics: low); below: QC flag hr_mismatch

    def __post_init__(self) -> None:
        for key in ("gaussian_ksize", "laplacian_ksize"):
            v = getattr(self, key)
            _check(v >= 1 and v % 2 == 1, f"hr.{key}", "an odd number >= 1", v)
        _check(self.laplacian_ksize <= 31, "hr.laplacian_ksize", "<= 31", self.laplacian_ksize)
        _check(self.search_um > 0, "hr.search_um", "> 0", self.search_um)
        _check(len(self.scales) >= 1 and all(0.8 <= s <= 1.25 for s in self.scales), "hr.scales",
               "a non-empty list in [0.8, 1.25]", self.scales)


@dataclass(frozen=True)
class PlsConfig:
    """Brightfield vs oblique-PLS misalignment check (the one seed 000 lacked)."""

    max_shift_px: float = 1.0
    action: str = "flag"  # flag: keep the samples with QC flag pls_misaligned; reject: drop the field

    def __post_init__(self) -> None:
        _check(self.max_shift_px > 0, "pls.max_shift_px", "> 0", self.max_shift_px)
        _check(self.action in ("flag", "reject"), "pls.action", "flag or reject", self.action)


@dataclass(frozen=True)
class BuildOptions:
    """Store-level choices."""

    split_by: str = "slide"  # slide | field (field: single-slide development sets only)
    split_ratios: tuple[float, float, float] = (8.0, 1.0, 1.0)
    split_salt: str = ""
    max_in_flight: int = 2  # fields queued per worker (bounds memory)

    def __post_init__(self) -> None:
        _check(self.split_by in ("slide", "field"), "build.split_by", "slide or field", self.split_by)
        _check(all(r >= 0 for r in self.split_ratios) and sum(self.split_ratios) > 0, "build.split_ratios",
               "three non-negative numbers, not all 0", self.split_ratios)
        _check(self.max_in_flight >= 1, "build.max_in_flight", ">= 1", self.max_in_flight)


@dataclass(frozen=True)
class BuildConfig:
    """The whole config of one ``stainless-train build-dataset`` run."""

    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    wbc: WbcConfig = field(default_factory=WbcConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    hr: HrConfig = field(default_factory=HrConfig)
    pls: PlsConfig = field(default_factory=PlsConfig)
    build: BuildOptions = field(default_factory=BuildOptions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildConfig:
        return cls(**build_sections(data, typing.get_type_hints(cls)))


def load_build_config(path: Path | None) -> BuildConfig:
    """The config in ``path`` (TOML), or the defaults when ``path`` is None."""
    if path is None:
        return BuildConfig()
    return BuildConfig.from_dict(read_toml(path))
