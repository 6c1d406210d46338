"""What machine a measurement ran on: CPU model and SIMD flags, GPU, inference runtime versions.

Profiles and benchmarks carry this description so figures from a Jetson, an RTX workstation and a
2-core cloud VM can be compared (or not) knowingly.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

from edge.device.priority import usable_cores

#: CPU flags that decide how fast a model runs (x86 SIMD and matrix units, Arm NEON/SVE).
INTERESTING_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni",
                     "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimdhp",
                     "asimddp", "sve", "sve2", "bf16", "i8mm")
_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "numpy", "opencv-python-headless",
             "opencv-python", "pyzmq", "nvtx")


def cpu_description(cpuinfo: str) -> dict[str, Any]:
    """Model name, vendor and the :data:`INTERESTING_FLAGS` present, from ``/proc/cpuinfo``'s text."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:  # the first processor's block describes them all
            fields[key] = value.strip()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"model": fields.get("model name") or fields.get("Model") or platform.processor() or "unknown",
            "vendor": fields.get("vendor_id") or fields.get("CPU implementer", ""),
            "flags": [f for f in INTERESTING_FLAGS if f in flags]}


def _gpus() -> list[str]:
    """NVIDIA GPUs as ``nvidia-smi -L`` lists them (empty without the driver); Jetson's Tegra by its model file."""
    out: list[str] = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            res = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5, check=False)
            out = [line.strip() for line in res.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            out = []
    try:
        with open("/proc/device-tree/model", encoding="utf-8", errors="replace") as f:
            model = f.read().strip("\x00\n ")
        if "jetson" in model.lower() or "tegra" in model.lower():
            out.append(model)
    except OSError:
        pass
    return out


def versions() -> dict[str, str]:
    """Installed versions of the inference runtimes and the libraries the pipeline leans on."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe_device() -> dict[str, Any]:
    """The device description every profile report starts with."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ""
    cores = usable_cores()
    import onnxruntime as ort

    return {"cpu": cpu_description(cpuinfo), "cores_available": cores, "machine": platform.machine(),
            "python": platform.python_version(), "gpus": _gpus(),
            "onnxruntime_providers": list(ort.get_available_providers()), "versions": versions()}
