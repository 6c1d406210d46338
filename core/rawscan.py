"""The raw-scan format: what a scanner writes per field, and how tools read it back.

Layout of a scan folder (see the README's "Raw-scan format")::

    scan.json                               schema version, the scan config, creation time
    fields/field_0000/unstained.ome.tif     PLS stack: axes CYXS, one RGB plane per recipe image
    fields/field_0000/unstained.json        planes (LEDs, exposures), recipe id/hash, stage µm, ...
    fields/field_0000/stained.ome.tif       the stained re-scan (YXS), + stained.json
    fields/field_0000/hr.ome.tif            100x tiles around white cells (TYXS), + hr.json
    truth/field_0000/truth.json             simulator truth: WBC centres/types, misalignments
    truth/field_0000/labels.tif             (2, H, W) int32: structure class, instance id

A field becomes visible only when complete: it is assembled under a hidden temporary name and
renamed into place (truth first, images last), so a crash never leaves a field that looks whole.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from numpy.typing import NDArray

SCHEMA_VERSION = 1


@dataclass
class FieldData:
    """One field as a scanner writes it: images, their sidecars, the truth (simulator) and label maps."""

    index: int
    stack: NDArray[np.uint16]  # (N, C, H, W)
    stack_meta: dict[str, Any]
    stained: NDArray[np.uint16] | None  # (C, H, W)
    stained_meta: dict[str, Any] | None
    hr_tiles: NDArray[np.uint16] | None  # (T, C, h, w)
    hr_meta: dict[str, Any] | None
    truth: dict[str, Any]
    labels: NDArray[np.int32]  # (2, H, W): structure, instance on the camera grid


class RawScanError(Exception):
    """A raw scan cannot be written or read; the message says which file and why."""


def field_dir(out: Path, index: int) -> Path:
    return Path(out) / "fields" / f"field_{index:04d}"


def truth_dir(out: Path, index: int) -> Path:
    return Path(out) / "truth" / f"field_{index:04d}"


def is_complete(field_path: Path) -> bool:
    return (field_path / "unstained.json").is_file() and (field_path / "unstained.ome.tif").is_file()


def prepare_output(out: Path, config: dict[str, Any]) -> None:
    """Create the scan folder (or check that an existing one holds the same scan)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RawScanError(f"cannot write to output folder {out}: {exc.strerror}; choose a writable --out") from exc
    manifest = out / "scan.json"
    if manifest.exists():
        existing = json.loads(manifest.read_text())
        if existing.get("config") != json.loads(json.dumps(config)):
            raise RawScanError(
                f"{out} already holds a scan with a different configuration; use an empty --out "
                "(or the same settings to resume it)"
            )
        return
    _write_json(manifest, {"schema_version": SCHEMA_VERSION, "config": config,
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def write_field(out: Path, data: FieldData) -> Path:
    """Write one field atomically; on any error (a full disk included) nothing partial remains."""
    final, tfinal = field_dir(out, data.index), truth_dir(out, data.index)
    tmp = final.with_name(f".{final.name}.partial")
    ttmp = tfinal.with_name(f".{tfinal.name}.partial")
    for p in (tmp, ttmp):
        shutil.rmtree(p, ignore_errors=True)
        p.mkdir(parents=True)
    try:
        names = [m["channel"] for m in data.stack_meta["planes"]]
        _write_tiff(tmp / "unstained.ome.tif", data.stack, "CYXS", data.stack_meta["pixel_size_um"], names)
        _write_json(tmp / "unstained.json", data.stack_meta)
        if data.stained is not None and data.stained_meta is not None:
            _write_tiff(tmp / "stained.ome.tif", data.stained, "YXS", data.stained_meta["pixel_size_um"])
            _write_json(tmp / "stained.json", data.stained_meta)
        if data.hr_tiles is not None and data.hr_meta is not None:
            if len(data.hr_tiles):  # a field without white cells has an hr.json listing no tiles
                _write_tiff(tmp / "hr.ome.tif", data.hr_tiles, "TYXS", data.hr_meta["pixel_size_um"])
            _write_json(tmp / "hr.json", data.hr_meta)
        tifffile.imwrite(ttmp / "labels.tif", data.labels, compression="zlib")
        _write_json(ttmp / "truth.json", data.truth)
        for p, q in ((ttmp, tfinal), (tmp, final)):
            shutil.rmtree(q, ignore_errors=True)
            p.rename(q)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(ttmp, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        if exc.errno == errno.ENOSPC:
            raise RawScanError(f"disk full while writing field {data.index} to {out}; free space and re-run "
                               "(finished fields are kept and skipped)") from exc
        raise RawScanError(f"cannot write field {data.index} to {out}: {exc}") from exc
    return final


def write_image_field(out: Path, index: int, stack: NDArray[np.uint16], meta: dict[str, Any]) -> Path:
    """Write a field with only its unstained stack (a real recording has no truth), atomically."""
    final = field_dir(out, index)
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        names = [p["channel"] for p in meta["planes"]]
        _write_tiff(tmp / "unstained.ome.tif", stack, "CYXS", meta["pixel_size_um"], names)
        _write_json(tmp / "unstained.json", meta)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RawScanError(f"cannot write field {index} to {out}: {exc}") from exc
    return final


def _write_tiff(path: Path, data: NDArray[np.uint16], axes: str, pixel_um: float,
                names: list[str] | None = None) -> None:
    """``data`` is channel-first (..., C, H, W); OME-TIFF stores RGB samples last (..., H, W, S)."""
    arr = np.ascontiguousarray(np.moveaxis(data, -3, -1))
    if arr.shape[-1] == 1:  # one colour (a monochrome LED array): no samples axis
        arr, axes = arr[..., 0], axes[:-1]
    meta: dict[str, Any] = {"axes": axes, "PhysicalSizeX": pixel_um, "PhysicalSizeXUnit": "µm",
                            "PhysicalSizeY": pixel_um, "PhysicalSizeYUnit": "µm"}
    if names:
        meta["Channel"] = {"Name": names}
    photometric = "rgb" if arr.shape[-1] == 3 else "minisblack"
    tifffile.imwrite(path, arr, photometric=photometric, metadata=meta, ome=True,
                     compression="zlib", compressionargs={"level": 1}, predictor=True)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# -- reading ------------------------------------------------------------------------------------
@dataclass
class RawImage:
    """An image read back: pixels channel-first ``(..., C, H, W)`` uint16 and its sidecar."""

    pixels: NDArray[np.uint16]
    meta: dict[str, Any]


def read_image(field_path: Path, kind: str = "unstained") -> RawImage:
    """Read ``unstained``, ``stained`` or ``hr`` of a field folder, validating the sidecar."""
    field_path = Path(field_path)
    tif, js = field_path / f"{kind}.ome.tif", field_path / f"{kind}.json"
    if kind == "hr" and js.is_file() and not tif.is_file():
        meta = json.loads(js.read_text())
        if not meta.get("tile_centres_stage_um"):
            return RawImage(np.zeros((0, len(meta["color_channels"]), 0, 0), np.uint16), meta)
    if not js.is_file() or not tif.is_file():
        raise RawScanError(f"{field_path} has no {kind} image ({tif.name} + {js.name}); "
                           "was the scan made with the matching option (--stained / --hr)?")
    try:
        meta = json.loads(js.read_text())
        with tifffile.TiffFile(tif) as t:
            pixels = t.asarray()
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise RawScanError(f"cannot read {tif} / {js}: {exc}") from exc
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise RawScanError(f"{js}: schema_version {meta.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    ndim = 3 if kind == "stained" else 4  # (..., H, W, S); tifffile squeezes a single plane or tile
    if len(meta.get("color_channels", ())) == 1:
        pixels = pixels[..., None]  # monochrome: stored without a samples axis
    pixels = pixels.reshape((1,) * (ndim - pixels.ndim) + pixels.shape) if pixels.ndim < ndim else pixels
    pixels = np.moveaxis(pixels, -1, -3)
    if kind == "unstained" and pixels.shape[0] != len(meta.get("planes", [])):
        raise RawScanError(f"{tif}: {pixels.shape[0]} planes but {js.name} lists {len(meta.get('planes', []))}")
    return RawImage(np.ascontiguousarray(pixels), meta)


def read_truth(scan_dir: Path, index: int) -> dict[str, Any]:
    path = truth_dir(scan_dir, index) / "truth.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise RawScanError(f"cannot read simulator truth {path}: {exc}") from exc


def list_fields(scan_dir: Path) -> list[Path]:
    """Complete field folders of a scan, in order."""
    return sorted(p for p in (Path(scan_dir) / "fields").glob("field_*") if is_complete(p))
