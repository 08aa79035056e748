"""Grayscale X-rays in and out of a VAE that may expect three channels.

SD's VAE was trained on RGB, so a radiograph goes in as three equal channels (what a grayscale
JPEG becomes when opened as RGB) and comes back as their mean. Both functions take the channel
count from the VAE's config, so one code path serves SD's 3-channel VAE and a 1-channel one.
"""

from __future__ import annotations

import torch


def to_vae_channels(x: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Repeat a grayscale batch to the VAE's input channels.

    Args:
        x: images ``(B, 1, H, W)``, any range (SD's VAE takes [-1, 1]).
        channels: ``vae.config.in_channels``: 3 for SD, 1 leaves x as it is.

    Returns:
        ``(B, channels, H, W)``, every channel equal to x (a view, no copy).
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected grayscale images (B, 1, H, W), got shape {tuple(x.shape)}")
    return x.expand(-1, channels, -1, -1)


def from_vae_channels(x: torch.Tensor) -> torch.Tensor:
    """Average a decoded batch ``(B, C, H, W)`` back to grayscale ``(B, 1, H, W)``.

    The mean, not the first channel: a decoder's channels differ slightly, and the mean is
    the least-squares gray value.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    return x.mean(dim=1, keepdim=True)
