"""The oracle's network: a timm classifier on grayscale images in [0, 1], normalised inside.

Keeping the normalisation in the network means the trained module, the exported folder and
:class:`prism_aug.evaluation.oracle.Oracle` all feed it the same thing: ``(B, 1, H, W)``
floats in [0, 1].
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

# Mean and standard deviation of SynthCXR pixels in [0, 1] (measured on 200 renders at 64 px,
# with and without findings and devices). timm's defaults are 3-channel ImageNet statistics.
GRAY_MEAN = 0.53
GRAY_STD = 0.24


class OracleNetwork(nn.Module):
    """A timm model behind a fixed one-channel normalisation.

    Args:
        model_name: any timm model name (``timm.list_models()``), e.g. "resnet18".
        model_kwargs: passed to ``timm.create_model``; ``in_chans`` must be 1 (it defaults to
            1) and ``num_classes`` the number of attributes.
        mean: pixel mean subtracted from inputs in [0, 1].
        std: pixel standard deviation inputs are divided by.
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        model_kwargs: dict[str, Any] | None = None,
        mean: float = GRAY_MEAN,
        std: float = GRAY_STD,
    ) -> None:
        super().__init__()
        kwargs = {"in_chans": 1, **(model_kwargs or {})}
        if kwargs["in_chans"] != 1:
            raise ValueError(f"model_kwargs.in_chans must be 1 (grayscale), got {kwargs}")
        if not timm.is_model(model_name):
            raise ValueError(
                f"model_name {model_name!r} is not a timm model; see timm.list_models()"
            )
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.model_name, self.model_kwargs = model_name, kwargs
        self.mean, self.std = float(mean), float(std)
        self.model = timm.create_model(model_name, pretrained=False, **kwargs)

    @property
    def config(self) -> dict[str, Any]:
        """The arguments that rebuild this network (saved beside its weights)."""
        return {
            "model_name": self.model_name,
            "model_kwargs": self.model_kwargs,
            "mean": self.mean,
            "std": self.std,
        }

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` floats in [0, 1] -> ``(B, num_classes)`` logits."""
        return self.model(self._normalise(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` floats in [0, 1] -> ``(B, D)`` pooled pre-logit features."""
        x = self.model.forward_features(self._normalise(images))
        return self.model.forward_head(x, pre_logits=True)
