"""Benchmark of generator training on this CPU: samples/s for the default small and the seed's config.

For each configuration, in one process, it times: a forward pass in eval mode (the **baseline**,
measured in the same run), and a full training step (forward, the maePFNET loss — L1 + Fourier —,
backward, Adam). ``ratio`` = training samples/s ÷ forward samples/s: how many forward passes one
training sample costs, comparable across machines. GFLOP per cell come from the hook counter.
Unless ``--no-bf16``, the training step is also timed under torch autocast bf16 (the trainer's
``train.precision = "bf16"``): ``bf16_vs_fp32`` = bf16 ÷ fp32 training samples/s (> 1 only on CPUs
with native bf16, AMX or AVX-512 BF16; elsewhere PyTorch emulates bf16 and it is slower).
With ``--ddp`` it also launches ``torchrun --nproc_per_node 2`` (gloo) and reports the scaling of
training throughput from 1 to 2 processes at the same global batch. Inputs are synthetic tensors
(data loading is not measured).

    python bench/train_throughput.py [--recipe-images 44] [--batch 4] [--steps 3] [--ddp] [--no-bf16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.choices import Weights
from trainer.config import NetworkConfig
from trainer.losses import reconstruction_terms
from trainer.models import build_generator, count_flops

CONFIGS: dict[str, NetworkConfig] = {
    "small (default)": NetworkConfig(),
    "seed (n_b=4, 64 f, growth 32)": NetworkConfig(n_blocks=4, features=64, growth=32),
}
PATCH = 64


def _best_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                bf16: bool = False) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        pred = model(x)
    loss = reconstruction_terms(pred.float(), y, Weights(fourier=0.0125))["total"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def measure(name: str, cfg: NetworkConfig, channels: int, batch: int, steps: int, bf16: bool = True) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_generator(cfg, channels)
    x, y = torch.rand(batch, channels, PATCH, PATCH), torch.rand(batch, 3, PATCH, PATCH)
    model.eval()
    with torch.no_grad():
        fwd = _best_s(lambda: model(x), steps)
    model.train()
    opt = torch.optim.Adam(model.parameters(), 2e-4, betas=(0.5, 0.9))
    train = _best_s(lambda: _train_step(model, opt, x, y), steps)
    gflop = count_flops(model, (channels, PATCH, PATCH))
    row = {"config": name, "gflop_per_cell": gflop, "batch": batch, "forward_samples_s": batch / fwd,
           "train_samples_s": batch / train, "ratio_train_vs_forward": fwd / train,
           "train_ms_per_cell": 1e3 * train / batch, "train_gflop_s": 3 * gflop * batch / train}
    if bf16:
        train_bf16 = _best_s(lambda: _train_step(model, opt, x, y, bf16=True), steps)
        row |= {"train_bf16_samples_s": batch / train_bf16, "train_bf16_ms_per_cell": 1e3 * train_bf16 / batch,
                "bf16_vs_fp32": train / train_bf16}
    return row


def ddp_worker(channels: int, batch: int, steps: int, config: str) -> None:
    """Run under torchrun: each rank trains on batch / world samples; rank 0 prints global samples/s."""
    dist.init_process_group("gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(build_generator(CONFIGS[config], channels))
    opt = torch.optim.Adam(model.parameters(), 2e-4, betas=(0.5, 0.9))
    local = batch // world
    x, y = torch.rand(local, channels, PATCH, PATCH), torch.rand(local, 3, PATCH, PATCH)
    seconds = _best_s(lambda: _train_step(model, opt, x, y), steps)
    if rank == 0:
        print(json.dumps({"world": world, "train_samples_s": batch / seconds}))
    dist.destroy_process_group()


def ddp_scaling(channels: int, batch: int, steps: int, config: str) -> dict[str, Any]:
    """2 torchrun processes vs 1 process, each process with the same thread count (CPUs / 2)."""
    per_process = max(1, (os.cpu_count() or 2) // 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(per_process)
    single = measure(config, CONFIGS[config], channels, batch, steps)["train_samples_s"]
    torch.set_num_threads(threads)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           "--worker", "--recipe-images", str(channels // 3), "--batch", str(batch), "--steps", str(steps),
           "--config", config]
    env = {**os.environ, "OMP_NUM_THREADS": str(per_process)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    two = json.loads(done.stdout.strip().splitlines()[-1])["train_samples_s"]
    return {"config": config, "threads_per_process": per_process, "processes_1_samples_s": single,
            "processes_2_samples_s": two, "scaling_2_vs_1": two / single}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe-images", type=int, default=44, help="images per stack (44 = full-nohe)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed repeats (best of)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all CPUs)")
    p.add_argument("--ddp", action="store_true", help="also measure 2 torchrun processes (small config)")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast training step")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", default="small (default)", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    channels = 3 * args.recipe_images
    if args.worker:
        ddp_worker(channels, args.batch, args.steps, args.config)
        return 0
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    rows = [measure(name, cfg, channels, args.batch, args.steps, not args.no_bf16) for name, cfg in CONFIGS.items()]
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "input_channels": channels, "patch": PATCH,
                              "rows": rows}
    if args.ddp:
        result["ddp"] = ddp_scaling(channels, args.batch, args.steps, "small (default)")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{channels} input channels, {PATCH}x{PATCH}, batch {args.batch}, {result['threads']} threads")
    print(f"{'config':32s} {'GFLOP/cell':>10s} {'fwd smp/s':>10s} {'train smp/s':>11s} {'ratio':>6s} {'ms/cell':>8s}")
    for r in rows:
        print(f"{r['config']:32s} {r['gflop_per_cell']:10.2f} {r['forward_samples_s']:10.2f} "
              f"{r['train_samples_s']:11.2f} {r['ratio_train_vs_forward']:6.3f} {r['train_ms_per_cell']:8.1f}"
              + (f"  bf16 {r['train_bf16_ms_per_cell']:.1f} ms/cell ({r['bf16_vs_fp32']:.2f}x fp32)"
                 if "bf16_vs_fp32" in r else ""))
    if args.ddp:
        d = result["ddp"]
        print(f"torchrun (small, {d['threads_per_process']} thread/process): 1 process "
              f"{d['processes_1_samples_s']:.2f}, 2 processes {d['processes_2_samples_s']:.2f} samples/s "
              f"= {d['scaling_2_vs_1']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
