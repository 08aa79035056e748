"""Fine-tuning throughput (images/s): cached latents against encoding every step.

    .venv/bin/python benchmarks/bench_finetune.py [--steps 10] [--batch_size 64]

Trains the default tiny model (the model and optimizer settings of
configs/finetune/synthcxr_tiny.yaml, its batch size by default; bf16 autocast where the CPU has
bf16 kernels and float32 where not) for a few steps on SynthCXR batches, once reading cached
VAE posteriors and once encoding the pixels at every step, in one process, and prints a
markdown table. Where CUDA is available it adds SD v1.5's UNet (random weights) at 512 px in
bf16 with and without the VAE encoder in the step. Timings from different runs or machines are
not comparable; compare rows of one table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml
from training_steps import seconds_per_step

from prism_aug.diffusion.data import CXRDataModule
from prism_aug.diffusion.finetune import DiffusionFineTuner
from prism_aug.diffusion.latent_cache import build_latent_cache, vae_fingerprint
from prism_aug.precision import fast_autocast

CONFIG = yaml.safe_load(
    (Path(__file__).parents[1] / "configs/finetune/synthcxr_tiny.yaml").read_text()
)
MODEL_SETTINGS = ("model", "preset_overrides", "attention", "train_text_encoder")


def _train_steps(
    module: DiffusionFineTuner, batches: list[dict], bf16: bool, **adamw: object
) -> float:
    """Seconds per step over ``batches`` with a fresh AdamW (after one warm-up step)."""
    optimizer = torch.optim.AdamW(module.trained_parameters(), lr=1e-4, **adamw)
    return seconds_per_step(module, optimizer, batches, bf16)


def tiny_rows(data: Path, vae: str | None, steps: int, batch_size: int) -> list[tuple[str, float]]:
    """Throughput of the tiny model with pixels (VAE every step) and with cached latents."""
    settings = {key: CONFIG["model"][key] for key in MODEL_SETTINGS if key in CONFIG["model"]}
    module = DiffusionFineTuner(**settings, vae=vae, export_dir=None)
    adamw = CONFIG["model"]["optimizer"]["init_args"]
    datamodule = CXRDataModule(str(data / "train.csv"), batch_size=batch_size)
    datamodule.setup()
    loader = datamodule.train_dataloader()
    pixels = [batch for batch, _ in zip(loader, range(steps + 1), strict=False)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = build_latent_cache(
            Path(tmp),
            datamodule.datasets["train"],
            module.encode_posterior,
            vae_fingerprint(module.vae),
        )
        cache_seconds = time.perf_counter() - start
        latents = []
        for batch in pixels:
            rows = [cache[int(i)] for i in batch["index"]]
            latents.append(
                {
                    "latent_mean": torch.stack([m for m, _ in rows]),
                    "latent_std": torch.stack([s for _, s in rows]),
                    "caption": batch["caption"],
                }
            )
    n = len(datamodule.datasets["train"])
    # Whichever set-up runs first pays the allocator's and oneDNN's warm-up: alternate
    # rounds and keep each set-up's fastest.
    per_pixel_step, per_latent_step = float("inf"), float("inf")
    bf16 = fast_autocast("cpu")
    for _ in range(2):
        per_pixel_step = min(per_pixel_step, _train_steps(module, pixels, bf16, **adamw))
        per_latent_step = min(per_latent_step, _train_steps(module, latents, bf16, **adamw))
    print(f"caching {n} images took {cache_seconds:.1f} s ({n / cache_seconds:.0f} img/s)")
    dtype = "bf16" if bf16 else "fp32 (no bf16 kernels)"
    return [
        (f"tiny 64 px, CPU {dtype}, encode every step", batch_size / per_pixel_step),
        (f"tiny 64 px, CPU {dtype}, cached latents", batch_size / per_latent_step),
    ]


def sd15_rows(steps: int, batch_size: int) -> list[tuple[str, float]]:
    """SD v1.5's UNet (random) at 512 px in bf16 on CUDA, with and without the VAE encoder."""
    module = DiffusionFineTuner(model="sd15", export_dir=None, ema_decay=None).cuda()
    module.unet.enable_gradient_checkpointing()
    pixels = [
        {
            "pixel_values": torch.rand(batch_size, 1, 512, 512) * 2 - 1,
            "caption": ["Chest X-ray showing Pleural Effusion"] * batch_size,
        }
        for _ in range(steps + 1)
    ]
    latents = [
        {
            "latent_mean": torch.randn(batch_size, 4, 64, 64, device="cuda"),
            "latent_std": torch.zeros(batch_size, 4, 64, 64, device="cuda"),
            "caption": b["caption"],
        }
        for b in pixels
    ]
    return [
        (
            "sd15 512 px, CUDA bf16, encode every step",
            batch_size / _train_steps(module, pixels, True),
        ),
        (
            "sd15 512 px, CUDA bf16, cached latents",
            batch_size / _train_steps(module, latents, True),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthcxr_finetune"))
    parser.add_argument("--vae", default="outputs/models/synthcxr_tiny_vae")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=CONFIG["data"]["batch_size"])
    args = parser.parse_args()
    vae = args.vae if Path(args.vae).is_dir() else None
    rows = tiny_rows(args.data, vae, args.steps, args.batch_size)
    if torch.cuda.is_available():
        rows += sd15_rows(args.steps, 8)
    print(f"\nthreads: {torch.get_num_threads()}, batch {args.batch_size}, {args.steps} steps\n")
    print("| set-up | images/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} |")
    print(f"\ncached / encode every step (tiny): {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
