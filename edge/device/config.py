"""Daemon configuration: one frozen dataclass per component, loaded from one TOML file.

Every section of the file maps to one dataclass below (``[camera]`` → :class:`CameraConfig`, ...),
read by the project's one config loader (:mod:`core.config`). Unknown sections and keys, wrong
types and out-of-range values are rejected at start-up with the key's dotted name, the value found
and what was expected in the message. :func:`load_config` reads a file, :func:`config_from_dict` a
mapping; :meth:`EdgeConfig.to_dict` gives the resolved config (logged at start, saved beside runs).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from core.config import ConfigError, build_sections, check, read_toml
from edge.device.opsconfig import (
    ControlConfig,
    FlashConfig,
    MetricsConfig,
    PublisherConfig,
    SecurityConfig,
    SpoolConfig,
)

T = TypeVar("T")


#: Every flag QC (:mod:`edge.device.qc`) can raise, in a stable order.
QC_FLAGS: tuple[str, ...] = ("saturated", "out_of_focus", "misaligned", "empty")

@dataclass(frozen=True)
class DaemonConfig:
    id: str = "stainless-edge"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    status_interval_s: float = 1.0
    #: Niceness added to the processing thread (Linux): the model's threads get a core first
    #: (:mod:`edge.device.priority`); 0 = the same priority as the model.
    process_nice: int = 0

    def __post_init__(self) -> None:
        check("daemon", self, id=(bool(self.id), "a non-empty name"),
              status_interval_s=(0.05 <= self.status_interval_s <= 3600, "0.05 .. 3600 s"),
              process_nice=(0 <= self.process_nice <= 19, "0 .. 19 (Linux nice increments)"))


@dataclass(frozen=True)
class LedConfig:
    """The LED array: ``sim://thesis-43``, ``/dev/ttyACM0`` or ``socket://host:port``."""

    url: str = "sim://thesis-43"
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        check("led", self, url=(bool(self.url), "an LED array URL"),
              timeout_s=(0.01 <= self.timeout_s <= 60, "0.01 .. 60 s"))


@dataclass(frozen=True)
class CameraConfig:
    """The camera: ``sim://``, ``replay://DIR`` or ``opencv://<index|path>``."""

    url: str = "sim://"
    timeout_s: float = 2.0
    black_level_adu: float = 16.0

    def __post_init__(self) -> None:
        check("camera", self, url=(self.url.split("://")[0] in ("sim", "replay", "opencv") and "://" in self.url,
                              "sim://, replay://DIR or opencv://<index|path>"),
              timeout_s=(0.01 <= self.timeout_s <= 60, "0.01 .. 60 s"),
              black_level_adu=(0 <= self.black_level_adu < 65535, "0 .. 65535"))


@dataclass(frozen=True)
class VirtualBenchConfig:
    """What the ``sim://`` camera images: simulated smear fields (see :mod:`sim.scan`).

    ``send_truth``: also render each field's stained ground truth (the simulator's Romanowsky
    rendering of the same smear, registered) and publish it per cell (payload ``truth``, header
    ``truth_type``) and per field (``truth_cells``); needs ``camera.url = "sim://"``.
    """

    field_size_px: tuple[int, int] = (256, 256)
    seed: int = 0
    wbc_per_mm2: float = 400.0
    fields: int = 16
    pls_misalignment_rate: float = 0.0
    send_truth: bool = False

    def __post_init__(self) -> None:
        w, h = self.field_size_px
        check("virtual_bench", self,
              field_size_px=(len(self.field_size_px) == 2 and 32 <= w <= 4096 and 32 <= h <= 4096,
                             "[width, height], 32 .. 4096 px"),
              wbc_per_mm2=(0 <= self.wbc_per_mm2 <= 3000, "0 .. 3000"), fields=(self.fields >= 1, ">= 1"),
              pls_misalignment_rate=(0 <= self.pls_misalignment_rate <= 1, "0 .. 1"))


@dataclass(frozen=True)
class AcquisitionConfig:
    """``mode``: ``host`` (one LED command per frame) or ``sequence`` (firmware-paced, camera triggered).

    Exposures and flat fields come from ``[calibration] path`` (:class:`CalibrationConfig`).
    """

    mode: Literal["host", "sequence"] = "host"
    sequence_delay_ms: int = 20
    retries: int = 1
    queue_fields: int = 1

    def __post_init__(self) -> None:
        check("acquisition", self,
              sequence_delay_ms=(5 <= self.sequence_delay_ms <= 2000, "5 .. 2000 ms (the firmware's)"),
              retries=(0 <= self.retries <= 10, "0 .. 10"), queue_fields=(1 <= self.queue_fields <= 8, "1 .. 8"))


@dataclass(frozen=True)
class CalibrationConfig:
    """Per-LED auto-exposure and flat fields (:mod:`edge.device.calibration`, ``stainless-edge calibrate``).

    ``path``: the calibration JSON the command writes and the daemon loads (empty = the camera's own
    table: the virtual bench has one, a real camera none, so a rig needs the file). The rest steers
    the search: the longest effective exposure (ms × gain) with at most ``saturation_max`` of the
    pixels saturated and the ``target_percentile`` below ``target_fraction`` of the range, between
    ``min_exposure_ms`` and ``max_exposure_ms`` × ``max_gain`` (gain 1 = not used), to ``tolerance``; ``high`` darkfield
    channels get ``high_factor`` × their LED's setting; ``flat_frames`` frames per brightfield channel
    (0 = no flat field) smoothed over ``flat_smooth_px``.
    """

    path: str = ""
    saturation_max: float = 0.001
    target_percentile: float = 99.5
    target_fraction: float = 0.7
    min_exposure_ms: float = 0.01
    max_exposure_ms: float = 2000.0
    max_gain: float = 1.0
    start_exposure_ms: float = 1.0
    tolerance: float = 0.03
    high_factor: float = 5.0
    flat_frames: int = 8
    flat_smooth_px: int = 63

    def __post_init__(self) -> None:
        check("calibration", self, saturation_max=(0 <= self.saturation_max < 1, "0 .. 1 (a fraction of pixels)"),
              target_percentile=(50 <= self.target_percentile <= 100, "50 .. 100"),
              target_fraction=(0 < self.target_fraction < 1, "0 .. 1 (of the range above black)"),
              min_exposure_ms=(0 < self.min_exposure_ms < self.max_exposure_ms,
                               "0 < min_exposure_ms < max_exposure_ms"),
              max_gain=(1 <= self.max_gain <= 64, "1 .. 64 (1 = no gain)"),
              start_exposure_ms=(self.start_exposure_ms > 0, "> 0 ms"),
              tolerance=(0.001 <= self.tolerance <= 1, "0.001 .. 1 (relative)"),
              high_factor=(1 <= self.high_factor <= 100, "1 .. 100"),
              flat_frames=(0 <= self.flat_frames <= 64, "0 .. 64"),
              flat_smooth_px=(1 <= self.flat_smooth_px <= 1025 and self.flat_smooth_px % 2 == 1, "an odd 1 .. 1025"))


@dataclass(frozen=True)
class QcConfig:
    """Stack QC thresholds; ``reject`` lists the flags that drop a field (its cells are not stained)."""

    saturation_max: float = 0.02
    focus_min: float = 0.0
    misalignment_max_um: float = 0.6
    empty_energy_max: float = 1.15
    reject: tuple[str, ...] = ("empty",)

    def __post_init__(self) -> None:
        check("qc", self, saturation_max=(0 <= self.saturation_max <= 1, "0 .. 1"),
              misalignment_max_um=(self.misalignment_max_um > 0, "> 0 µm"),
              reject=(set(self.reject) <= set(QC_FLAGS), f"a subset of {list(QC_FLAGS)}"))


@dataclass(frozen=True)
class DetectorConfig:
    """High-angle darkfield white-cell detector (see :mod:`edge.device.detect`); lengths in µm."""

    min_angle_deg: float = 45.0
    colours: tuple[str, ...] = ("b",)
    blob_um: float = 3.5
    background_um: float = 10.0
    threshold: float = 1.8
    min_distance_um: float = 8.0
    region_um: float = 1.0
    min_diameter_um: float = 3.0
    max_diameter_um: float = 16.0
    min_solidity: float = 0.6
    min_high_angle_share: float = 0.0
    box_margin_um: float = 3.0

    def __post_init__(self) -> None:
        check("detector", self, min_angle_deg=(0 <= self.min_angle_deg < 90, "0 .. 90°"),
              colours=(bool(self.colours), "at least one colour channel name, e.g. ['b']"),
              blob_um=(0 < self.blob_um < self.background_um, "0 < blob_um < background_um"),
              threshold=(self.threshold > 0, "> 0 (relative energy)"),
              min_distance_um=(self.min_distance_um > 0, "> 0 µm"),
              region_um=(self.region_um > 0, "> 0 µm"),
              min_diameter_um=(0 < self.min_diameter_um < self.max_diameter_um, "0 < min < max_diameter_um"),
              min_solidity=(0 <= self.min_solidity <= 1, "0 .. 1"),
              min_high_angle_share=(0 <= self.min_high_angle_share <= 1, "0 .. 1"),
              box_margin_um=(self.box_margin_um >= 0, ">= 0 µm"))


@dataclass(frozen=True)
class CropConfig:
    """``border``: how pixels outside the field are filled (every such cell is flagged ``border``).

    ``send_darkfield``: the recipe channel (e.g. ``"led8:low"``) of one darkfield image to publish
    per cell as payload ``darkfield``; empty = none.
    """

    border: Literal["reflect", "constant", "edge"] = "reflect"
    send_unstained: bool = True
    send_darkfield: str = ""

    def __post_init__(self) -> None:
        check("crops", self, border=(self.border in ("reflect", "constant", "edge"), "reflect, constant or edge"))


@dataclass(frozen=True)
class BatchingConfig:
    """Triton-style dynamic batching. ``profile_sizes`` empty = the bundle's (or powers of two).

    ``queue_size`` (cells waiting for the model) bounds what the queue costs in memory: every waiting
    cell's input (``I·C × P × P`` float32: 2.1 MB for 132 channels of 64²; uint16 camera counts, 1.1 MB,
    when the backend normalises them, ``[model] raw_input``) sits in a batch buffer, and at most
    ``ceil(queue_size / max_batch) + 1`` buffers of ``max_batch`` rows exist — 33 x 17 MB = 570 MB at the
    defaults (33 x 8.7 MB = 285 MB with camera counts), reached when processing outruns the model for a
    whole scan (their stacks are not kept: see :func:`edge.device.cell_jobs.release_pixels`).
    """

    max_batch: int = 8
    max_queue_delay_ms: float = 20.0
    queue_size: int = 256
    profile_sizes: tuple[int, ...] = ()
    #: Also compile the model for exactly ``max_batch`` where the backend runs a static shape faster
    #: (OpenVINO: :meth:`~edge.device.backends.openvino.OpenVinoBackend.fix_batch`); off saves the second
    #: compiled model's memory.
    fixed_batch: bool = True
    #: That full batch run as this many equal parts at once, each on a stream of its own (OpenVINO); 0: two
    #: where ``max_batch`` is even and the CPU has two cores or more, else one (:func:`full_batch_streams`).
    fixed_batch_streams: int = 0

    def __post_init__(self) -> None:
        check("batching", self, max_batch=(1 <= self.max_batch <= 1024, "1 .. 1024"),
              fixed_batch_streams=(self.fixed_batch_streams == 0 or (
                  1 <= self.fixed_batch_streams <= self.max_batch and self.max_batch % self.fixed_batch_streams == 0),
                  f"0 (auto) or a divisor of max_batch ({self.max_batch})"),
              max_queue_delay_ms=(0 <= self.max_queue_delay_ms <= 10_000, "0 .. 10000 ms"),
              queue_size=(self.queue_size >= self.max_batch, ">= max_batch"),
              profile_sizes=(all(s >= 1 for s in self.profile_sizes), "positive batch sizes"))


@dataclass(frozen=True)
class ModelConfig:
    """The model: a bundle file or install root (``bundle``), or a bare ONNX (``onnx``, development).

    ``backend``: ``auto`` (TensorRT > OpenVINO on Intel CPUs > ORT CUDA > ORT CPU, see
    :mod:`edge.device.backends.select`), ``onnxruntime``, ``onnxruntime-cuda``, ``tensorrt``, ``openvino``.
    ``precision``: the bundle member to run; ``bf16`` runs the fp32 member on OpenVINO with bf16 inference
    (where the CPU has native bf16 and the bundle's quality gate passed it; else fp32).
    ``fallback``: ``fp32`` (the bundle's fp32 ONNX on ORT CPU), ``previous`` (the install root's previous
    bundle) or ``none``. ``public_key``: trusted signer; empty = unchecked. ``engine_cache``: where
    TensorRT engines built from the bundle are kept
    (empty = ``ROOT/engines`` of an install root, else ``~/.cache/stainless/engines``).
    ``styles``: the bundle's stain styles to run (ORT CPU) and publish as ``stained:<name>``.
    ``raw_input``: the backend normalises the cells' camera counts inside the model instead of the processing
    thread (:func:`edge.device.inference.offer_raw`): ``on`` wherever it can (ONNX Runtime, OpenVINO),
    ``auto`` where that saves CPU (OpenVINO, ONNX Runtime on CUDA; not ONNX Runtime on the CPU, whose four
    unfused element-wise ops cost more than the processing thread saves), ``off``: float32 inputs.
    """

    bundle: str = ""
    onnx: str = ""
    backend: Literal["auto", "onnxruntime", "onnxruntime-cuda", "tensorrt", "openvino"] = "auto"
    precision: Literal["fp32", "fp16", "int8", "bf16"] = "fp32"
    fallback: Literal["fp32", "previous", "none"] = "fp32"
    public_key: str = ""
    engine_cache: str = ""
    output_min: float = -0.01
    output_max: float = 1.01
    threads: int = 0
    styles: tuple[str, ...] = ("*",)  # named stains of the bundle to publish: "*" = all, [] = none
    raw_input: Literal["auto", "on", "off"] = "auto"
    # Used with ``onnx`` only (a bundle's manifest supplies them).
    recipe: str = "full-nohe"
    patch_size: int = 64
    name: str = "dev-model"
    version: str = "0.0.0"

    def __post_init__(self) -> None:
        check("model", self, bundle=(bool(self.bundle) != bool(self.onnx), "set exactly one of bundle / onnx"),
              output_min=(self.output_min < self.output_max, "output_min < output_max"),
              threads=(0 <= self.threads <= 64, "0 .. 64"), patch_size=(8 <= self.patch_size <= 1024, "8 .. 1024"))


@dataclass(frozen=True)
class FidelityConfig:
    """Per-cell structural fidelity: a cell is ``suspect`` when SSIM < ``ssim_min`` or
    LBP chi² > ``chi2_max`` (calibrated with ``stainless-edge calibrate-fidelity``)."""

    ssim_min: float = 0.2054
    chi2_max: float = 0.1494
    enabled: bool = True

    def __post_init__(self) -> None:
        check("fidelity", self, ssim_min=(-1 <= self.ssim_min <= 1, "-1 .. 1"), chi2_max=(self.chi2_max > 0, "> 0"))


@dataclass(frozen=True)
class FieldStainConfig:
    """Whole-field staining (:mod:`edge.device.fieldstain`): the model tiled over every accepted field, published
    as payload ``stained`` of the ``field`` message. Off by default (it costs about one untiled pass of
    the model over the field). ``method`` is one of :data:`edge.device.tiling.METHODS`; ``halo_px`` 0 = measure
    the receptive field with the model at start; ``max_tile_px`` bounds a tile's side (memory);
    ``batch`` tiles go to the backend per call."""

    enabled: bool = False
    method: Literal["halo", "overlap-blend", "overlap-crop", "independent"] = "halo"
    max_tile_px: int = 512
    halo_px: int = 0
    batch: int = 1

    def __post_init__(self) -> None:
        check("field_stain", self, max_tile_px=(16 <= self.max_tile_px <= 8192, "16 .. 8192 px"),
              halo_px=(0 <= self.halo_px < self.max_tile_px // 2, "0 .. max_tile_px / 2"),
              batch=(1 <= self.batch <= 64, "1 .. 64"))


@dataclass(frozen=True)
class AutoScanConfig:
    """``autostart_fields`` > 0 scans fields 0..n-1 of slide ``slide_id`` at start (the virtual bench)."""

    autostart_fields: int = 0
    slide_id: str = "sim-slide"
    exit_when_done: bool = False

    def __post_init__(self) -> None:
        check("scan", self, autostart_fields=(self.autostart_fields >= 0, ">= 0"))


@dataclass(frozen=True)
class EdgeConfig:
    """The whole daemon; one attribute per TOML section."""

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    led: LedConfig = field(default_factory=LedConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    virtual_bench: VirtualBenchConfig = field(default_factory=VirtualBenchConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    qc: QcConfig = field(default_factory=QcConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(onnx="model.onnx"))
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    field_stain: FieldStainConfig = field(default_factory=FieldStainConfig)
    publisher: PublisherConfig = field(default_factory=PublisherConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    scan: AutoScanConfig = field(default_factory=AutoScanConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    flash: FlashConfig = field(default_factory=FlashConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **sections: Any) -> EdgeConfig:
        return dataclasses.replace(self, **sections)


def config_from_dict(data: Mapping[str, Any], base_dir: Path | None = None) -> EdgeConfig:
    """An :class:`EdgeConfig` from a mapping of sections; relative paths resolve against ``base_dir``."""
    sections = build_sections(data, typing.get_type_hints(EdgeConfig))
    if "model" not in sections:
        raise ConfigError("[model] is required: set bundle = 'PATH.stainless' (or onnx = 'PATH.onnx')")
    cfg = EdgeConfig(**sections)
    return _resolve_paths(cfg, base_dir) if base_dir is not None else cfg


def _resolve_paths(cfg: EdgeConfig, base: Path) -> EdgeConfig:
    def rel(p: str) -> str:
        return str(base / p) if p and not Path(p).is_absolute() else p

    m = cfg.model
    model = dataclasses.replace(m, bundle=rel(m.bundle), onnx=rel(m.onnx), public_key=rel(m.public_key))
    cal = dataclasses.replace(cfg.calibration, path=rel(cfg.calibration.path))
    cam = cfg.camera
    if cam.url.startswith("replay://") and not Path(cam.url[len("replay://"):]).is_absolute():
        cam = dataclasses.replace(cam, url="replay://" + rel(cam.url[len("replay://"):]))
    spool = cfg.spool
    if spool.path not in ("", ":memory:"):
        spool = dataclasses.replace(spool, path=rel(spool.path))
    sec = dataclasses.replace(cfg.security, server_secret_key=rel(cfg.security.server_secret_key),
                              allowed_clients=tuple(map(rel, cfg.security.allowed_clients)))
    flash = dataclasses.replace(cfg.flash, root=rel(cfg.flash.root),
                                trusted_keys=tuple(map(rel, cfg.flash.trusted_keys)))
    return dataclasses.replace(cfg, model=model, camera=cam, spool=spool,
                               security=sec, calibration=cal, flash=flash)


def load_config(path: Path | str) -> EdgeConfig:
    """Read a daemon config TOML; relative paths in it are relative to the repository/working dir."""
    return config_from_dict(read_toml(path), base_dir=Path.cwd())
