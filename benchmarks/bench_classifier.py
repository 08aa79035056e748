"""Classifier training throughput (images/s): the configs' channels-last and fused AdamW
against timm's and torch's defaults, and fits side by side as Table 2's runner runs them.

    .venv/bin/python benchmarks/bench_classifier.py [--steps 10] [--batch_size 64] [--jobs 2]

Trains the ERM module of configs/classifiers/synthcxr.yaml (resnet18, one channel, 64 px) on
random batches, once contiguous with AdamW's default (foreach) step and once channels-last
with the fused step that ``ERM.configure_optimizers`` picks, in bf16 autocast where the CPU
has bf16 kernels (else float32), and prints a markdown table. A third row trains the configs'
set-up in ``--jobs`` processes at once, each on its share of the cores as
``classifiers.pool`` gives it, and adds up their images/s. Where CUDA is available it adds
the CheXpert config's densenet121 at 224 px in bf16. Rounds alternate and each set-up keeps
its fastest, so neither pays the other's warm-up. Compare rows of one table only.
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from threading import Barrier

import torch
from training_steps import seconds_per_step

from classifiers.module import ERM
from classifiers.pool import cpu_share
from prism_aug.precision import fast_autocast


def random_batches(size: int, batch_size: int, steps: int, device: str) -> list[dict]:
    """``steps + 1`` batches of noise images and random labels."""
    return [
        {
            "image": torch.randn(batch_size, 1, size, size, device=device),
            "y": torch.randint(0, 2, (batch_size,), device=device),
        }
        for _ in range(steps + 1)
    ]


def rows(model_name: str, size: int, batch_size: int, steps: int, device: str) -> list[tuple]:
    """(set-up, ms per step, images/s) for the defaults and for the configs' set-up."""
    bf16 = device == "cuda" or fast_autocast("cpu")
    batches = random_batches(size, batch_size, steps, device)
    plain = ERM(model_name).to(device)
    ours = ERM(model_name, channels_last=True).to(device)
    setups = {
        "contiguous, AdamW foreach (the defaults)": (plain, torch.optim.AdamW(plain.parameters())),
        "channels-last, fused AdamW (the configs)": (ours, ours.configure_optimizers()),
    }
    best = dict.fromkeys(setups, float("inf"))
    for _ in range(2):
        for name, (module, optimizer) in setups.items():
            best[name] = min(best[name], seconds_per_step(module, optimizer, batches, bf16))
    where = f"{device} {'bf16' if bf16 else 'fp32 (no bf16 kernels)'}"
    return [
        (f"{model_name} {size} px, {where}, {name}", 1000 * s, batch_size / s)
        for name, s in best.items()
    ]


def one_of_several(
    threads: int, start: Barrier, model_name: str, size: int, batch_size: int, steps: int
) -> float:
    """Seconds per step of the configs' set-up on ``threads`` threads, timed from the moment
    every process of the pool has built its module (``start``)."""
    torch.set_num_threads(threads)
    module = ERM(model_name, channels_last=True)
    batches = random_batches(size, batch_size, steps, "cpu")
    start.wait()
    return seconds_per_step(module, module.configure_optimizers(), batches, fast_autocast("cpu"))


def pooled_row(model_name: str, size: int, batch_size: int, steps: int, jobs: int) -> tuple:
    """(set-up, ms per step of each, images/s of all) for ``jobs`` fits at once on the CPU,
    the better of two rounds."""
    threads = cpu_share(jobs)
    context = multiprocessing.get_context("spawn")
    best = float("inf")
    with context.Manager() as manager, ProcessPoolExecutor(jobs, context) as pool:
        for _ in range(2):
            start = manager.Barrier(jobs)
            args = (threads, start, model_name, size, batch_size, steps)
            runs = [pool.submit(one_of_several, *args) for _ in range(jobs)]
            best = min(best, max(run.result() for run in runs))  # the slowest fit's pace
    name = f"{model_name} {size} px, cpu, the configs, {jobs} fits at once, threads each: {threads}"
    return name, 1000 * best, jobs * batch_size / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2, help="fits at once in the last row")
    options = parser.parse_args()
    table = rows("resnet18", 64, options.batch_size, options.steps, "cpu")
    table.append(pooled_row("resnet18", 64, options.batch_size, options.steps, options.jobs))
    if torch.cuda.is_available():
        table += rows("densenet121", 224, options.batch_size, options.steps, "cuda")
    print("| set-up | ms per step | images/s |\n|---|---:|---:|")
    for name, ms, images_per_second in table:
        print(f"| {name} | {ms:.0f} | {images_per_second:.0f} |")


if __name__ == "__main__":
    main()
