"""``stainless-train fit-style``: a CycleGAN between two unpaired image domains (seed 003 §2.2.1, §4.3).

Two generators, ``G_AB`` (the style model that is exported) and ``G_BA``, two PatchGAN critics
``D_A`` and ``D_B``. Per step, with ``a`` from domain A and ``b`` from domain B (seed eq. 2.8)::

    L_G = GAN(D_B(G_AB(a))) + GAN(D_A(G_BA(b)))
          + λ_cycle (|G_BA(G_AB(a)) − a|₁ + |G_AB(G_BA(b)) − b|₁)
          + λ_identity (|G_AB(b) − b|₁ + |G_BA(a) − a|₁)
    L_D = GAN_D(D_B(b), D_B(pool_B(G_AB(a)))) + GAN_D(D_A(a), D_A(pool_A(G_BA(b))))

LSGAN (the seed's choice) or the vanilla objective; the critics see fakes from an image pool of
the last ``pool_size`` generated images (Shrivastava et al.), so they do not chase the latest
generator; Adam with the seed's betas (0.5, 0.9); the learning rate stays constant, then decays
linearly to zero over the last ``decay_epochs`` epochs. After every epoch the validation images of A
are styled and measured (:mod:`trainer.style.measure`); ``RUN/style.pt`` holds the latest state.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.config import ConfigError
from trainer.config import to_toml
from trainer.errors import NonFiniteLossError
from trainer.losses import GAN_LOSSES
from trainer.models import count_flops
from trainer.runlog import MetricsLog
from trainer.style.config import StyleConfig
from trainer.style.data import Domains, centre_crops, load_domains, random_crops
from trainer.style.measure import before_after_strip, change_image, save_strip, style_report
from trainer.style.models import (
    build_style_discriminator,
    build_style_generator,
    save_style_checkpoint,
    style_generator_kwargs,
)

log = logging.getLogger(__name__)

COLUMNS = ("kind", "epoch", "step", "loss_g", "loss_d", "gan", "cycle", "identity", "lr", "val_cycle",
           "nucleus_iou", "flagged", "shift", "hue_out_deg", "seconds")


class ImagePool:
    """The CycleGAN history of generated images: until full, every image is stored and returned; then
    each incoming image is, with probability 1/2, swapped for a random stored one (which is returned)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)


def linear_decay(epochs: int, decay_epochs: int) -> Any:
    """LR factor per epoch: 1 for the first ``epochs − decay`` epochs, then linearly down toward 0
    (``decay_epochs = 0``: the second half decays, as CycleGAN's 100 + 100)."""
    decay = decay_epochs or max(1, epochs // 2)
    start = epochs - decay

    def factor(epoch: int) -> float:
        return 1.0 if epoch < start else 1.0 - (epoch - start + 1) / (decay + 1)

    return factor


@dataclass
class StyleResult:
    """How the run ended and the last validation figures."""

    run_dir: Path
    status: str
    epoch: int
    step: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "run_dir": str(self.run_dir)}


def fit_style(cfg: StyleConfig, stop: threading.Event | None = None) -> StyleResult:
    """Train as configured; ``stop`` ends the run after the current step (``style.pt`` saved)."""
    run = _StyleRun(cfg)
    try:
        return run.train(stop)
    finally:
        run.log.close()


class _StyleRun:
    def __init__(self, cfg: StyleConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.train.out)
        if (self.out / "style.pt").exists():
            raise ConfigError(f"train.out: {self.out} already holds a style run; choose another train.out")
        torch.manual_seed(cfg.train.seed)
        self.rng = np.random.default_rng(cfg.train.seed)
        d = cfg.data
        self.data: Domains = load_domains(Path(d.a), Path(d.b), d.a_channels, d.patch_size, d.val_fraction)
        m, ca = cfg.model, d.a_channels
        self.g_ab, self.g_ba = build_style_generator(m, ca, 3), build_style_generator(m, 3, ca)
        self.d_a, self.d_b = build_style_discriminator(m, ca), build_style_discriminator(m, 3)
        o = cfg.optim
        g_params = [*self.g_ab.parameters(), *self.g_ba.parameters()]
        self.opt_g = torch.optim.Adam(g_params, o.lr, o.betas)
        self.opt_d = torch.optim.Adam([*self.d_a.parameters(), *self.d_b.parameters()], o.lr, o.betas)
        factor = linear_decay(cfg.train.epochs, o.decay_epochs)
        self.scheds = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (self.opt_g, self.opt_d)]
        pool_rng = random.Random(cfg.train.seed)
        self.pool_a, self.pool_b = ImagePool(o.pool_size, pool_rng), ImagePool(o.pool_size, pool_rng)
        self.d_loss, self.g_loss = GAN_LOSSES[cfg.loss.gan_type]
        self.gflop = count_flops(self.g_ab, (ca, d.patch_size, d.patch_size))
        log.info("style generator %s: %.3f GFLOP per %d px cell, %d parameters", m.generator, self.gflop,
                 d.patch_size, sum(p.numel() for p in self.g_ab.parameters()))
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.toml").write_text(to_toml(cfg))
        self.log = MetricsLog(self.out, columns=COLUMNS)
        self.step = 0

    def _gan_g(self, critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        c = critic(fake)
        return self.g_loss(c, c)  # LSGAN and vanilla are not relativistic: the real critic value is unused

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        w = self.cfg.loss
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        for p in (*self.d_a.parameters(), *self.d_b.parameters()):
            p.requires_grad_(False)
        gan = self._gan_g(self.d_b, fake_b) + self._gan_g(self.d_a, fake_a)
        cycle = F.l1_loss(self.g_ba(fake_b), a) + F.l1_loss(self.g_ab(fake_a), b)
        identity = (F.l1_loss(self.g_ab(b), b) + F.l1_loss(self.g_ba(a), a)) if w.identity else torch.zeros(())
        loss_g = w.gan * gan + w.cycle * cycle + w.identity * identity
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        for p in (*self.d_a.parameters(), *self.d_b.parameters()):
            p.requires_grad_(True)
        fb, fa = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        loss_d = self.d_loss(self.d_b(b), self.d_b(fb)) + self.d_loss(self.d_a(a), self.d_a(fa))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        values = {k: float(v.detach()) for k, v in (("loss_g", loss_g), ("loss_d", loss_d), ("gan", gan),
                                                      ("cycle", cycle), ("identity", identity))}
        if not all(np.isfinite(v) for v in values.values()):
            raise NonFiniteLossError(f"non-finite style loss at step {self.step}: {values}; lower optim.lr")
        return values

    def validate(self) -> dict[str, Any]:
        """Style the centre crops of the validation A images; colour shift toward B and nucleus stability."""
        p = self.cfg.data.patch_size
        a = centre_crops(self.data.a_val or self.data.a_train[:16], p)
        b = centre_crops(self.data.b_val or self.data.b_train[:16], p)
        self.g_ab.eval()
        self.g_ba.eval()
        with torch.no_grad():
            out = self.g_ab(a)
            val_cycle = float(F.l1_loss(self.g_ba(out), a))
        self.g_ab.train()
        self.g_ba.train()
        an, on, bn = a.numpy(), out.numpy(), b.numpy()
        metrics = {"val_cycle": val_cycle, **style_report(an, on, bn)}
        if an.shape[1] == 3:
            save_strip(self.out / "strip.png", before_after_strip([an, on, bn, change_image(an, on)]))
        return metrics

    def _save(self, epoch: int, metrics: dict[str, Any]) -> None:
        cfg = self.cfg
        state = {k: v.detach().cpu() for k, v in self.g_ab.state_dict().items()}
        inverse = {k: v.detach().cpu() for k, v in self.g_ba.state_dict().items()}
        save_style_checkpoint(self.out / "style.pt", {
            "style": cfg.train.style, "config": cfg.to_dict(), "epoch": epoch, "step": self.step,
            "metrics": metrics, "generator": state, "inverse": inverse,
            "model": {"generator": cfg.model.generator, "kwargs": style_generator_kwargs(cfg.model),
                      "in_channels": cfg.data.a_channels, "out_channels": 3, "patch_size": cfg.data.patch_size,
                      "gflop_per_cell": self.gflop}})

    def train(self, stop: threading.Event | None) -> StyleResult:
        cfg, t = self.cfg, self.cfg.train
        metrics: dict[str, Any] = {}
        status, epoch = "finished", 0
        for epoch in range(t.epochs):
            t0 = time.monotonic()
            for _ in range(t.steps_per_epoch):
                a = random_crops(self.data.a_train, cfg.optim.batch_size, cfg.data.patch_size, self.rng)
                b = random_crops(self.data.b_train, cfg.optim.batch_size, cfg.data.patch_size, self.rng)
                values = self.train_step(a, b)
                self.step += 1
                if self.step % t.log_every_steps == 0:
                    self.log.write("train", epoch, self.step, {**values, "lr": float(self.scheds[0].get_last_lr()[0])})
                    log.info("epoch %d step %d: G %.4f (cycle %.4f) D %.4f", epoch, self.step, values["loss_g"],
                             values["cycle"], values["loss_d"])
                if stop is not None and stop.is_set():
                    status = "interrupted"
                    break
            for s in self.scheds:
                s.step()
            metrics = self.validate()
            self.log.write("val", epoch, self.step, {k: v for k, v in metrics.items() if isinstance(v, float)})
            log.info("epoch %d done in %.0f s: %s", epoch, time.monotonic() - t0,
                     {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
            self._save(epoch + 1, metrics)
            if status == "interrupted":
                break
        return StyleResult(self.out, status, epoch + 1, self.step, metrics)
