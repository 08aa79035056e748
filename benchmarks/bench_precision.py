"""Training steps under bf16 autocast against float32 on this CPU, and what prism-aug picks.

    .venv/bin/python benchmarks/bench_precision.py [--batch_size 64] [--rounds 2]

Times one optimiser step of the two networks the default pipeline trains longest, at their
configs' shapes and random weights: the oracle (configs/oracle/synthcxr.yaml's timm network,
1 channel, 64 px) and the tiny preset's UNet as configs/finetune/synthcxr_tiny.yaml overrides
it (32 x 32 latents, plain attention). The two precisions alternate rounds and each keeps its
fastest, so neither pays the other's warm-up. The last column is what ``native_precision``
makes of a config's ``bf16-mixed`` here: on a CPU without bf16 kernels autocast falls back to
reference kernels, and float32 is the faster choice.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import timm
import torch
import yaml
from diffusers.models.attention_processor import AttnProcessor

from prism_aug.diffusion.build import build_components
from prism_aug.precision import cpu_has_low_precision_kernels, native_precision

CONFIGS = Path(__file__).parents[1] / "configs"


def oracle_model_name() -> str:
    """The timm network the oracle's config trains."""
    config = yaml.safe_load((CONFIGS / "oracle/synthcxr.yaml").read_text())
    return config["model"]["network"]["init_args"]["model_name"]


def unet_overrides() -> dict:
    """The tiny preset's hyper-parameters that the fine-tuning config overrides."""
    config = yaml.safe_load((CONFIGS / "finetune/synthcxr_tiny.yaml").read_text())
    return config["model"].get("preset_overrides") or {}


def _oracle_step(batch_size: int) -> Callable[[], torch.Tensor]:
    network = timm.create_model(oracle_model_name(), in_chans=1, num_classes=11)
    images, labels = torch.randn(batch_size, 1, 64, 64), torch.rand(batch_size, 11)
    return _trainer(network, lambda: network(images), labels)


def _unet_step(batch_size: int) -> Callable[[], torch.Tensor]:
    unet = build_components("tiny", seed=0, **unet_overrides()).unet
    unet.set_attn_processor(AttnProcessor())
    latents, text = torch.randn(batch_size, 4, 32, 32), torch.randn(batch_size, 77, 64)
    timesteps = torch.randint(0, 1000, (batch_size,))
    return _trainer(unet, lambda: unet(latents, timesteps, text).sample, torch.zeros(()))


def _trainer(
    network: torch.nn.Module, forward: Callable[[], torch.Tensor], target: torch.Tensor
) -> Callable[[], torch.Tensor]:
    """One forward, backward and AdamW step; the loss is float32 either way."""
    network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)

    def step() -> torch.Tensor:
        out = forward().float()
        loss = (out - target).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def _seconds(step: Callable[[], torch.Tensor], bf16: bool) -> float:
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        step()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback's warning: the table says it
        picked = native_precision("bf16-mixed", "cpu")
    kernels = cpu_has_low_precision_kernels(torch.bfloat16)
    threads = torch.get_num_threads()
    print(f"bf16 kernels on this CPU: {kernels}; torch {torch.__version__}, {threads} threads\n")
    print("| network, training step | fp32 s | bf16 autocast s | bf16 / fp32 | config's bf16 |")
    print("|---|---:|---:|---:|---|")
    oracle = f"oracle {oracle_model_name()}, 64 px"
    for name, make in ((oracle, _oracle_step), ("tiny UNet", _unet_step)):
        step = make(args.batch_size)
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], _seconds(step, bf16))
        ratio = best[True] / best[False]
        print(f"| {name} | {best[False]:.2f} | {best[True]:.2f} | {ratio:.1f}x | {picked} |")


if __name__ == "__main__":
    main()
