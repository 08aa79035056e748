"""Radiographs in and out of an SD model's latent space, and prompts into its text space.

Encoding takes the posterior mean (an edit must start from the image itself, not a sample of
it), optionally fitted to the decoder (``invert_decoder``); decoding runs outside autocast in
the VAE's own dtype, which the editor keeps float32 (only the UNet runs in bf16 or fp16), so
an overflowing fp16 decoder never yields black or NaN images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from prism_aug.diffusion.channels import from_vae_channels, to_vae_channels
from prism_aug.diffusion.components import SDComponents
from prism_aug.diffusion.data import to_model_pixels
from prism_aug.diffusion.tokenizer import prompt_ids

DECODER_INVERSION_LR = 0.05


@torch.no_grad()
def encode_images(
    components: SDComponents, images: np.ndarray, decoder_steps: int = 0
) -> torch.Tensor:
    """uint8 radiographs ``(B, H, W)`` -> scaled latents ``(B, 4, h, w)`` (float32).

    Images of another size than the VAE's are resized as the fine-tuning data is. With
    ``decoder_steps``, the posterior mean is then fitted to the decoder (``invert_decoder``).
    """
    vae = components.vae
    size = vae.config.sample_size
    pixels = torch.stack([to_model_pixels(image, size) for image in images])
    pixels = to_vae_channels(pixels, vae.config.in_channels).to(vae.device, vae.dtype)
    latents = vae.encode(pixels).latent_dist.mean.float() * vae.config.scaling_factor
    if decoder_steps:
        latents = invert_decoder(components, latents, pixels, decoder_steps)
    return latents


def invert_decoder(
    components: SDComponents,
    latents: torch.Tensor,
    pixels: torch.Tensor,
    steps: int,
    lr: float = DECODER_INVERSION_LR,
) -> torch.Tensor:
    """Latents moved by ``steps`` Adam steps so that the decoder reproduces ``pixels``.

    An exact inversion returns the latents it started from, so the VAE's reconstruction error
    is the floor of every edit's fidelity; the encoder's posterior mean is not the latent that
    decodes closest to the image. This fits it by gradient descent on the pixels' squared
    error (decoder inversion, Hong et al. 2024, "On Exact Inversion of DPM-Solvers"). Each
    image's loss is its own mean, so an image's result does not depend on its batch.

    Args:
        components: the model; only its VAE's decoder runs, outside autocast as in decoding.
        latents: scaled latents ``(B, 4, h, w)`` to start from, the encoder's.
        pixels: the images ``(B, C, H, W)`` in [-1, 1], in the VAE's channels.
        steps: Adam steps.
        lr: Adam's step size, in scaled-latent units.
    """
    if steps < 0:
        raise ValueError(f"decoder inversion steps must be >= 0, got {steps}")
    # Differentiates through the decoder, also where the caller runs under inference mode
    # (Lightning's predict loop); tensors made there are copied out of it first.
    with torch.inference_mode(False), torch.enable_grad():
        z, target = latents.detach().clone().requires_grad_(True), pixels.float().clone()
        optimizer = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            loss = (_decode(components, z) - target).pow(2).mean(dim=(1, 2, 3)).sum()
            (grad,) = torch.autograd.grad(loss, z)
            z.grad = grad
            optimizer.step()
    return z.detach()


def _decode(components: SDComponents, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> the VAE's output ``(B, C, H, W)`` in about [-1, 1], as float32; the
    VAE runs in its own dtype, outside autocast."""
    vae = components.vae
    with torch.autocast(latents.device.type, enabled=False):
        return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample.float()


@torch.no_grad()
def decode_latents(components: SDComponents, latents: torch.Tensor) -> np.ndarray:
    """Scaled latents ``(B, 4, h, w)`` -> uint8 radiographs ``(B, H, W)``, without autocast."""
    gray = from_vae_channels(_decode(components, latents))[:, 0]  # (B, H, W) in [-1, 1]
    return ((gray.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def encode_prompts(components: SDComponents, prompts: Sequence[str]) -> torch.Tensor:
    """Prompts -> text embeddings ``(B, 77, D)``, the encoder's last hidden states."""
    ids = prompt_ids(components.tokenizer, prompts).to(components.text_encoder.device)
    return components.text_encoder(ids)[0]
