"""Which inference backend the daemon opens: a pure choice over an ordered table.

``model.backend = "auto"`` walks :data:`AUTO_CHAIN` in order (TensorRT (NVIDIA) > OpenVINO (Intel
CPUs) > ONNX Runtime CUDA > ONNX Runtime CPU) and keeps every backend this machine can run; the
daemon opens the first one that works (a TensorRT engine must also pass its golden self-test) and
logs why it skipped the others.
Each entry is a name and a function of :class:`Machine` (what the device offers, gathered once by
:func:`probe_machine`) and whether the model is a bundle, returning ``None`` when the backend is
usable or the reason it is not. Adding a backend is one entry here, one field of :class:`Machine` and
one opener in :mod:`edge.device.model`. OpenVINO is chosen by ``auto`` on GenuineIntel CPUs, and on
any other CPU only to run bf16: when ``model.precision = "bf16"``, the bundle's quality gate passed
``openvino-bf16`` and OpenVINO's CPU plugin runs bf16 natively (AVX-512 BF16 or AMX; an AMD EPYC
Zen 4 does). Without bf16 ONNX Runtime is the portable reference there; ask for
``model.backend = "openvino"`` to use OpenVINO on any x86 CPU. With ``model.precision = "int8"`` auto
takes OpenVINO (on Intel CPUs) only when the bundle carries a gated OpenVINO int8 IR; otherwise the
int8 member is left to ONNX Runtime.
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
    cpu_bf16: bool = False  #: OpenVINO's CPU plugin runs bf16 natively (lists "BF16" in its capabilities)


@dataclass(frozen=True)
class Request:
    """What the model asks of a backend: a signed bundle or a bare ONNX; bf16 that its gate allows."""

    bundle: bool
    bf16: bool = False  #: model.precision = "bf16" and the bundle's quality gate passed openvino-bf16
    member: str = "fp32"  #: the bundle member model.precision selects (OpenVINO runs the fp32 one, or its own int8)
    openvino_int8: bool = False  #: model.precision = "int8" and the bundle has a gated OpenVINO int8 IR


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


Check = Callable[[Machine, Request], "str | None"]


def _tensorrt(m: Machine, r: Request) -> str | None:
    if m.tensorrt is None:
        return m.tensorrt_problem
    if not r.bundle:
        return "model.onnx is a bare ONNX; TensorRT engines are built from a signed bundle (model.bundle)"
    return None


def _openvino(m: Machine, r: Request) -> str | None:
    return m.openvino_problem if m.openvino is None else None


def _openvino_auto(m: Machine, r: Request) -> str | None:
    if r.member != "fp32" and not r.openvino_int8:
        return (f"model.precision = {r.member}: OpenVINO runs the bundle's fp32 graph (in fp32, or bf16 where the "
                f"CPU has it) or its own gated int8 IR, which this bundle lacks, so auto leaves the {r.member} member "
                "to the backends that run it")
    if m.cpu_vendor == "GenuineIntel" or (r.bf16 and m.cpu_bf16):
        return None
    bf16 = ("its CPU plugin has no native bf16 here" if r.bf16 else
            "model.precision is not bf16 or the bundle's quality gate did not pass openvino-bf16")
    return (f"the CPU is {m.cpu_vendor or 'of unknown vendor'}, not GenuineIntel, and {bf16}: auto picks OpenVINO "
            "on Intel CPUs, elsewhere only for a gated bf16 (set model.backend = 'openvino' to use it anyway)")


def _ort_cuda(m: Machine, r: Request) -> str | None:
    if "CUDAExecutionProvider" not in m.ort_providers:
        return f"ONNX Runtime has no CUDAExecutionProvider here (it offers {list(m.ort_providers)})"
    return None


def _ort_cpu(m: Machine, r: Request) -> str | None:
    return None


#: ``model.backend = "auto"``: tried in this order.
AUTO_CHAIN: tuple[tuple[str, Check], ...] = (
    ("tensorrt", _tensorrt),
    ("openvino", _openvino),
    ("onnxruntime-cuda", _ort_cuda),
    ("onnxruntime-cpu", _ort_cpu),
)
#: Checks that apply to ``auto`` only (an explicit request for the backend skips them).
AUTO_ONLY: dict[str, Check] = {"openvino": _openvino_auto}
#: Config value -> the table entries it allows (an explicit backend never falls back silently).
REQUESTS: dict[str, tuple[str, ...]] = {
    "auto": tuple(name for name, _ in AUTO_CHAIN),
    "tensorrt": ("tensorrt",),
    "openvino": ("openvino",),
    "onnxruntime-cuda": ("onnxruntime-cuda",),
    "onnxruntime": ("onnxruntime-cpu",),
}


def select_backends(requested: str, machine: Machine, bundle: bool, bf16: bool = False,
                    member: str = "fp32", openvino_int8: bool = False) -> Selection:
    """The ordered candidates for ``model.backend = requested`` on ``machine``; ``bf16``: the model asks for
    bf16 and its bundle's quality gate passed ``openvino-bf16``; ``member``: the bundle member
    ``model.precision`` selects; ``openvino_int8``: it asks for int8 and the bundle has a gated OpenVINO
    int8 IR (see :class:`Request`).

    Raises :class:`BackendUnavailableError` when nothing allowed can run (an explicit ``tensorrt``
    on a machine without it, say), with the reason.
    """
    if requested not in REQUESTS:
        raise BackendUnavailableError(f"model.backend = {requested!r}; valid: {', '.join(REQUESTS)}")
    allowed = REQUESTS[requested]
    checks = dict(AUTO_CHAIN)
    auto_only: dict[str, Check] = AUTO_ONLY if requested == "auto" else {}
    r = Request(bundle, bf16, member, openvino_int8)
    problems = [(name, checks[name](machine, r) or (auto_only[name](machine, r) if name in auto_only else None))
                for name in allowed]
    candidates = tuple(name for name, why in problems if why is None)
    skipped = tuple((name, why) for name, why in problems if why is not None)
    if not candidates:
        raise BackendUnavailableError(f"model.backend = {requested!r} cannot run here: "
                                      + "; ".join(f"{n}: {why}" for n, why in skipped)
                                      + ". Use 'auto' or install the runtime")
    return Selection(candidates, skipped)


def precision_note(asked: str, running: str, gated: bool, gate_how: str = "") -> str:
    """Why the backend ``running`` (e.g. ``"openvino-bf16"``) runs the precision it does when ``asked`` was
    ``model.precision`` — ``""`` when it runs what was asked (bf16 is the only precision that is not a
    bundle member; OpenVINO runs the fp32 member, or for int8 the bundle's own OpenVINO int8 IR).
    ``gated``: the bundle's quality gate passed openvino-bf16; ``gate_how``: the gate's figures for what
    OpenVINO runs."""
    if running == "openvino-int8":
        how = f" ({gate_how})" if gate_how else ""
        return f"int8: the bundle's OpenVINO int8 IR (NNCF), its quality gate passed it{how}"
    if asked not in ("fp32", "bf16") and running.startswith("openvino"):
        return (f"fp32, not {asked}: OpenVINO runs the bundle's fp32 graph (the {asked} member runs on ONNX Runtime; "
                "this bundle has no OpenVINO int8 that passed its gate)")
    if asked != "bf16":
        return ""
    if running.endswith("bf16"):
        return f"bf16: native on this CPU, the bundle's quality gate passed it{f' ({gate_how})' if gate_how else ''}"
    if not gated:
        return ("fp32, not bf16: the bundle has no passed quality gate for openvino-bf16 (re-export it with this "
                "stainless to gate bf16)")
    return "fp32, not bf16: bf16 runs on OpenVINO only, with native bf16 (AVX-512 BF16 or AMX)"


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
        from edge.device.backends.openvino import bf16_problem, cpu_capabilities, import_openvino

        version = str(import_openvino().__version__)
        base = replace(base, openvino=version, cpu_bf16=bf16_problem(cpu_capabilities()) is None)
    except ImportError as exc:
        base = replace(base, openvino_problem=f"OpenVINO is not usable here (import openvino failed: {exc})")
    try:
        import pycuda.driver  # noqa: F401  (engines need it to run)
        import tensorrt
    except ImportError as exc:
        return replace(base, tensorrt_problem=f"TensorRT is not usable here (import failed: {exc})")
    return replace(base, tensorrt=str(tensorrt.__version__), tensorrt_problem="")
