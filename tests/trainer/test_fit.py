"""Training: learning happens, exact resume, checkpoints, NaN handling, GAN / perceptual variants, errors."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import ConfigError
from tests.trainer.conftest import make_store, write_config
from trainer import fit as fit_module
from trainer.checkpoint import generator_from_checkpoint, load_checkpoint
from trainer.config import load_config
from trainer.data.store import Dataset
from trainer.errors import CheckpointError, NonFiniteLossError
from trainer.fit import fit
from trainer.vgg import vgg19_features


def _config(tmp_path: Path, store: Path, name: str, **sections: dict[str, object]):  # type: ignore[no-untyped-def]
    return load_config(write_config(tmp_path / f"{name}.toml", store, tmp_path / name, **sections))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["generator"]


def test_training_learns_the_stain_and_writes_the_run_folder(tmp_path: Path, store: Path) -> None:
    cfg = _config(tmp_path, store, "run", optim={"lr_g": 5e-3, "betas": [0.9, 0.99]}, train={"epochs": 8})
    result = fit(cfg)
    assert result.status == "finished" and result.epoch == 8
    ds = Dataset(store)
    val = np.stack([ds.target(i) for i in ds.split_indices("val")])
    mean_colour_mae = float(np.abs(val - val.mean(axis=(0, 2, 3), keepdims=True)).mean())
    assert result.best_val_loss < 0.5 * mean_colour_mae  # beats predicting the average colour by 2x
    run = tmp_path / "run"
    assert {"config.toml", "metrics.csv", "best.pt", "last.pt"} <= {p.name for p in run.iterdir()}
    assert load_config(run / "config.toml").loss.perceptual == 0.0  # resolved: no VGG file configured
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows if r["kind"] == "val"] == [str(e) for e in range(1, 9)]
    best = load_checkpoint(run / "best.pt")
    assert best["kind"] == "best" and "train_state" not in best and best["epoch"] == result.best_epoch
    assert best["recipe"]["id"] == "le8" and best["recipe"]["channel_names"] == ["bf", "led0", "led1", "led2"]
    assert best["model"]["in_channels"] == 12 and best["model"]["patch_size"] == 32
    g = generator_from_checkpoint(best)
    with torch.no_grad():
        assert g(torch.from_numpy(ds.inputs(0))[None]).shape == (1, 3, 32, 32)


def test_inputs_are_standardised_by_the_training_split_and_older_checkpoints_still_load(tmp_path: Path,
                                                                                       store: Path) -> None:
    fit(_config(tmp_path, store, "norm", train={"epochs": 1}))
    ckpt = load_checkpoint(tmp_path / "norm" / "best.pt")
    ds = Dataset(store)
    x = np.stack([ds.inputs(i) for i in ds.split_indices("train")]).astype(np.float64)
    np.testing.assert_allclose(ckpt["generator"]["norm.mean"].flatten(), x.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(1 / ckpt["generator"]["norm.scale"].flatten(), x.std(axis=(0, 2, 3), ddof=1),
                               rtol=1e-4)
    # a checkpoint written before InputNorm existed loads with the fixed centring it was trained with
    old = dict(ckpt, generator={k: v for k, v in ckpt["generator"].items() if not k.startswith("norm.")})
    g = generator_from_checkpoint(old)
    assert torch.all(g.norm.mean == 0.5) and torch.all(g.norm.scale == 1.0)
    fit(_config(tmp_path, store, "fixed", model={"normalize_inputs": False}, train={"epochs": 1}))
    assert torch.all(load_checkpoint(tmp_path / "fixed" / "best.pt")["generator"]["norm.mean"] == 0.5)


def test_resume_after_a_stop_mid_epoch_gives_identical_weights(tmp_path: Path, store: Path) -> None:
    reference = fit(_config(tmp_path, store, "ref"))
    cfg = _config(tmp_path, store, "cut")
    first = fit(cfg, stop_after_steps=10)  # 7 steps per epoch: stops inside epoch 2
    assert first.status == "stopped-after-steps" and first.step == 10
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["train_state"]["epoch_step"] == 3
    resumed = fit(cfg, resume=True)
    assert (resumed.step, resumed.epoch) == (reference.step, reference.epoch)
    for k, v in _weights(tmp_path / "ref" / "last.pt").items():
        assert torch.equal(v, _weights(tmp_path / "cut" / "last.pt")[k]), k
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "cut" / "metrics.csv").open())]
    assert steps == sorted(steps)  # rows after the checkpoint were not duplicated


def test_a_run_folder_is_not_overwritten_and_resume_refuses_changed_settings(tmp_path: Path, store: Path) -> None:
    fit(_config(tmp_path, store, "run", train={"epochs": 1}))
    with pytest.raises(ConfigError, match=r"--resume"):
        fit(_config(tmp_path, store, "run", train={"epochs": 1}))
    with pytest.raises(ConfigError, match=r"model\.features"):
        fit(_config(tmp_path, store, "run", model={"features": 16}), resume=True)
    longer = fit(_config(tmp_path, store, "run", train={"epochs": 2}), resume=True)
    assert longer.epoch == 2


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path: Path, store: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path, store, "nan", train={"epochs": 3, "checkpoint_every_steps": 2})
    real = fit_module.reconstruction_terms
    calls = [0]

    def poisoned(*args, **kwargs):  # type: ignore[no-untyped-def]
        terms = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == 5:  # the 5th training step
            terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(fit_module, "reconstruction_terms", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"at step 5 .*last\.pt"):
        fit(cfg)
    last = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert last["step"] == 4
    assert all(torch.isfinite(v).all() for v in last["generator"].values())


def test_gan_preset_warm_starts_and_trains_with_either_discriminator(tmp_path: Path, store: Path) -> None:
    fit(_config(tmp_path, store, "gen", train={"epochs": 1}))
    warm = str(tmp_path / "gen" / "best.pt")
    for disc in ("vgg", "patch"):
        cfg = _config(tmp_path, store, f"gan-{disc}", loss={"preset": "maePF-RpGAN-SN"},
                      model={"discriminator": disc, "d_features": 8},
                      train={"epochs": 1, "warm_start": warm, "log_every_steps": 1})
        result = fit(cfg)
        assert result.status == "finished"
        rows = [r for r in csv.DictReader((tmp_path / f"gan-{disc}" / "metrics.csv").open()) if r["kind"] == "train"]
        assert all(r["gan_g"] and r["gan_d"] for r in rows)
        assert load_checkpoint(tmp_path / f"gan-{disc}" / "last.pt")["train_state"]["discriminator"] is not None


def test_warm_start_from_an_incompatible_checkpoint_is_refused(tmp_path: Path, store: Path) -> None:
    fit(_config(tmp_path, store, "gen", train={"epochs": 1}))
    other = make_store(tmp_path / "bf.zarr", n=12, recipe="brightfield")
    with pytest.raises(CheckpointError, match="expects recipe 'le8'"):
        fit(_config(tmp_path, other, "x", train={"warm_start": str(tmp_path / "gen" / "best.pt")}))
    with pytest.raises(CheckpointError, match="does not fit"):
        fit(_config(tmp_path, store, "y", model={"features": 16},
                    train={"warm_start": str(tmp_path / "gen" / "best.pt")}))


def test_perceptual_term_uses_the_configured_vgg_file(tmp_path: Path, store: Path) -> None:
    state = {f"features.{k}": v for k, v in vgg19_features("block4_conv4").state_dict().items()}
    torch.save(state, tmp_path / "vgg19.pth")
    cfg = _config(tmp_path, store, "p", loss={"preset": "maePNET", "vgg_weights": str(tmp_path / "vgg19.pth")},
                  train={"epochs": 1, "max_steps_per_epoch": 2, "log_every_steps": 1})
    fit(cfg)
    rows = [r for r in csv.DictReader((tmp_path / "p" / "metrics.csv").open()) if r["kind"] == "train"]
    assert len(rows) == 2 and all(float(r["perceptual"]) > 0 for r in rows)
    missing = _config(tmp_path, store, "q", loss={"preset": "maePNET", "vgg_weights": str(tmp_path / "no.pth")})
    with pytest.raises(ConfigError, match="file not found"):
        fit(missing)


def test_dataset_without_validation_split_is_refused(tmp_path: Path) -> None:
    no_val = make_store(tmp_path / "noval.zarr", n=10, splits=(0.8, 0.8))
    with pytest.raises(ConfigError, match="no 'val' samples"):
        fit(_config(tmp_path, no_val, "r"))
    with pytest.raises(ConfigError, match="use_hr_target"):
        fit(_config(tmp_path, no_val, "s", data={"use_hr_target": True}))


# --- real processes: signals and torchrun -------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"{path} never appeared (rc {proc.returncode}): {err.decode()[-2000:]}")
        time.sleep(0.02)  # polling a file another process writes; bounded by the deadline


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)])
def test_killed_cli_run_resumes_to_the_uninterrupted_result(tmp_path: Path, store: Path, sig: int) -> None:
    # The CLI run is configured far longer than it will live, so the signal always lands mid-run; the
    # resumed run and the reference then stop at the same, later epoch (train.epochs may change on resume).
    extra = {"max_steps_per_epoch": 2, "checkpoint_every_steps": 3}
    config = write_config(tmp_path / "cut.toml", store, tmp_path / "cut", train={"epochs": 1000, **extra})
    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", "fit", str(config), "--threads", "1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(tmp_path / "cut" / "last.pt", proc)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    epochs = cut["epoch"] + 2
    resumed = fit(_config(tmp_path, store, "cut", train={"epochs": epochs, **extra}), resume=True)
    reference = fit(_config(tmp_path, store, "ref", train={"epochs": epochs, **extra}))
    assert 0 < cut["step"] < resumed.step == reference.step
    ref_w, cut_w = _weights(tmp_path / "ref" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(v, cut_w[k]) for k, v in ref_w.items())


def test_torchrun_with_two_gloo_processes_matches_one_process(tmp_path: Path, store: Path) -> None:
    extra = {"train": {"epochs": 2}, "optim": {"batch_size": 4}}
    single = fit(_config(tmp_path, store, "one", **extra))
    config = write_config(tmp_path / "two.toml", store, tmp_path / "two", **extra)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "trainer.cli", "fit", str(config), "--threads", "1", "--json"],
                          cwd=REPO, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert json.loads(done.stdout)["step"] == single.step
    one, two = _weights(tmp_path / "one" / "last.pt"), _weights(tmp_path / "two" / "last.pt")
    for k, v in one.items():  # the global batch is split over the ranks: same trajectory up to rounding
        np.testing.assert_allclose(two[k].numpy(), v.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_loader_worker_processes_give_the_same_weights(tmp_path: Path, store: Path) -> None:
    runs = {}
    for workers in (0, 2):
        fit(_config(tmp_path, store, f"w{workers}", data={"workers": workers, "cache": False},
                    train={"epochs": 1, "max_steps_per_epoch": 3}))
        runs[workers] = _weights(tmp_path / f"w{workers}" / "last.pt")
    assert all(torch.equal(v, runs[2][k]) for k, v in runs[0].items())


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    from trainer.fit import native_bf16_cpu

    (tmp_path / "amx").write_text("flags\t: fpu avx2 amx_bf16 amx_tile\n")
    (tmp_path / "avx2").write_text("flags\t: fpu avx2 fma\n")
    assert native_bf16_cpu(tmp_path / "amx") and not native_bf16_cpu(tmp_path / "avx2")
    assert not native_bf16_cpu(tmp_path / "missing")


def test_bf16_training_resumes_exactly_and_differs_from_fp32(tmp_path: Path, store: Path) -> None:
    bf16 = {"precision": "bf16"}
    reference = fit(_config(tmp_path, store, "ref", train=bf16))
    cfg = _config(tmp_path, store, "cut", train=bf16)
    assert fit(cfg, stop_after_steps=10).step == 10
    resumed = fit(cfg, resume=True)
    assert (resumed.step, resumed.epoch) == (reference.step, reference.epoch)
    for k, v in _weights(tmp_path / "ref" / "last.pt").items():
        assert torch.equal(v, _weights(tmp_path / "cut" / "last.pt")[k]), k
    assert all(v.dtype == torch.float32 for v in _weights(tmp_path / "ref" / "last.pt").values())  # master weights
    fit(_config(tmp_path, store, "fp32", train={"epochs": reference.epoch}))
    fp32, ours = _weights(tmp_path / "fp32" / "last.pt"), _weights(tmp_path / "ref" / "last.pt")
    assert any(not torch.equal(fp32[k], ours[k]) for k in ours)  # autocast really ran in bf16
    with pytest.raises(ConfigError, match=r"train\.precision"):
        fit(_config(tmp_path, store, "cut", train={"precision": "fp32"}), resume=True)
