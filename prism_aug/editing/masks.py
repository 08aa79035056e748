"""Where an edit may change the image: blend masks from evidence summed over the steps.

Two kinds of evidence, both summed over the denoising steps so far (as P2P's local blend sums
its attention maps) and both thresholded by ``threshold_maps``:

- ``attention``: the cross-attention maps of the edited words (``AttentionController``), P2P's
  local blend (its layers at a quarter of the latent side, dilated there, divided by their
  maximum); it needs a text encoder whose words localise (SD's CLIP);
- ``prediction``: where a target's guided prediction departs from its source's,
  ``|f(x_tgt, c_tgt) - f(x_src, c_src)|`` averaged over channels: the region that the change of
  prompt changes, in the spirit of DiffEdit's mask, but read from the edit's own UNet calls
  (free). Small models trained from scratch, whose word maps are diffuse, need this one.

Pixel masks given by the user (a lung mask, SynthCXR's masks) are brought to the latents by
``latent_mask``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BLENDS: tuple[str, ...] = ("attention", "prediction", "none")


def threshold_maps(
    maps: torch.Tensor, threshold: float, dilation: int = 1, from_minimum: bool = True
) -> torch.Tensor:
    """Evidence ``(N, h, w)`` -> masks ``(N, 1, h, w)`` in {0, 1}.

    Each map is dilated by ``dilation`` pixels (max-pooling), rescaled to [0, 1] between its
    minimum and maximum (so a uniform floor does not pass) or, without ``from_minimum``,
    divided by its maximum (P2P's local blend), and thresholded. An all-zero map gives an
    empty mask.
    """
    x = maps.unsqueeze(1).float()
    if dilation:
        x = F.max_pool2d(x, 2 * dilation + 1, stride=1, padding=dilation)
    low = x.flatten(1).amin(1).view(-1, 1, 1, 1) if from_minimum else 0.0
    span = (x.flatten(1).amax(1).view(-1, 1, 1, 1) - low).clamp_min(1e-12)
    return ((x - low) / span > threshold).float()


class PredictionDifference:
    """Sums, per branch, how far its guided prediction is from its source's.

    Args:
        source: ``(N,)`` index of each branch's source branch.
    """

    def __init__(self, source: torch.Tensor) -> None:
        self.source = source
        self.maps: torch.Tensor | None = None

    def add(self, prediction: torch.Tensor) -> None:
        """Add ``|prediction - prediction[source]|`` averaged over channels, ``(N, h, w)``."""
        difference = (prediction - prediction[self.source]).abs().mean(1)
        self.maps = difference if self.maps is None else self.maps + difference


def latent_mask(
    masks: np.ndarray | None, latent_size: tuple[int, int], device: torch.device
) -> torch.Tensor | None:
    """Pixel masks ``(B, H, W)`` -> ``(B, 1, h, w)`` in {0, 1}: a latent pixel is in the mask
    when any pixel it covers is."""
    if masks is None:
        return None
    pixels = torch.as_tensor(np.asarray(masks, dtype=np.float32), device=device).unsqueeze(1)
    return (F.adaptive_max_pool2d(pixels, latent_size) > 0).float()
