"""``stainless-train fit``: train a generator (optionally with a discriminator) on a dataset store.

One process or many under ``torchrun`` (DDP; gloo on CPU, NCCL on CUDA). The global batch
``optim.batch_size`` is split evenly over the processes, so N processes follow (up to float
rounding) the trajectory of one. Writes into ``train.out``: ``config.toml`` (resolved), ``metrics.csv``,
``best.pt`` (lowest validation loss) and ``last.pt`` (everything needed to resume exactly, see
:mod:`trainer.checkpoint`). Exact resume assumes the same device type and thread count.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core.config import ConfigError
from trainer import checkpoint as ck
from trainer.batches import PairedCells, channel_stats, epoch_batches, loader, split_or_fail
from trainer.config import FitConfig, resolved, to_toml
from trainer.data.store import Dataset
from trainer.distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shutdown
from trainer.errors import CheckpointError, NonFiniteLossError
from trainer.losses import GAN_LOSSES, reconstruction_terms, ssim
from trainer.models import build_discriminator, build_generator, count_flops, generator_kwargs
from trainer.models.common import InputNorm
from trainer.runlog import MetricsLog, Progress
from trainer.teacher import Teacher
from trainer.vgg import VGGFeatures

log = logging.getLogger(__name__)


def native_bf16_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU flags list AVX-512 BF16 or AMX BF16 (False when they cannot be read)."""
    try:
        flags = set(cpuinfo.read_text(errors="replace").split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})

#: Keys that may change between a run and its resumption.
RESUMABLE_CHANGES = {("train", "epochs"), ("train", "patience"), ("train", "log_every_steps"),
                     ("train", "checkpoint_every_steps"), ("data", "workers"), ("data", "cache")}


@dataclass
class FitResult:
    """How a run ended: ``finished`` | ``early-stopped`` | ``interrupted`` | ``stopped-after-steps``."""

    status: str
    run_dir: Path
    epoch: int
    step: int
    best_val_loss: float
    best_epoch: int
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "run_dir": str(self.run_dir)}


def fit(cfg: FitConfig, resume: bool = False, stop_after_steps: int = 0,
        stop: threading.Event | None = None, progress: Progress | None = None) -> FitResult:
    """Train as configured; ``stop`` (set by a signal handler) ends at the next step with ``last.pt`` saved."""
    info = init_distributed(cfg.train.device)
    try:
        result = _Run(resolved(cfg), info, resume).train(stop_after_steps, stop, progress)
        # Leave the group together: a rank destroying it while another still talks to it can take that
        # one down at exit (gloo: "terminate called without an active exception", seen under load). Only
        # on success: after a failure the other ranks may never arrive.
        barrier(info)
        return result
    finally:
        shutdown(info)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()  # plain ints: weights_only-loadable
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np_state,
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np_state = dict(state["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.asarray(np_state["state"]["key"], np.uint32)}
    np.random.set_state(np_state)
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Run:
    """The state of one training run (models, optimisers, counters); built fresh or from ``last.pt``."""

    def __init__(self, cfg: FitConfig, info: DistInfo, resume: bool) -> None:
        self.cfg, self.info = cfg, info
        self.w = cfg.loss.weights()
        self.out = Path(cfg.train.out)
        _seed_everything(cfg.train.seed)
        self._open_data()
        self._build_models()
        self.epoch = self.epoch_step = self.step = 0
        self.best, self.best_epoch, self.bad_epochs = math.inf, -1, 0
        last = self.out / "last.pt"
        if resume:
            self._resume(last)
        elif last.exists():
            raise ConfigError(f"train.out: {self.out} already holds a run; pass --resume to continue it "
                              "or choose another train.out")
        elif cfg.train.warm_start:
            ck.load_generator_state(self.g_raw, self._matching(Path(cfg.train.warm_start)))
            log.info("generator warm-started from %s", cfg.train.warm_start)
        self._wrap_ddp()
        if info.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.toml").write_text(to_toml(cfg))

    def _open_data(self) -> None:
        d = self.cfg.data
        self.teacher: Teacher | None = None
        if self.cfg.loss.teacher:  # read the teacher's channels; the student's are sliced from them
            teacher_recipe = ck.load_checkpoint(Path(self.cfg.loss.teacher))["recipe"]["id"]
            self.ds = Dataset(Path(d.path), recipe=teacher_recipe)
            self.teacher = Teacher(Path(self.cfg.loss.teacher), d.recipe, self.ds).to(self.info.device)
            self.recipe = self.teacher.student_recipe
        else:
            self.ds = Dataset(Path(d.path), recipe=d.recipe or None)
            self.recipe = self.ds.recipe
        if d.use_hr_target and not self.ds.has_hr:
            raise ConfigError(f"data.use_hr_target: {d.path} has no 100x targets; set it to false or rebuild")
        self.train_set = PairedCells(self.ds, split_or_fail(self.ds, "train"), d.use_hr_target, d.cache)
        self.val_set = PairedCells(self.ds, split_or_fail(self.ds, "val"), d.use_hr_target, d.cache)
        self.in_channels = 3 * len(self.recipe)
        self.patch = int(self.ds.attrs["patch_size"])
        if self.cfg.optim.batch_size % self.info.world:
            raise ConfigError(f"optim.batch_size = {self.cfg.optim.batch_size} must be divisible by the number of "
                              f"processes ({self.info.world})")

    def _build_models(self) -> None:
        cfg, dev = self.cfg, self.info.device
        self.g_raw = build_generator(cfg.model, self.in_channels).to(dev)
        if cfg.model.normalize_inputs:  # a resumed or warm-started run then loads the checkpoint's own
            mean, std = channel_stats(self.train_set)
            if self.teacher is not None:
                mean, std = (self.teacher.student_input(v.reshape(1, -1, 1, 1)).flatten() for v in (mean, std))
            norm = self.g_raw.norm
            assert isinstance(norm, InputNorm), "every generator starts with an InputNorm"
            norm.set_stats(mean.to(dev), std.to(dev))
        self.gflop = count_flops(self.g_raw, (self.in_channels, self.patch, self.patch))
        log.info("generator %s: %.2f GFLOP per %dx%d cell, %d parameters", cfg.model.generator, self.gflop,
                 self.patch, self.patch, sum(p.numel() for p in self.g_raw.parameters()))
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.g_raw.parameters(), o.lr_g, o.betas, weight_decay=o.weight_decay)
        self.sched_g = self._scheduler(self.opt_g)
        self.d_raw: nn.Module | None = None
        if self.w.gan > 0:
            self.d_raw = build_discriminator(cfg.model, self.patch).to(dev)
            self.opt_d = torch.optim.Adam(self.d_raw.parameters(), o.lr_d, o.betas, weight_decay=o.weight_decay)
            self.sched_d = self._scheduler(self.opt_d)
        self.vgg = (VGGFeatures(Path(cfg.loss.vgg_weights), cfg.loss.vgg_layer).to(dev)
                    if self.w.perceptual > 0 else None)
        # bf16 autocast needs no grad scaler (bf16 has fp32's exponent range); fp16 AMP (CUDA) does.
        bf16 = cfg.train.precision == "bf16"
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.amp = bf16 or (cfg.train.amp and dev.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and not bf16)
        if bf16 and dev.type == "cpu" and not native_bf16_cpu():
            log.warning("train.precision = bf16 on a CPU without AVX-512 BF16 / AMX: PyTorch emulates bf16 and "
                        "training runs many times slower than fp32 (bench/train_throughput.py: ~60x on a 2-core "
                        "AVX2 EPYC); use fp32 here")

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        if self.cfg.optim.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.cfg.train.epochs)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    def _wrap_ddp(self) -> None:
        ids = [self.info.device.index] if self.info.device.type == "cuda" else None
        self.g: nn.Module = self.g_raw
        self.d: nn.Module | None = self.d_raw
        if self.info.world > 1:
            self.g = DistributedDataParallel(self.g_raw, device_ids=ids)
            if self.d_raw is not None:
                self.d = DistributedDataParallel(self.d_raw, device_ids=ids)

    def _matching(self, path: Path) -> dict[str, Any]:
        ckpt = ck.load_checkpoint(path)
        ck.check_recipe(ckpt, self.recipe.channel_names, f"{path}")
        return ckpt

    # --- checkpoints -------------------------------------------------------------------------

    def _payload(self, kind: str, metrics: dict[str, float]) -> dict[str, Any]:
        r = self.recipe
        payload: dict[str, Any] = {
            "kind": kind, "config": self.cfg.to_dict(), "epoch": self.epoch, "step": self.step, "metrics": metrics,
            "model": {"generator": self.cfg.model.generator, "kwargs": generator_kwargs(self.cfg.model),
                      "in_channels": self.in_channels, "patch_size": self.patch, "gflop_per_cell": self.gflop},
            "generator": {k: v.detach().cpu() for k, v in self.g_raw.state_dict().items()},
            "recipe": {"id": r.id, "hash": r.hash, "channel_names": list(r.channel_names)},
        }
        if kind == "last":
            payload["train_state"] = {
                "discriminator": self.d_raw.state_dict() if self.d_raw is not None else None,
                "optim_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict(),
                "optim_d": self.opt_d.state_dict() if self.d_raw is not None else None,
                "sched_d": self.sched_d.state_dict() if self.d_raw is not None else None,
                "scaler": self.scaler.state_dict(), "rng": _rng_state(), "epoch_step": self.epoch_step,
                "early_stop": {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs},
            }
        return payload

    def _save(self, kind: str, metrics: dict[str, float]) -> None:
        if self.info.main:
            ck.save_checkpoint(self.out / f"{kind}.pt", self._payload(kind, metrics))

    def _resume(self, last: Path) -> None:
        ckpt = self._matching(last)
        saved, now = ckpt["config"], self.cfg.to_dict()
        saved.setdefault("train", {}).setdefault("precision", "fp32")  # runs from before train.precision
        changed = [f"{s}.{k}" for s in now for k in now[s]
                   if saved.get(s, {}).get(k) != now[s][k] and (s, k) not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(f"--resume: {changed} differ from the run in {self.out}; "
                              "restore them or start a new train.out")
        st = ckpt["train_state"]
        ck.load_generator_state(self.g_raw, ckpt)
        self.opt_g.load_state_dict(st["optim_g"])
        self.sched_g.load_state_dict(st["sched_g"])
        if self.d_raw is not None:
            self.d_raw.load_state_dict(st["discriminator"])
            self.opt_d.load_state_dict(st["optim_d"])
            self.sched_d.load_state_dict(st["sched_d"])
        self.scaler.load_state_dict(st["scaler"])
        _set_rng_state(st["rng"])
        self.epoch, self.step, self.epoch_step = ckpt["epoch"], ckpt["step"], st["epoch_step"]
        es = st["early_stop"]
        self.best, self.best_epoch, self.bad_epochs = es["best"], es["best_epoch"], es["bad_epochs"]
        log.info("resumed %s at epoch %d, step %d (+%d in epoch)", last, self.epoch, self.step, self.epoch_step)

    # --- one step ----------------------------------------------------------------------------

    def _finite(self, value: torch.Tensor, what: str) -> float:
        v = all_reduce_sum(value.detach().float().reshape(1).clone(), self.info) / self.info.world
        if not torch.isfinite(v).all():
            last = self.out / "last.pt"
            raise NonFiniteLossError(
                f"{what} loss became {v.item()} at step {self.step + 1} (epoch {self.epoch}); weights were not "
                f"updated. Last good checkpoint: {last if last.exists() else 'none yet'}. Lower optim.lr_g / "
                "optim.lr_d, set optim.grad_clip, or check the dataset for broken samples")
        return float(v.item())

    def _backward(self, loss: torch.Tensor, opt: torch.optim.Optimizer, params: Any) -> None:
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.scaler.step(opt)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        x, y = x.to(self.info.device, non_blocking=True), y.to(self.info.device, non_blocking=True)
        d_loss_fn, g_loss_fn = GAN_LOSSES[self.cfg.loss.gan_type]
        with torch.autocast(self.info.device.type, dtype=self.amp_dtype, enabled=self.amp):
            pred = self.g(self._student_input(x))
            terms = reconstruction_terms(pred.float(), y, self.w, self.vgg)
            loss = terms["total"]
            if self.teacher is not None:
                terms["distill"] = F.l1_loss(pred.float(), self.teacher(x).float())
                loss = loss + self.cfg.loss.distill * terms["distill"]
            if self.d_raw is not None:
                self.d_raw.requires_grad_(False)
                c_real, c_fake = self.d_raw(torch.cat([y, pred])).float().chunk(2)
                terms["gan_g"] = g_loss_fn(c_real.detach(), c_fake)
                loss = loss + self.w.gan * terms["gan_g"]
                self.d_raw.requires_grad_(True)
        out = {k: float(v.detach()) for k, v in terms.items() if k != "total"}
        out["loss"] = self._finite(loss, "generator")
        self._backward(loss, self.opt_g, self.g_raw.parameters())
        if self.d is not None and self.d_raw is not None:
            with torch.autocast(self.info.device.type, dtype=self.amp_dtype, enabled=self.amp):
                c_real, c_fake = self.d(torch.cat([y, pred.detach()])).float().chunk(2)
                d_loss = d_loss_fn(c_real, c_fake)
            out["gan_d"] = self._finite(d_loss, "discriminator")
            self._backward(d_loss, self.opt_d, self.d_raw.parameters())
        self.scaler.update()
        return out

    def _student_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.teacher is None else self.teacher.student_input(x)

    # --- validation and the loop -------------------------------------------------------------

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        self.g_raw.eval()
        sums = torch.zeros(4, dtype=torch.float64)
        positions = list(range(len(self.val_set)))[self.info.rank::self.info.world]
        bs = self.cfg.optim.batch_size
        for x, y in loader(self.val_set, [positions[i:i + bs] for i in range(0, len(positions), bs)], 0):
            x, y = x.to(self.info.device), y.to(self.info.device)
            pred = self.g_raw(self._student_input(x)).float()
            terms = reconstruction_terms(pred, y, self.w, self.vgg)
            n = len(x)
            sums += torch.tensor([terms["total"].item() * n, terms["l1"].item() * n,
                                  ssim(pred, y, reduce=False).sum().item(), n], dtype=torch.float64)
        self.g_raw.train()
        all_reduce_sum(sums, self.info)
        count = max(float(sums[3].item()), 1.0)
        return {"val_loss": sums[0].item() / count, "val_mae": sums[1].item() / count,
                "val_ssim": sums[2].item() / count}

    def _should_stop(self, stop: threading.Event | None) -> bool:
        flag = torch.tensor([1.0 if stop is not None and stop.is_set() else 0.0])
        return bool(all_reduce_sum(flag, self.info).item() > 0)

    def train(self, stop_after_steps: int, stop: threading.Event | None, progress: Progress | None) -> FitResult:
        tc = self.cfg.train
        metrics_log = MetricsLog(self.out, self.step) if self.info.main else None
        progress = progress or Progress(tc.log_every_steps, enabled=False)
        metrics: dict[str, float] = {}
        try:
            while self.epoch < tc.epochs:
                status = self._train_epoch(stop_after_steps, stop, progress, metrics_log)
                if status:
                    self._save("last", metrics)
                    return self._result(status, metrics)
                metrics = self._end_epoch(metrics_log)
                if tc.patience and self.bad_epochs >= tc.patience:
                    return self._result("early-stopped", metrics)
            return self._result("finished", metrics)
        finally:
            if metrics_log is not None:
                metrics_log.close()

    def _train_epoch(self, stop_after_steps: int, stop: threading.Event | None, progress: Progress,
                     metrics_log: MetricsLog | None) -> str:
        tc, info = self.cfg.train, self.info
        batches = epoch_batches(len(self.train_set), self.cfg.optim.batch_size, tc.seed, self.epoch, info.rank,
                                info.world, tc.max_steps_per_epoch)
        for x, y in loader(self.train_set, batches[self.epoch_step:], self.cfg.data.workers):
            values = self._step(x, y)
            self.step += 1
            self.epoch_step += 1
            if info.main:
                progress.update(self.epoch, self.epoch_step, len(batches), self.step, values["loss"])
                if metrics_log is not None and self.step % tc.log_every_steps == 0:
                    metrics_log.write("train", self.epoch, self.step,
                                      {**values, "lr_g": self.opt_g.param_groups[0]["lr"]})
            if tc.checkpoint_every_steps and self.step % tc.checkpoint_every_steps == 0:
                self._save("last", {"train_loss": values["loss"]})
            if stop_after_steps and self.step >= stop_after_steps:
                return "stopped-after-steps"
            if self._should_stop(stop):
                return "interrupted"
        progress.end_epoch()
        return ""

    def _end_epoch(self, metrics_log: MetricsLog | None) -> dict[str, float]:
        metrics = self._validate()
        self.sched_g.step()
        if self.d_raw is not None:
            self.sched_d.step()
        self.epoch, self.epoch_step = self.epoch + 1, 0
        if metrics["val_loss"] < self.best:
            self.best, self.best_epoch, self.bad_epochs = metrics["val_loss"], self.epoch, 0
            self._save("best", metrics)
        else:
            self.bad_epochs += 1
        self._save("last", metrics)
        if metrics_log is not None:
            metrics_log.write("val", self.epoch, self.step, metrics)
        log.info("epoch %d: val_loss %.5f val_ssim %.4f val_mae %.4f%s", self.epoch, metrics["val_loss"],
                 metrics["val_ssim"], metrics["val_mae"], " (best)" if self.bad_epochs == 0 else "")
        return metrics

    def _result(self, status: str, metrics: dict[str, float]) -> FitResult:
        return FitResult(status, self.out, self.epoch, self.step, self.best, self.best_epoch, metrics)


__all__ = ["CheckpointError", "FitResult", "fit"]
