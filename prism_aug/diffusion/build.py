"""Build an SD-style model with random, seeded weights from a named preset."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from prism_aug.diffusion.components import SDComponents, ddim_scheduler
from prism_aug.diffusion.presets import PRESETS, ModelConfigs
from prism_aug.diffusion.tokenizer import build_clip_tokenizer


def preset_configs(preset: str, **overrides: Any) -> ModelConfigs:
    """The configs of a registered preset, with its keyword arguments overridden.

    Raises:
        ValueError: unknown preset or hyper-parameter; the message lists the valid ones.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
    builder = PRESETS[preset]
    valid = sorted(inspect.signature(builder).parameters)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"preset {preset!r} has no hyper-parameter {unknown}; valid: {valid}")
    return builder(**overrides)


def build_components(
    preset: str,
    seed: int = 0,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> SDComponents:
    """Build a preset's UNet, VAE and text encoder with seeded random weights.

    Each network is initialised right after ``torch.manual_seed(seed)``, inside a forked RNG
    state: the same seed gives bitwise-identical weights, changing one network's config
    leaves the others' weights as they were, and the caller's CPU RNG is untouched.

    Args:
        preset: a name in ``PRESETS`` (``"tiny"``, ``"sd15"``).
        seed: seed of the weight initialisation.
        device: where the weights are created; ``"meta"`` builds shapes only (instant, for
            counting the parameters of sd15), ``"cuda"`` skips a CPU init of a big model.
        **overrides: the preset's hyper-parameters (see its function in ``presets``).

    Returns:
        The components, with SD's CLIP tokenizer and PRISM's DDIM over the preset's noise
        schedule.
    """
    configs = preset_configs(preset, **overrides)
    networks: list[torch.nn.Module] = []
    makers = (
        lambda: UNet2DConditionModel(**configs.unet),
        lambda: AutoencoderKL(**configs.vae),
        lambda: CLIPTextModel(CLIPTextConfig(**configs.text_encoder)),
    )
    for make in makers:
        with torch.random.fork_rng(devices=[]), _on(device):
            torch.manual_seed(seed)
            networks.append(make().eval())
    unet, vae, text_encoder = networks
    return SDComponents(
        unet, vae, text_encoder, build_clip_tokenizer(), ddim_scheduler(configs.noise_schedule)
    )


def _on(device: torch.device | str | None) -> contextlib.AbstractContextManager[Any]:
    """A context that creates tensors on device, or changes nothing for None."""
    return contextlib.nullcontext() if device is None else torch.device(device)
