"""Where a run reports: a CSV of metrics (TensorBoard too when installed) and a terminal progress bar."""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

COLUMNS = ("kind", "epoch", "step", "loss", "l1", "fourier", "ssim", "perceptual", "distill", "gan_g", "gan_d",
           "val_loss", "val_ssim", "val_mae", "lr_g", "seconds")


class MetricsLog:
    """Appends rows to ``metrics.csv``; on resume, rows newer than the checkpoint's step are dropped first."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, columns: tuple[str, ...] = COLUMNS) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.t0 = time.monotonic()
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self._file: TextIO = self.path.open("w", newline="")
        self._csv = csv.DictWriter(self._file, columns, restval="", extrasaction="ignore")
        self._csv.writeheader()
        self._csv.writerows(rows)
        self._tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
        except ImportError:
            log.debug("tensorboard not installed; metrics go to %s only", self.path)

    def write(self, kind: str, epoch: int, step: int, values: dict[str, float]) -> None:
        row = {"kind": kind, "epoch": epoch, "step": step, "seconds": f"{time.monotonic() - self.t0:.2f}"}
        row.update({k: f"{v:.6g}" for k, v in values.items()})
        self._csv.writerow(row)
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


class Progress:
    """A one-line progress bar on a terminal; plain log lines every ``every`` steps otherwise."""

    def __init__(self, every: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bar = self.stream.isatty() if enabled is None else enabled
        self.every = every

    def update(self, epoch: int, done: int, total: int, step: int, loss: float) -> None:
        if self.bar:
            filled = int(30 * done / max(total, 1))
            self.stream.write(f"\repoch {epoch:3d} [{'=' * filled}{' ' * (30 - filled)}] {done}/{total} "
                              f"loss {loss:.4f}")
            self.stream.flush()
        elif step % self.every == 0:
            log.info("epoch %d step %d (%d/%d) loss %.5f", epoch, step, done, total, loss)

    def end_epoch(self) -> None:
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()
