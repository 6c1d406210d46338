"""Build a paired dataset from raw scans: every field of every scan folder, in parallel, resumable.

One scan folder is one slide. Fields are processed by a pool of worker processes (``spawn``: safe
with the threads zarr and OpenCV start) with at most ``workers × build.max_in_flight`` fields in
flight, so memory stays bounded however large the scan; the main process alone writes the store,
in completion order, and records each finished field in the store's ``done`` list, so re-running
the same command skips finished fields. A field that cannot be used (missing or unreadable
files, missing planes, mismatched sizes, no stained re-scan, no registration) is skipped, counted
under its reason and logged; the build never dies on one field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import rawscan
from firmware_bridge.errors import BridgeError
from firmware_bridge.geometry import ArrayGeometry
from firmware_bridge.recipes import StackRecipe, resolve_recipe
from trainer.data.config import BuildConfig
from trainer.data.pairs import FieldPairs, FieldRejected, pair_field
from trainer.data.splits import split_of
from trainer.data.store import META_COLUMNS, SPLITS, DatasetWriter, StoreInfo
from trainer.errors import TrainerError

log = logging.getLogger(__name__)


class BuildError(TrainerError):
    """The build cannot start (no fields, unreadable first field, ...); the message says what to do."""


@dataclass(frozen=True)
class FieldTask:
    """One field to process (picklable: it crosses into a worker process)."""

    key: str  # "<slide>/field_NNNN", the resume key
    slide: str
    path: str
    recipe_hash: str
    hr: bool
    config: dict[str, Any]


@dataclass
class FieldResult:
    key: str
    slide: str
    reason: str  # "" = used
    detail: str
    pairs: FieldPairs | None


def slide_id(scan_dir: Path) -> str:
    """The slide a scan folder shows: ``scan.json["slide"]`` if the scanner wrote one, else the folder name."""
    try:
        meta = json.loads((Path(scan_dir) / "scan.json").read_text())
        if isinstance(meta.get("slide"), str) and meta["slide"]:
            return str(meta["slide"])
    except (OSError, ValueError):
        pass
    return Path(scan_dir).resolve().name


def _config_from_dict(d: dict[str, Any]) -> BuildConfig:
    return BuildConfig.from_dict({k: {f: list(v) if isinstance(v, tuple) else v for f, v in sec.items()}
                                  for k, sec in d.items()})


def process_field(task: FieldTask) -> FieldResult:
    """Read one field and pair it (runs in a worker). Every failure becomes a reason, never an exception."""
    cv2.setNumThreads(1)  # one field per process: OpenCV's own threads would oversubscribe the CPUs
    try:
        cfg = _config_from_dict(task.config)
        unstained = rawscan.read_image(Path(task.path), "unstained")
        if unstained.meta.get("recipe", {}).get("hash") != task.recipe_hash:
            raise FieldRejected("recipe_mismatch", f"stack recipe {unstained.meta.get('recipe', {}).get('id')!r} "
                                "differs from the dataset's; build each recipe into its own --out")
        try:
            stained = rawscan.read_image(Path(task.path), "stained")
        except rawscan.RawScanError as exc:
            raise FieldRejected("no_stained", str(exc)) from exc
        hr = None
        if task.hr and (Path(task.path) / "hr.json").is_file():
            tiles = rawscan.read_image(Path(task.path), "hr")
            hr = (tiles.pixels, tiles.meta)
        pairs = pair_field(unstained.pixels, unstained.meta, stained.pixels, stained.meta, cfg, hr, task.hr)
        return FieldResult(task.key, task.slide, "", "", pairs)
    except FieldRejected as exc:
        return FieldResult(task.key, task.slide, exc.reason, str(exc), None)
    except (rawscan.RawScanError, zlib.error) as exc:  # zlib: a truncated compressed TIFF strip
        return FieldResult(task.key, task.slide, "unreadable", f"{task.path}: {exc}", None)
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # malformed sidecar or planes
        return FieldResult(task.key, task.slide, "malformed", f"{type(exc).__name__}: {exc}", None)


def _store_info(first: Path, hr: bool) -> StoreInfo:
    """What the store holds, from the first complete field's sidecars."""
    try:
        meta = json.loads((first / "unstained.json").read_text())
        smeta = json.loads((first / "stained.json").read_text()) if (first / "stained.json").is_file() else meta
        recipe: StackRecipe = resolve_recipe(meta["recipe"]["id"], ArrayGeometry.from_dict(meta["geometry"]))
        cam, scam = meta["camera"], smeta["camera"]
        return StoreInfo(recipe, 0, cam["bit_depth"], cam["black_level_adu"], scam["bit_depth"],
                         scam["black_level_adu"], float(meta["pixel_size_um"]), hr, "raw-scans")
    except (OSError, ValueError, KeyError, BridgeError) as exc:
        raise BuildError(f"cannot read the recipe and camera of {first}: {exc}; is this a raw scan?") from exc


def _tasks(scans: list[Path], cfg: BuildConfig, recipe_hash: str, hr: bool, done: set[str],
           report: Counter[str]) -> list[FieldTask]:
    tasks = []
    for scan in scans:
        slide = slide_id(scan)
        for path in sorted((Path(scan) / "fields").glob("field_*")):
            key = f"{slide}/{path.name}"
            if key in done:
                report["fields_already_done"] += 1
            elif not rawscan.is_complete(path):
                report["rejected:no_unstained"] += 1
                log.warning("%s: no complete unstained stack (unstained.ome.tif + .json); skipped", path)
            else:
                tasks.append(FieldTask(key, slide, str(path), recipe_hash, hr, cfg.to_dict()))
    return tasks


def _run(tasks: list[FieldTask], workers: int, in_flight: int) -> Iterator[FieldResult]:
    if workers <= 1:
        yield from map(process_field, tasks)
        return
    ctx = multiprocessing.get_context("spawn")
    pending: set[Future[FieldResult]] = set()
    queue = iter(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for task in queue:
            pending.add(pool.submit(process_field, task))
            if len(pending) >= workers * in_flight:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(process_field, nxt))
                yield fut.result()


def _append(writer: DatasetWriter, res: FieldResult, pairs: FieldPairs, cfg: BuildConfig, hr: bool) -> None:
    n = len(pairs.rows)
    unit = res.slide if cfg.build.split_by == "slide" else res.key
    split = SPLITS[split_of(unit, cfg.build.split_ratios, cfg.build.split_salt)]
    meta: dict[str, Sequence[Any]] = {c: [r[c] for r in pairs.rows] for c in META_COLUMNS
                                      if c not in ("sample_id", "slide", "split")}
    meta.update(sample_id=[f"{res.key}/{i}" for i in range(n)], slide=[res.slide] * n, split=[split] * n)
    inputs = np.stack(pairs.inputs) if n else np.zeros((0, *writer.group["inputs"].shape[1:]), np.uint16)
    targets = np.stack(pairs.targets) if n else np.zeros((0, *writer.group["targets"].shape[1:]), np.uint16)
    targets_hr = (np.stack(pairs.targets_hr) if n else np.zeros((0, *targets.shape[1:]), np.uint16)) if hr else None
    writer.append(inputs, targets, meta, targets_hr=targets_hr, done_key=res.key)


def build_dataset(scans: list[Path], out: Path, cfg: BuildConfig | None = None, hr: bool = False, workers: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Build (or resume) the dataset at ``out`` from scan folders; returns the report (JSON-able)."""
    cfg = cfg or BuildConfig()
    firsts = [f for s in scans for f in rawscan.list_fields(Path(s))]
    if not firsts:
        raise BuildError(f"no complete field under {', '.join(map(str, scans))}/fields/field_*; "
                         "pass raw-scan folders written by a scanner or `stainless-sim scan`")
    info0 = _store_info(firsts[0], hr)
    info = dataclasses.replace(info0, patch_size=cfg.align.crop_px)
    writer = DatasetWriter(out, info, cfg.to_dict())
    counts: Counter[str] = Counter()
    tasks = _tasks([Path(s) for s in scans], cfg, info.recipe.hash, hr, writer.done, counts)
    stats = _Stats()
    for i, res in enumerate(_run(tasks, workers, cfg.build.max_in_flight), start=1):
        if res.pairs is None:
            counts[f"rejected:{res.reason}"] += 1
            log.warning("%s skipped (%s)", res.key, res.detail)
        else:
            _append(writer, res, res.pairs, cfg, hr)
            counts["fields_used"] += 1
            stats.add(res.pairs)
        if progress:
            progress(i, len(tasks))
    return _report(out, writer, counts, stats, len(tasks))


class _Stats:
    """Accumulates per-cell and per-field figures for the report."""

    def __init__(self) -> None:
        self.cells: Counter[str] = Counter()
        self.reg_scores: list[float] = []
        self.ecc: list[float] = []
        self.offsets: list[float] = []
        self.ssim: list[float] = []
        self.pls: list[float] = []
        self.hr: list[float] = []

    def add(self, p: FieldPairs) -> None:
        self.cells.update(p.cells)
        if p.registration is not None:
            self.reg_scores.append(p.registration.score)
            self.ecc.append(p.registration.ecc)
        self.offsets += p.fine_offsets
        self.ssim += [r["alignment_score"] for r in p.rows]
        self.pls.append(p.pls_px)
        self.hr += p.hr_scores


def _summary(values: list[float]) -> dict[str, float | int]:
    a = np.asarray([v for v in values if np.isfinite(v)], float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": round(float(a.mean()), 4), "median": round(float(np.median(a)), 4),
            "p5": round(float(np.percentile(a, 5)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "min": round(float(a.min()), 4), "max": round(float(a.max()), 4)}


def _report(out: Path, writer: DatasetWriter, counts: Counter[str], stats: _Stats, n_tasks: int) -> dict[str, Any]:
    split = writer.group["meta"]["split"][:]
    return {
        "out": str(out),
        "fields": {"processed": n_tasks, **dict(sorted(counts.items()))},
        "cells": dict(sorted(stats.cells.items())),
        "samples_total": int(writer.group["inputs"].shape[0]),
        "samples_per_split": {name: int((split == v).sum()) for name, v in SPLITS.items()},
        "registration": {"ncc_score": _summary(stats.reg_scores), "ecc": _summary(stats.ecc),
                         "fine_offset_px": _summary(stats.offsets)},
        "alignment_ssim": _summary(stats.ssim),
        "pls_misalignment_px": _summary(stats.pls),
        "hr_match_score": _summary(stats.hr),
    }
