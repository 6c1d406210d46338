"""Per-thread CPU time and run-queue wait of this process, grouped by thread (Linux ``/proc``; the bench only).

``/proc/self/task/<tid>/schedstat`` holds, per thread, the ns it ran on a CPU and the ns it was runnable
but waiting for one: what each of the daemon's stages and the backend's own thread pool cost per cell,
and how long they waited for a core held by another (the contention between the model and the stages
around it on two cores). Python threads are named by their ``threading`` name (``edge-process``, ...),
the others by their kernel name (``comm``: ZeroMQ's ``ZMQbg/...``; the backend's pool threads inherit
the process's name). Where ``/proc`` has no ``schedstat`` (not Linux) :func:`thread_times` is empty.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

_TASKS = Path("/proc/self/task")


def thread_times() -> dict[int, tuple[str, int, int]]:
    """Every thread of this process: ``tid → (name, ns on a CPU, ns waiting for one)`` since it started."""
    python = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[int, tuple[str, int, int]] = {}
    if not _TASKS.is_dir():
        return out
    for task in _TASKS.iterdir():
        try:
            run_ns, wait_ns = (int(v) for v in (task / "schedstat").read_text().split()[:2])
            comm = (task / "comm").read_text().strip()
        except (OSError, ValueError):  # the thread ended meanwhile, or no schedstat on this kernel
            continue
        tid = int(task.name)
        out[tid] = (python.get(tid, comm), run_ns, wait_ns)
    return out


def group_ms(before: dict[int, tuple[str, int, int]], after: dict[int, tuple[str, int, int]],
             cells: int) -> dict[str, dict[str, float]]:
    """CPU and run-queue wait (ms per cell) between two :func:`thread_times` snapshots, summed per thread name
    (threads started in between count from zero), largest CPU first (pure)."""
    if cells <= 0:
        raise ValueError(f"group_ms: expected the cells of the interval (> 0), found {cells}")
    run: dict[str, float] = defaultdict(float)
    wait: dict[str, float] = defaultdict(float)
    for tid, (name, run_ns, wait_ns) in after.items():
        _, run0, wait0 = before.get(tid, (name, 0, 0))
        run[name] += (run_ns - run0) / 1e6 / cells
        wait[name] += (wait_ns - wait0) / 1e6 / cells
    names = sorted(run, key=lambda n: -run[n])
    return {n: {"cpu_ms": round(run[n], 3), "wait_ms": round(wait[n], 3)} for n in names}


def combine(parts: list[tuple[dict[str, dict[str, float]], int]]) -> dict[str, dict[str, float]]:
    """:func:`group_ms` figures of several intervals ``(figures, cells)`` as one, weighted by their cells (pure)."""
    total = sum(n for _, n in parts)
    if total <= 0:
        return {}
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"cpu_ms": 0.0, "wait_ms": 0.0})
    for figures, n in parts:
        for name, f in figures.items():
            for k in ("cpu_ms", "wait_ms"):
                out[name][k] += f[k] * n / total
    names = sorted(out, key=lambda n: -out[n]["cpu_ms"])
    return {n: {k: round(v, 3) for k, v in out[n].items()} for n in names}
