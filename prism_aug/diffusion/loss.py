"""The denoising loss of latent diffusion (Ho et al. 2020; Salimans & Ho 2022; Hang et al. 2023).

With x_0 the scaled latents, t ~ U{0, ..., T-1} and eps ~ N(0, I):

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps                         (forward process)
    target = eps                               for prediction_type "epsilon"
    target = v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0   for "v_prediction"
    L = E_t [ w_t || f_theta(x_t, t, c) - target ||^2 ]

where w_t = 1, or with min-SNR-gamma weighting (Hang et al. 2023), SNR_t = abar_t / (1 - abar_t)
and w_t = min(SNR_t, gamma) / SNR_t for epsilon, min(SNR_t, gamma) / (SNR_t + 1) for v.
"""

from __future__ import annotations

import torch
from diffusers import SchedulerMixin

PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction")


def check_prediction_type(prediction_type: str) -> str:
    """Return the prediction type if the loss supports it, else raise listing the valid ones."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"scheduler prediction_type {prediction_type!r} is not supported; "
            f"expected one of {PREDICTION_TYPES}"
        )
    return prediction_type


def denoising_target(
    scheduler: SchedulerMixin, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The network's regression target: eps, or v for v-prediction. Shapes as x0 ``(B, ...)``."""
    prediction_type = check_prediction_type(scheduler.config.prediction_type)
    if prediction_type == "epsilon":
        return eps
    return scheduler.get_velocity(x0, eps, t)


def snr(scheduler: SchedulerMixin, t: torch.Tensor) -> torch.Tensor:
    """SNR_t = abar_t / (1 - abar_t) for timesteps ``t`` ``(B,)``; float32 ``(B,)``."""
    abar = scheduler.alphas_cumprod.to(t.device)[t].float()
    return abar / (1.0 - abar)


def loss_weights(
    scheduler: SchedulerMixin, t: torch.Tensor, snr_gamma: float | None
) -> torch.Tensor:
    """w_t ``(B,)``: ones, or min-SNR-gamma weights for the scheduler's prediction type."""
    if snr_gamma is None:
        return torch.ones(t.shape, device=t.device)
    snr_t = snr(scheduler, t)
    clipped = torch.clamp(snr_t, max=snr_gamma)
    if check_prediction_type(scheduler.config.prediction_type) == "epsilon":
        return clipped / snr_t
    return clipped / (snr_t + 1.0)


def denoising_loss(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """L = mean_b w_b * mean over (C, H, W) of (prediction - target)^2, computed in float32.

    Args:
        prediction: f_theta(x_t, t, c) ``(B, 4, h, w)``.
        target: ``denoising_target`` ``(B, 4, h, w)``.
        weights: w_t ``(B,)``.
    """
    per_sample = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3))  # (B,)
    return (weights * per_sample).mean()
