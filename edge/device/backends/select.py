"""Which inference backend the daemon opens: a pure choice over an ordered table.

``model.backend = "auto"`` walks :data:`AUTO_CHAIN` in order (TensorRT (NVIDIA) > OpenVINO (Intel
CPUs) > ONNX Runtime CUDA > ONNX Runtime CPU) and keeps every backend this machine can run; the
daemon opens the first one that works (a TensorRT engine must also pass its golden self-test) and
logs why it skipped the others.
Each entry is a name and a function of :class:`Machine` (what the device offers, gathered once by
:func:`probe_machine`) and whether the model is a bundle, returning ``None`` when the backend is
usable or the reason it is not. Adding a backend is one entry here, one field of :class:`Machine` and
one opener in :mod:`edge.device.model`. OpenVINO is chosen by ``auto`` on GenuineIntel CPUs only
(its CPU plugin runs elsewhere too, but ONNX Runtime is the portable reference there); ask for
``model.backend = "openvino"`` to use it on any x86 CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from edge.device.errors import BackendUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Machine:
    """What this device offers for inference (plain data, so the choice is a pure function)."""

    tensorrt: str | None = None  #: TensorRT version, None when it (or pycuda) cannot be imported
    tensorrt_problem: str = "TensorRT is not installed"
    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    openvino: str | None = None  #: OpenVINO version, None when it cannot be imported
    openvino_problem: str = "OpenVINO is not installed (pip install stainless[openvino])"
    cpu_vendor: str = ""  #: /proc/cpuinfo's vendor_id, e.g. "GenuineIntel", "AuthenticAMD"


@dataclass(frozen=True)
class Selection:
    """The backends to try, in order, and why each of the others was left out."""

    candidates: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def reason(self, chosen: str, failed: tuple[tuple[str, str], ...] = ()) -> str:
        """Why ``chosen`` runs: what came before it in the table (skipped, or ``failed`` to open) and why."""
        order = [name for name, _ in AUTO_CHAIN]
        before = [f"{n}: {why}" for n, why in sorted((*self.skipped, *failed), key=lambda nw: order.index(nw[0]))
                  if order.index(n) < order.index(chosen)]
        return f"{chosen}" + (f" (skipped {'; '.join(before)})" if before else " (first choice)")


Check = Callable[[Machine, bool], "str | None"]


def _tensorrt(m: Machine, bundle: bool) -> str | None:
    if m.tensorrt is None:
        return m.tensorrt_problem
    if not bundle:
        return "model.onnx is a bare ONNX; TensorRT engines are built from a signed bundle (model.bundle)"
    return None


def _openvino(m: Machine, bundle: bool) -> str | None:
    return m.openvino_problem if m.openvino is None else None


def _intel_cpu(m: Machine, bundle: bool) -> str | None:
    if m.cpu_vendor != "GenuineIntel":
        return (f"the CPU is {m.cpu_vendor or 'of unknown vendor'}, not GenuineIntel: auto picks OpenVINO on Intel "
                "CPUs only (set model.backend = 'openvino' to use it anyway)")
    return None


def _ort_cuda(m: Machine, bundle: bool) -> str | None:
    if "CUDAExecutionProvider" not in m.ort_providers:
        return f"ONNX Runtime has no CUDAExecutionProvider here (it offers {list(m.ort_providers)})"
    return None


def _ort_cpu(m: Machine, bundle: bool) -> str | None:
    return None


#: ``model.backend = "auto"``: tried in this order.
AUTO_CHAIN: tuple[tuple[str, Check], ...] = (
    ("tensorrt", _tensorrt),
    ("openvino", _openvino),
    ("onnxruntime-cuda", _ort_cuda),
    ("onnxruntime-cpu", _ort_cpu),
)
#: Checks that apply to ``auto`` only (an explicit request for the backend skips them).
AUTO_ONLY: dict[str, Check] = {"openvino": _intel_cpu}
#: Config value -> the table entries it allows (an explicit backend never falls back silently).
REQUESTS: dict[str, tuple[str, ...]] = {
    "auto": tuple(name for name, _ in AUTO_CHAIN),
    "tensorrt": ("tensorrt",),
    "openvino": ("openvino",),
    "onnxruntime-cuda": ("onnxruntime-cuda",),
    "onnxruntime": ("onnxruntime-cpu",),
}


def select_backends(requested: str, machine: Machine, bundle: bool) -> Selection:
    """The ordered candidates for ``model.backend = requested`` on ``machine``.

    Raises :class:`BackendUnavailableError` when nothing allowed can run (an explicit ``tensorrt``
    on a machine without it, say), with the reason.
    """
    if requested not in REQUESTS:
        raise BackendUnavailableError(f"model.backend = {requested!r}; valid: {', '.join(REQUESTS)}")
    allowed = REQUESTS[requested]
    checks = dict(AUTO_CHAIN)
    auto_only: dict[str, Check] = AUTO_ONLY if requested == "auto" else {}
    problems = [(name, checks[name](machine, bundle) or (auto_only[name](machine, bundle) if name in auto_only
                                                          else None)) for name in allowed]
    candidates = tuple(name for name, why in problems if why is None)
    skipped = tuple((name, why) for name, why in problems if why is not None)
    if not candidates:
        raise BackendUnavailableError(f"model.backend = {requested!r} cannot run here: "
                                      + "; ".join(f"{n}: {why}" for n, why in skipped)
                                      + ". Use 'auto' or install the runtime")
    return Selection(candidates, skipped)


def cpu_vendor(cpuinfo: str) -> str:
    """The ``vendor_id`` of ``/proc/cpuinfo``'s text (``""`` when absent: not Linux, or not x86)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return ""


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def probe_machine() -> Machine:
    """Look at the installed runtimes (imports TensorRT/pycuda/OpenVINO only to read their presence)."""
    import onnxruntime as ort

    base = Machine(ort_providers=tuple(ort.get_available_providers()), cpu_vendor=cpu_vendor(_read_cpuinfo()))
    try:
        from edge.device.backends.openvino import import_openvino

        base = replace(base, openvino=str(import_openvino().__version__))
    except ImportError as exc:
        base = replace(base, openvino_problem=f"OpenVINO is not usable here (import openvino failed: {exc})")
    try:
        import pycuda.driver  # noqa: F401  (engines need it to run)
        import tensorrt
    except ImportError as exc:
        return replace(base, tensorrt_problem=f"TensorRT is not usable here (import failed: {exc})")
    return replace(base, tensorrt=str(tensorrt.__version__), tensorrt_problem="")
