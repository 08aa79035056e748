"""Sample radiographs from prompts with fixed seeds (DDIM, classifier-free guidance).

Sampling goes through ``StableDiffusionPipeline`` itself, so what the trainer shows in its
grids and what the quality check measures is what a user of the exported folder gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler
from PIL import Image

from prism_aug.data.prompts import NORMAL_CAPTION, caption
from prism_aug.data.synthcxr import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES
from prism_aug.diffusion.components import SDComponents
from prism_aug.diffusion.export import to_pipeline
from prism_aug.precision import fast_autocast

# The attributes SynthCXR draws: the sample grid's rows by default.
SYNTHCXR_FINDINGS: tuple[str, ...] = (*SUPPORTED_FINDINGS, SUPPORT_DEVICES)


@torch.no_grad()
def sample_images(
    components: SDComponents,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int = 20,
    guidance: float = 5.0,
    batch_size: int = 64,
    bf16_autocast: bool = False,
) -> np.ndarray:
    """Draw one image per (prompt, seed) pair with DDIM and classifier-free guidance.

    The same seed gives the same initial noise whatever the prompt, so images of one seed
    under two prompts differ only by what the prompt changes.

    Args:
        components: the model (its networks are set to eval and restored afterwards).
        prompts: one prompt per image.
        seeds: one seed per image (the initial latent noise).
        steps: DDIM steps.
        guidance: classifier-free guidance scale w (1 turns guidance off).
        batch_size: images per pipeline call.
        bf16_autocast: run the networks under bf16 autocast on the model's device type,
            where it has bf16 kernels (``precision.fast_autocast``; float32 on others).

    Returns:
        uint8 images ``(N, H, W)``, the mean of the decoder's channels.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per image")
    scheduler = DDIMScheduler.from_config(components.scheduler.config)  # keep training's intact
    pipeline = to_pipeline(replace(components, scheduler=scheduler))
    pipeline.set_progress_bar_config(disable=True)
    device = components.unet.device
    bf16_autocast = bf16_autocast and fast_autocast(device.type)
    networks = (components.unet, components.vae, components.text_encoder)
    modes = [network.training for network in networks]
    for network in networks:
        network.eval()
    images = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = slice(start, start + batch_size)
            generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds[chunk]]
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16_autocast):
                out = pipeline(
                    list(prompts[chunk]),
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    generator=generators,
                    output_type="np",
                ).images  # (b, H, W, C) float in [0, 1]
            images.append(np.rint(out.mean(axis=-1) * 255).clip(0, 255).astype(np.uint8))
    finally:
        for network, mode in zip(networks, modes, strict=True):
            network.train(mode)
    return np.concatenate(images)


def switch_prompts(findings: Sequence[str]) -> list[tuple[str, str]]:
    """(row label, prompt) pairs: the normal caption, then each finding alone switched on."""
    return [("normal", NORMAL_CAPTION)] + [(f, caption({f: 1.0})) for f in findings]


def image_grid(images: np.ndarray, rows: int, pad: int = 2) -> np.ndarray:
    """Tile uint8 images ``(rows * cols, H, W)`` row-major into one ``(H', W')`` image."""
    n, height, width = images.shape
    if n % rows:
        raise ValueError(f"{n} images do not fill {rows} rows")
    cols = n // rows
    grid = np.full((rows * (height + pad) + pad, cols * (width + pad) + pad), 255, dtype=np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, cols)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid


def save_switch_grid(
    components: SDComponents,
    path: Path,
    findings: Sequence[str],
    seeds: Sequence[int],
    steps: int = 20,
    guidance: float = 5.0,
    batch_size: int = 64,
    bf16_autocast: bool = False,
) -> Path:
    """Sample ``switch_prompts(findings)`` (rows) for each seed (columns); save as PNG.

    ``bf16_autocast`` as in ``sample_images``.
    """
    rows = switch_prompts(findings)
    prompts = [prompt for _, prompt in rows for _ in seeds]
    seeds = list(seeds) * len(rows)
    images = sample_images(components, prompts, seeds, steps, guidance, batch_size, bf16_autocast)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, len(rows))).save(path)
    return path
