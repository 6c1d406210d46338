"""Cell jobs after their inputs are queued: the stack's pixels go, everything published stays."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from edge.device import headers
from edge.device.cell_jobs import fill_input, process_stack, release_pixels
from edge.device.config import CropConfig, DetectorConfig, QcConfig
from edge.device.crops import Normalisation, normalise
from edge.device.stack import Stack


def test_released_fields_free_their_pixels_and_publish_the_same_headers(bench_fields: list[Stack]) -> None:
    cfgs = (QcConfig(), DetectorConfig(), CropConfig(), 64)
    stack = next(s for s in bench_fields  # a field with a cell away from the border: its crop is a view
                 if any("border" not in j.flags for j in process_stack(s, *cfgs).jobs))
    copy = Stack(stack.request, stack.pixels.copy(), stack.planes, stack.colours, stack.pixel_um,
                 stack.black_level, stack.max_adu, stack.t_capture_start, stack.t_capture_end)
    result = process_stack(copy, *cfgs)
    assert len(result.jobs) >= 2 and any(j.raw.base is not None for j in result.jobs)
    model, recipe = {"name": "m", "version": "1"}, {"id": "r", "hash": "h"}
    before = ([headers.cell_header(j, result, model, recipe, 64, None, 1.0, 2.0) for j in result.jobs],
              headers.field_header(result, "ok", len(result.jobs), 0, 0, 3.0))
    scatter = [j.scatter.copy() for j in result.jobs]
    pixels = weakref.ref(copy.pixels)
    del copy
    release_pixels(result)
    gc.collect()
    assert pixels() is None, "a released field still holds its stack's pixels"
    assert result.stack.pixels.shape == (0, *stack.pixels.shape[1:]) and result.stack.shape == stack.shape
    assert all(j.raw.shape == (0, *stack.pixels.shape[1:2], 64, 64) and j.raw.base is None for j in result.jobs)
    after = ([headers.cell_header(j, result, model, recipe, 64, None, 1.0, 2.0) for j in result.jobs],
             headers.field_header(result, "ok", len(result.jobs), 0, 0, 3.0))
    assert after == before
    assert all(np.array_equal(a, j.scatter) for a, j in zip(scatter, result.jobs, strict=True))


def test_a_cells_input_is_normalised_into_a_float_row_and_copied_into_a_uint16_row(bench_fields: list[Stack]) -> None:
    jobs = [j for s in bench_fields for j in process_stack(s, QcConfig(), DetectorConfig(), CropConfig(), 64).jobs]
    job = next(j for j in jobs if j.raw.base is not None)  # a strided view of the stack, as in the daemon
    norm = Normalisation.uniform(job.raw.shape[0], bench_fields[0].black_level, 4000.0)
    n, c = job.raw.shape[:2]
    rows = np.zeros((2, n * c, 64, 64), np.float32), np.zeros((2, n * c, 64, 64), np.uint16)
    fill_input(job, norm, rows[0][1])
    fill_input(job, norm, rows[1][1])
    np.testing.assert_array_equal(rows[0][1], normalise(job.raw, norm))
    np.testing.assert_array_equal(rows[1][1], job.raw.reshape(n * c, 64, 64))
    assert not rows[0][0].any() and not rows[1][0].any()  # the neighbouring row is untouched
