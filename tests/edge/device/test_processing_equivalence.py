"""The one-pass, copy-free processing helpers give exactly what the straightforward versions give."""

from __future__ import annotations

import numpy as np
import pytest

from edge.device.config import DetectorConfig
from edge.device.detect import Detection, darkfield_energies, darkfield_energy
from edge.device.qc import saturated_fraction_of_planes, saturation_fraction


def _stack(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    px = rng.integers(90, 3000, (9, 3, 24, 20)).astype(np.uint16)
    px[2, 1, :3, :4] = 4095  # a few saturated pixels in two planes
    px[6, 0, 5, 5] = 4095
    return px


@pytest.mark.parametrize("colours", [[2], [0, 1, 2], [0, 2], [1, 2]])
def test_darkfield_energies_equal_two_passes(colours: list[int]) -> None:
    px = _stack()
    exposure = [0.5 + 0.37 * i for i in range(9)]
    total, high = [1, 2, 4, 5, 7, 8], [2, 5, 8]
    got_high, got_total = darkfield_energies(px, colours, high, total, exposure, 99.5)
    sub = px[:, colours]
    for got, planes in ((got_high, high), (got_total, total)):
        want = darkfield_energy(sub, planes, exposure, 99.5)
        if len(colours) == 1:  # one addWeighted per plane: float32 rounding of the map's largest value
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * float(np.abs(want).max()))
        else:
            np.testing.assert_array_equal(got, want)


def test_darkfield_energies_need_high_planes_among_total() -> None:
    with pytest.raises(ValueError, match=r"\[3\]"):
        darkfield_energies(_stack(), [2], [2, 3], [1, 2], [1.0] * 9, 0.0)
    with pytest.raises(ValueError, match="no darkfield plane"):
        darkfield_energies(_stack(), [2], [], [1, 2], [1.0] * 9, 0.0)


@pytest.mark.parametrize("planes", [[0, 1, 2, 3, 4, 5, 6, 7, 8], [2, 6], [0, 1], []])
def test_saturated_fraction_of_planes_equals_the_copying_version(planes: list[int]) -> None:
    px = _stack()
    expected = saturation_fraction(px[planes], 4095)
    assert saturated_fraction_of_planes(px, planes, 4095) == expected


@pytest.mark.parametrize(("shape", "sigma"), [((256, 256), 34.1), ((256, 256), 12.0), ((200, 300), 40.0),
                                              ((64, 48), 30.0), ((256, 256), 3.4)])
def test_gaussian_blur_matches_opencv_within_float32_rounding(shape: tuple[int, int], sigma: float) -> None:
    import cv2

    from edge.device.detect import gaussian_blur

    image = np.random.default_rng(1).random(shape, dtype=np.float32) * 5
    expected = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    got = gaussian_blur(image, sigma)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=5e-6)


@pytest.mark.parametrize("q", [99.5, 50.0, 0.0, 100.0, 1.0, 33.3])
@pytest.mark.parametrize(("shape", "dtype", "high"), [((3, 64, 64), np.uint16, 4095), ((7,), np.uint16, 65535),
                                                      ((1,), np.uint16, 10), ((5, 9), np.uint8, 255),
                                                      ((2, 100, 3), np.uint16, 3)])
def test_counting_percentile_equals_numpy(q: float, shape: tuple[int, ...], dtype: type, high: int) -> None:
    from edge.device.crops import percentile

    rng = np.random.default_rng(int(q * 10) + len(shape))
    for _ in range(10):
        x = rng.integers(0, high, shape, endpoint=True).astype(dtype)
        assert percentile(x, q) == float(np.percentile(x, q))
    f = rng.random(shape).astype(np.float32)  # not counts: numpy's own path
    assert percentile(f, q) == float(np.percentile(f, q))


def _lbp_reference(x: np.ndarray) -> np.ndarray:
    """LBP riu2 (P = 8, R = 1) written out plainly: numpy reflect padding, stacked comparisons, np.roll."""
    p = np.pad(x.astype(np.float32), 1, mode="reflect")
    h, w = x.shape
    c = p[1:h + 1, 1:w + 1]
    offsets = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
    bits = np.stack([(p[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx] >= c) for dy, dx in offsets]).astype(np.uint8)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    return np.where(transitions <= 2, bits.sum(axis=0), 9).astype(np.uint8)


@pytest.mark.parametrize("shape", [(64, 64), (5, 7), (2, 2), (1, 3)])
def test_lbp_equals_the_plain_definition(shape: tuple[int, int]) -> None:
    from edge.device.fidelity import lbp_riu2

    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.random(shape, dtype=np.float32)
        x[rng.random(shape) < 0.3] = 0.5  # ties: >= decides
        np.testing.assert_array_equal(lbp_riu2(x), _lbp_reference(x))


@pytest.mark.parametrize(("shape", "sigma"), [((256, 256), 3.41), ((40, 56), 2.0), ((9, 7), 3.0)])
def test_high_angle_share_at_peaks_equals_the_whole_map_blur(shape: tuple[int, int], sigma: float) -> None:
    """At a few peaks (borders included) the windowed sums give the whole-map blur's share within float32 rounding."""
    import cv2

    from edge.device.detect import SHARE_AT_PEAKS_MAX, high_angle_share

    rng = np.random.default_rng(11)
    high = (rng.random(shape, dtype=np.float32) * 5).astype(np.float32)
    total = high + (rng.random(shape, dtype=np.float32) * 20).astype(np.float32)
    h, w = shape
    ys = np.array([0, h - 1, h // 2, 1, h - 2, 3 % h])
    xs = np.array([0, w - 1, w // 3, w - 1, 0, 5 % w])
    border = cv2.BORDER_REFLECT
    expected = (cv2.GaussianBlur(high, (0, 0), sigma, borderType=border)
                / np.maximum(cv2.GaussianBlur(total, (0, 0), sigma, borderType=border), 1e-6))[ys, xs]
    got = high_angle_share(high, total, ys, xs, sigma)
    assert got.dtype == np.float32 and got.shape == ys.shape
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=0)
    many_y, many_x = np.nonzero(rng.random(shape) < (SHARE_AT_PEAKS_MAX + 5) / high.size)
    if len(many_y) > SHARE_AT_PEAKS_MAX:  # the whole-map path for many peaks
        full = (cv2.GaussianBlur(high, (0, 0), sigma, borderType=border)
                / np.maximum(cv2.GaussianBlur(total, (0, 0), sigma, borderType=border), 1e-6))
        np.testing.assert_array_equal(high_angle_share(high, total, many_y, many_x, sigma), full[many_y, many_x])


def test_share_at_peaks_finds_the_same_cells_on_the_bench(bench_fields: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector's decisions with the share at its peaks only equal those with the whole-map share."""
    import edge.device.detect as detect
    from edge.device.cell_jobs import energy_maps
    from edge.device.config import DetectorConfig

    for cfg in (DetectorConfig(), DetectorConfig(min_high_angle_share=0.3)):
        for stack in bench_fields:
            high, total = energy_maps(stack, cfg)
            got = detect.detect_cells(high, total, stack.pixel_um, cfg)
            with monkeypatch.context() as m:
                m.setattr(detect, "SHARE_AT_PEAKS_MAX", -1)
                whole = detect.detect_cells(high, total, stack.pixel_um, cfg)
            assert [(d.center_px, d.box_px, d.score) for d in got] == [(d.center_px, d.box_px, d.score) for d in whole]
            np.testing.assert_allclose([d.high_angle_share for d in got], [d.high_angle_share for d in whole],
                                       rtol=2e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 4096, 65536])
def test_median_and_percentile_equal_numpy(n: int) -> None:
    from core.measures import median_and_percentile

    rng = np.random.default_rng(n)
    for q in (99.0, 50.0, 0.0, 100.0, 37.5):
        x = (rng.standard_normal(n) * 3 + 1).astype(np.float32)
        med, top = median_and_percentile(x, q)
        assert med == pytest.approx(float(np.median(x)), rel=1e-6, abs=1e-7)
        assert top == pytest.approx(float(np.percentile(x, q)), rel=1e-6, abs=1e-7)
    with pytest.raises(ValueError, match="non-empty"):
        median_and_percentile(np.zeros(0, np.float32), 99.0)


def test_empty_ratio_equals_the_numpy_definition(bench_fields: list) -> None:
    import cv2

    from edge.device.cell_jobs import energy_maps
    from edge.device.config import DetectorConfig
    from edge.device.qc import empty_ratio

    flat = np.full((64, 64), 3.0, np.float32) + np.random.default_rng(0).random((64, 64), dtype=np.float32) * 0.01
    for energy in [energy_maps(s, DetectorConfig())[1] for s in bench_fields[:3]] + [flat]:
        e = cv2.GaussianBlur(energy, (0, 0), 2.0)
        assert empty_ratio(energy) == pytest.approx(float(np.percentile(e, 99)) / float(np.median(e)), rel=1e-6)


def test_one_pass_normalise_equals_the_plain_definition() -> None:
    from edge.device.crops import Normalisation, crop, normalise

    px = _stack(2)
    norm = Normalisation(np.linspace(10, 100, 9).astype(np.float32), np.linspace(3000, 4000, 9).astype(np.float32))
    patch, border = crop(px, (10.2, 12.7), 8)
    assert not border
    expected = np.clip((patch.astype(np.float32) - norm.offset[:, None, None, None])
                       * (1.0 / norm.scale)[:, None, None, None], 0, 1).reshape(27, 8, 8)
    np.testing.assert_array_equal(normalise(patch, norm), expected)
    np.testing.assert_array_equal(normalise(px[..., 9:17, 6:14], norm), expected)  # a strided view of the stack


def _measure_reference(smooth: np.ndarray, level0: float, hs: float, blob: np.ndarray, x: int, y: int,
                       pixel_um: float, config: DetectorConfig) -> Detection | None:
    """The half-height region measured plainly: a label image, the region's mask, its pixels' mean and extent."""
    import math

    import cv2

    from edge.device.detect import _solidity

    if hs < config.min_high_angle_share:
        return None
    r = math.ceil(config.max_diameter_um / pixel_um)
    h, w = smooth.shape
    y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
    mask = (smooth[y0:y1, x0:x1] > level0 + 0.5 * (float(smooth[y, x]) - level0)).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    region = labels == labels[y - y0, x - x0]
    if not mask[y - y0, x - x0]:
        return None
    diameter = 2.0 * math.sqrt(float(region.sum()) / math.pi) * pixel_um
    if not config.min_diameter_um <= diameter <= config.max_diameter_um:
        return None
    solidity = _solidity(region)
    if solidity < config.min_solidity:
        return None
    rows, cols = np.nonzero(region)
    m = config.box_margin_um / pixel_um
    box = (max(0, int(cols.min() + x0 - m)), max(0, int(rows.min() + y0 - m)),
           min(w, math.ceil(cols.max() + x0 + 1 + m)), min(h, math.ceil(rows.max() + y0 + 1 + m)))
    return Detection((float(cols.mean()) + x0, float(rows.mean()) + y0), box, float(blob[y, x]), diameter,
                     solidity, hs)


def test_regions_from_opencv_stats_equal_the_plain_measurement(bench_fields: list,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Area, box and centre from ``connectedComponentsWithStats`` give exactly the detections of the mask-based
    measurement on the bench fields (and on a stricter configuration that rejects some regions)."""
    import edge.device.detect as detect
    from edge.device.cell_jobs import energy_maps
    from edge.device.config import DetectorConfig

    found = 0
    for cfg in (DetectorConfig(), DetectorConfig(min_solidity=0.9, max_diameter_um=9.0)):
        for stack in bench_fields:
            high, total = energy_maps(stack, cfg)
            got = detect.detect_cells(high, total, stack.pixel_um, cfg)
            with monkeypatch.context() as m:
                m.setattr(detect, "_measure", _measure_reference)
                expected = detect.detect_cells(high, total, stack.pixel_um, cfg)
            assert got == expected
            found += len(got)
    assert found > 2 * len(bench_fields)


def test_one_pass_energy_maps_keep_qc_and_detections_on_the_bench(bench_fields: list) -> None:
    """The detector's default (one colour, blue) energy maps from one ``addWeighted`` per plane give the same QC
    verdicts and the same detections as the reference two-pass maps on the bench fields: flags, centres,
    boxes, sizes and shapes exactly; QC figures, scores and high-angle shares within 1e-6 (float32 rounding)."""
    from edge.device.cell_jobs import energy_maps
    from edge.device.config import QcConfig
    from edge.device.detect import detect_cells
    from edge.device.qc import run_qc

    cfg, qc_cfg = DetectorConfig(), QcConfig()
    for stack in bench_fields:
        high, total = energy_maps(stack, cfg)
        exposure = [p.exposure.effective_ms for p in stack.planes]
        df = [i for i in stack.plane_indices(darkfield=True, exposure_class=None)
              if stack.planes[i].exposure_class != "high"]
        hi = [i for i in df if stack.planes[i].angle_deg > cfg.min_angle_deg]
        blue = stack.pixels[:, [stack.colours.index("b")]]
        ref_high, ref_total = (darkfield_energy(blue, planes, exposure, stack.black_level) for planes in (hi, df))
        np.testing.assert_allclose(high, ref_high, rtol=0, atol=1e-6 * float(np.abs(ref_high).max()))
        np.testing.assert_allclose(total, ref_total, rtol=0, atol=1e-6 * float(np.abs(ref_total).max()))
        got_qc, want_qc = run_qc(stack, total, qc_cfg), run_qc(stack, ref_total, qc_cfg)
        assert got_qc.flags == want_qc.flags and got_qc.metrics == pytest.approx(want_qc.metrics, rel=1e-6)
        got = detect_cells(high, total, stack.pixel_um, cfg)
        want = detect_cells(ref_high, ref_total, stack.pixel_um, cfg)
        assert got and [(d.center_px, d.box_px, d.diameter_um, d.solidity) for d in got] == [
            (d.center_px, d.box_px, d.diameter_um, d.solidity) for d in want]
        np.testing.assert_allclose([(d.score, d.high_angle_share) for d in got],
                                   [(d.score, d.high_angle_share) for d in want], rtol=1e-6)


def test_radix_selection_keeps_qc_detections_and_crops_on_the_bench(bench_fields: list,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The medians, percentiles and plane medians from radix selection (``core.select``) against numpy's
    partition on the bench fields: every QC figure, detection and crop exactly the same."""
    import core.measures as measures
    import core.select as select
    from edge.device.cell_jobs import process_stack
    from edge.device.config import CropConfig, QcConfig

    def by_partition(keys: np.ndarray, ranks: list[int]) -> np.ndarray:
        return np.partition(keys, ranks, axis=1)[:, ranks]

    cfgs = (QcConfig(), DetectorConfig(), CropConfig())
    got = [process_stack(s, *cfgs, 64) for s in bench_fields]
    monkeypatch.setattr(select, "select_rows", by_partition)
    monkeypatch.setattr(measures, "select_rows", by_partition)
    want = [process_stack(s, *cfgs, 64) for s in bench_fields]
    assert sum(len(r.detections) for r in got) > 2 * len(bench_fields)
    for g, w in zip(got, want, strict=True):
        assert g.qc == w.qc and g.detections == w.detections
        for a, b in zip(g.jobs, w.jobs, strict=True):
            np.testing.assert_array_equal(a.raw, b.raw)
            np.testing.assert_array_equal(a.scatter, b.scatter)
            np.testing.assert_array_equal(a.unstained, b.unstained)
