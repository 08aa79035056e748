"""Classifier training throughput (images/s): the configs' channels-last and fused AdamW
against timm's and torch's defaults.

    .venv/bin/python benchmarks/bench_classifier.py [--steps 10] [--batch_size 64]

Trains the ERM module of configs/classifiers/synthcxr.yaml (resnet18, one channel, 64 px) on
random batches, once contiguous with AdamW's default (foreach) step and once channels-last
with the fused step that ``ERM.configure_optimizers`` picks, in bf16 autocast where the CPU
has bf16 kernels (else float32), and prints a markdown table. Where CUDA is available it adds
the CheXpert config's densenet121 at 224 px in bf16. Rounds alternate and each set-up keeps
its fastest, so neither pays the other's warm-up. Compare rows of one table only.
"""

from __future__ import annotations

import argparse

import torch
from training_steps import seconds_per_step

from classifiers.module import ERM
from prism_aug.precision import fast_autocast


def rows(model_name: str, size: int, batch_size: int, steps: int, device: str) -> list[tuple]:
    """(set-up, ms per step, images/s) for the defaults and for the configs' set-up."""
    bf16 = device == "cuda" or fast_autocast("cpu")
    batches = [
        {
            "image": torch.randn(batch_size, 1, size, size, device=device),
            "y": torch.randint(0, 2, (batch_size,), device=device),
        }
        for _ in range(steps + 1)
    ]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=64)
    options = parser.parse_args()
    table = rows("resnet18", 64, options.batch_size, options.steps, "cpu")
    if torch.cuda.is_available():
        table += rows("densenet121", 224, options.batch_size, options.steps, "cuda")
    print("| set-up | ms per step | images/s |\n|---|---:|---:|")
    for name, ms, images_per_second in table:
        print(f"| {name} | {ms:.0f} | {images_per_second:.0f} |")


if __name__ == "__main__":
    main()
