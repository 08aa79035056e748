"""Seconds per training step of a LightningModule outside a Trainer (shared by benchmarks)."""

from __future__ import annotations

import time

import lightning as L
import torch


def seconds_per_step(
    module: L.LightningModule, optimizer: torch.optim.Optimizer, batches: list[dict], bf16: bool
) -> float:
    """Seconds per ``training_step``, backward and optimizer step over ``batches``, after
    one warm-up step on the first; CUDA is synchronised around the timed steps."""
    module.log = lambda *args, **kwargs: None  # no trainer attached
    device_type = next(module.parameters()).device.type

    def step(batch: dict) -> None:
        with torch.autocast(device_type, torch.bfloat16, enabled=bf16):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])
    if device_type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    if device_type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (len(batches) - 1)
