"""The paired dataset store: zarr, one chunk per sample, readable under any sub-recipe.

Layout of ``DATASET.zarr`` (a zarr v3 group)::

    attrs      schema_version, recipe {id, hash, channels, geometry}, patch_size, bit_depth,
               black_level_adu, target_bit_depth, target_black_level_adu, pixel_size_um,
               has_hr, source, builder (the resolved build config), done (finished source keys)
    inputs     (N, I, C, P, P) uint16  raw PLS crops in recipe channel order (black level included)
    targets    (N, C, P, P)    uint16  stained crops at the 20x re-scan's raw bit depth
    targets_hr (N, C, P, P)    uint16  100x truth downsampled to the 20x grid (only if has_hr)
    meta/<col> (N,)            per-sample table, columns in META_COLUMNS

Normalisation to [0, 1] (``(adu - black) / (2^bits - 1 - black)``) happens when reading, so the
store keeps the camera's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numpy.typing import NDArray

from firmware_bridge.geometry import ArrayGeometry
from firmware_bridge.recipes import StackRecipe, resolve_recipe

SCHEMA_VERSION = 1
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}

#: Per-sample metadata columns and their dtypes ("str" = variable-length text).
META_COLUMNS: dict[str, str] = {
    "sample_id": "str",  # unique, stable across rebuilds: "<slide>/<field>/<cell>"
    "slide": "str",
    "field": "int32",
    "x_um": "float64",  # cell centre on the stage
    "y_um": "float64",
    "split": "uint8",  # SPLITS
    "cell_type": "str",  # "" when unknown
    "registration_score": "float32",  # coarse stained→unstained registration (NCC)
    "alignment_score": "float32",  # fine alignment (SSIM)
    "pls_misalignment_px": "float32",  # brightfield vs oblique PLS shift, px
    "qc_flags": "uint32",  # QC_FLAGS bits
}

#: QC flag bits stored in ``meta/qc_flags``.
QC_FLAGS: dict[str, int] = {
    "near_border": 1 << 0,
    "pls_misaligned": 1 << 1,
    "low_alignment": 1 << 2,
    "target_artefact": 1 << 3,
    "hr_mismatch": 1 << 4,
    "damaged_cell": 1 << 5,
}


class DatasetError(Exception):
    """A dataset cannot be created, opened or read as asked; the message says how to fix it."""


@dataclass(frozen=True)
class StoreInfo:
    """What a store was built from; written as group attributes."""

    recipe: StackRecipe
    patch_size: int
    bit_depth: int
    black_level_adu: int
    target_bit_depth: int
    target_black_level_adu: int
    pixel_size_um: float
    has_hr: bool
    source: str  # "raw-scans" or "synthetic"

    def attrs(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "recipe": {**self.recipe.to_dict(), "geometry": self.recipe.geometry.to_dict()},
            "patch_size": self.patch_size, "bit_depth": self.bit_depth, "black_level_adu": self.black_level_adu,
            "target_bit_depth": self.target_bit_depth, "target_black_level_adu": self.target_black_level_adu,
            "pixel_size_um": self.pixel_size_um, "has_hr": self.has_hr, "source": self.source, "done": [],
        }


def _text(values: Sequence[Any]) -> NDArray[Any]:
    return np.asarray([str(v) for v in values], dtype=str)


class DatasetWriter:
    """Appends samples to a new or existing store; ``done`` keys make building resumable."""

    def __init__(self, path: Path, info: StoreInfo, builder_config: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.group: Any  # zarr's Group: typed loosely, its stubs do not know array methods on members
        if (self.path / "zarr.json").exists():
            self.group = zarr.open_group(str(self.path), mode="r+")
            found = self.group.attrs.get("recipe", {}).get("hash")
            if found != info.recipe.hash or self.group.attrs.get("patch_size") != info.patch_size:
                raise DatasetError(
                    f"{self.path} exists with recipe hash {found} / patch {self.group.attrs.get('patch_size')}; "
                    f"this build needs {info.recipe.hash} / {info.patch_size}: use another --out"
                )
            if ("targets_hr" in self.group) != info.has_hr:
                have = "has" if "targets_hr" in self.group else "has no"
                raise DatasetError(f"{self.path} exists and {have} 100x targets; this build "
                                   f"{'needs' if info.has_hr else 'makes no'} 100x targets (--hr): use another --out")
            return
        self.group = zarr.open_group(str(self.path), mode="w")
        self.group.attrs.update({**info.attrs(), "builder": builder_config or {}})
        n_img, n_ch, p = len(info.recipe), len(info.recipe.geometry.channels), info.patch_size
        self.group.create_array("inputs", shape=(0, n_img, n_ch, p, p), chunks=(1, n_img, n_ch, p, p), dtype="uint16")
        self.group.create_array("targets", shape=(0, n_ch, p, p), chunks=(1, n_ch, p, p), dtype="uint16")
        if info.has_hr:
            self.group.create_array("targets_hr", shape=(0, n_ch, p, p), chunks=(1, n_ch, p, p), dtype="uint16")
        meta = self.group.create_group("meta")
        for col, dtype in META_COLUMNS.items():
            meta.create_array(col, shape=(0,), chunks=(4096,), dtype=str if dtype == "str" else dtype)

    @property
    def done(self) -> set[str]:
        return set(self.group.attrs.get("done", []))

    def append(self, inputs: NDArray[np.uint16], targets: NDArray[np.uint16], meta: dict[str, Sequence[Any]],
               targets_hr: NDArray[np.uint16] | None = None, done_key: str | None = None) -> None:
        """Append ``n`` samples; ``done_key`` (e.g. a field id) is recorded after the data is written."""
        n = len(inputs)
        missing = set(META_COLUMNS) - set(meta)
        if missing or len(targets) != n or any(len(v) != n for v in meta.values()):
            raise DatasetError(f"append: need {n} targets and meta columns {sorted(META_COLUMNS)}; "
                               f"missing {sorted(missing)}, lengths {[len(v) for v in meta.values()]}")
        if n:
            self.group["inputs"].append(np.asarray(inputs, np.uint16))
            self.group["targets"].append(np.asarray(targets, np.uint16))
            if "targets_hr" in self.group:
                if targets_hr is None:
                    raise DatasetError("this store has 100x targets; append() needs targets_hr")
                self.group["targets_hr"].append(np.asarray(targets_hr, np.uint16))
            for col, dtype in META_COLUMNS.items():
                values = _text(meta[col]) if dtype == "str" else np.asarray(meta[col], dtype)
                self.group["meta"][col].append(values)
        if done_key is not None:
            self.group.attrs["done"] = [*self.group.attrs.get("done", []), done_key]


class Dataset:
    """Read access to a store, optionally under a sub-recipe of the captured one."""

    def __init__(self, path: Path, recipe: str | None = None) -> None:
        self.path = Path(path)
        self.group: Any
        try:
            self.group = zarr.open_group(str(self.path), mode="r")
            attrs: dict[str, Any] = dict(self.group.attrs)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise DatasetError(f"{self.path} is not a stainless dataset (zarr group): {exc}") from exc
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DatasetError(f"{self.path}: schema_version {version!r}, this stainless reads {SCHEMA_VERSION}; "
                               "rebuild the dataset or upgrade stainless")
        self.attrs = attrs
        geometry = ArrayGeometry.from_dict(attrs["recipe"]["geometry"])
        self.captured = resolve_recipe(attrs["recipe"]["id"], geometry)
        if self.captured.hash != attrs["recipe"]["hash"]:
            raise DatasetError(f"{self.path}: recipe {self.captured.id!r} resolves to hash {self.captured.hash}, "
                               f"the store says {attrs['recipe']['hash']}; the geometry or recipe code changed")
        self.recipe = self.captured if recipe is None else resolve_recipe(recipe, geometry)
        self.channel_index = self.captured.indices_of(self.recipe)
        self.meta = {col: self.group["meta"][col][:] for col in META_COLUMNS}

    def __len__(self) -> int:
        return int(self.group["inputs"].shape[0])

    @property
    def has_hr(self) -> bool:
        return "targets_hr" in self.group

    def split_indices(self, split: str) -> NDArray[np.int64]:
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return np.flatnonzero(self.meta["split"] == SPLITS[split])

    def inputs(self, index: int) -> NDArray[np.float32]:
        """Sample ``index`` as float32 ``(I·C, P, P)`` in [0, 1], channels of the chosen recipe."""
        raw = self.group["inputs"][index][self.channel_index]
        return self._norm(raw, self.attrs["bit_depth"], self.attrs["black_level_adu"]).reshape(-1, *raw.shape[-2:])

    def target(self, index: int, hr: bool = False) -> NDArray[np.float32]:
        """Target ``(C, P, P)`` float32 in [0, 1] (the 100x truth when ``hr``)."""
        if hr and not self.has_hr:
            raise DatasetError(f"{self.path} has no 100x targets; rebuild with --hr")
        raw = self.group["targets_hr" if hr else "targets"][index]
        return self._norm(raw, self.attrs["target_bit_depth"], self.attrs["target_black_level_adu"])

    @staticmethod
    def _norm(raw: NDArray[Any], bits: int, black: int) -> NDArray[np.float32]:
        scale = np.float32(1.0 / (2**bits - 1 - black))
        return np.clip((raw.astype(np.float32) - np.float32(black)) * scale, 0.0, 1.0)
