"""Radiographs in and out of an SD model's latent space, and prompts into its text space.

Encoding takes the posterior mean (an edit must start from the image itself, not a sample of
it); decoding runs outside autocast in the VAE's own dtype, which the editor keeps float32
(only the UNet runs in bf16 or fp16), so an overflowing fp16 decoder never yields black or
NaN images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from prism_aug.diffusion.channels import from_vae_channels, to_vae_channels
from prism_aug.diffusion.components import SDComponents
from prism_aug.diffusion.data import to_model_pixels
from prism_aug.diffusion.tokenizer import prompt_ids


@torch.no_grad()
def encode_images(components: SDComponents, images: np.ndarray) -> torch.Tensor:
    """uint8 radiographs ``(B, H, W)`` -> scaled latents ``(B, 4, h, w)`` (float32).

    Images of another size than the VAE's are resized as the fine-tuning data is.
    """
    vae = components.vae
    size = vae.config.sample_size
    pixels = torch.stack([to_model_pixels(image, size) for image in images])
    pixels = to_vae_channels(pixels, vae.config.in_channels).to(vae.device, vae.dtype)
    return vae.encode(pixels).latent_dist.mean.float() * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(components: SDComponents, latents: torch.Tensor) -> np.ndarray:
    """Scaled latents ``(B, 4, h, w)`` -> uint8 radiographs ``(B, H, W)``, without autocast."""
    vae = components.vae
    with torch.autocast(latents.device.type, enabled=False):
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    gray = from_vae_channels(decoded.float())[:, 0]  # (B, H, W) in [-1, 1]
    return ((gray.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def encode_prompts(components: SDComponents, prompts: Sequence[str]) -> torch.Tensor:
    """Prompts -> text embeddings ``(B, 77, D)``, the encoder's last hidden states."""
    ids = prompt_ids(components.tokenizer, prompts).to(components.text_encoder.device)
    return components.text_encoder(ids)[0]
