"""The five parts of a Stable Diffusion model, and PRISM's DDIM scheduler.

Everything downstream (fine-tuning, inversion, editing, export) takes an ``SDComponents``,
whether it was built from a preset, loaded from a folder or fetched by hub id.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

# PRISM's DDIM: SD v1's training noise schedule (scaled_linear betas 0.00085..0.012 over 1000
# steps, epsilon prediction) with DDIM's sampling options as PRISM sets them.
NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}
DDIM_OPTIONS: dict[str, Any] = {
    "clip_sample": False,  # latents are not in [-1, 1]: clipping them would distort x0
    "set_alpha_to_one": False,  # the last step steps to alpha_bar_0, not to a noise-free 1
    "steps_offset": 1,  # "leading" timesteps 981, 961, ..., 1 for 50 steps, as SD v1 samples
}


@dataclass
class SDComponents:
    """A Stable Diffusion model's parts, as StableDiffusionPipeline takes them.

    Attributes:
        unet: noise predictor, latents ``(B, 4, h, w)`` + timestep + text ``(B, 77, D)``.
        vae: images ``(B, C, H, W)`` in [-1, 1] <-> latents ``(B, 4, H/f, W/f)``, where
            f = 2 ** (len(vae.config.block_out_channels) - 1): 8 for SD, 2 for ``tiny``.
        text_encoder: token ids ``(B, 77)`` -> hidden states ``(B, 77, D)``, D = the UNet's
            ``cross_attention_dim``.
        tokenizer: SD's CLIP tokenizer (49408 tokens, padded to 77).
        scheduler: DDIM with PRISM's options.
    """

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler

    @property
    def vae_scale_factor(self) -> int:
        """Image pixels per latent pixel along each side (8 for SD v1.5, 2 for ``tiny``)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def parameter_counts(self) -> dict[str, int]:
        """Number of parameters of the unet, vae and text_encoder, by name."""
        models = {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}
        return {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}


def ddim_scheduler(noise_schedule: Mapping[str, Any] | None = None) -> DDIMScheduler:
    """PRISM's DDIM scheduler over a model's noise schedule.

    Args:
        noise_schedule: a scheduler config (any diffusers scheduler's, e.g. SD v1.5's PNDM
            or SD 2's v-prediction config) whose betas, step count and prediction type the
            model was trained with. None takes SD v1's (``NOISE_SCHEDULE``).

    Returns:
        A DDIMScheduler with that noise schedule and ``DDIM_OPTIONS``, which always win over
        the config's (PRISM samples and inverts with them). Keys DDIM has no use for (PNDM's
        ``skip_prk_steps``) are dropped.
    """
    config = NOISE_SCHEDULE if noise_schedule is None else noise_schedule
    accepted = inspect.signature(DDIMScheduler.__init__).parameters
    kept = {key: value for key, value in config.items() if key in accepted}
    return DDIMScheduler.from_config({**kept, **DDIM_OPTIONS})
