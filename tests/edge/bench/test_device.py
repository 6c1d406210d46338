from __future__ import annotations

from edge.bench.device import cpu_description, describe_device

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma f16c
processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma f16c
"""
ARM = """processor\t: 0
Features\t: fp asimd evtstrm aes asimdhp asimddp
CPU implementer\t: 0x41
"""


def test_cpu_description_reads_model_vendor_and_simd_flags() -> None:
    assert cpu_description(X86) == {"model": "AMD EPYC 7B13", "vendor": "AuthenticAMD",
                                     "flags": ["sse4_2", "avx", "avx2", "fma", "f16c"]}
    arm = cpu_description(ARM)
    assert arm["vendor"] == "0x41" and arm["flags"] == ["asimd", "asimdhp", "asimddp"]


def test_describe_device_names_the_runtimes() -> None:
    d = describe_device()
    assert d["cores_available"] >= 1
    assert "onnxruntime" in d["versions"] and "CPUExecutionProvider" in d["onnxruntime_providers"]
