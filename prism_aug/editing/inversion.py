"""Inversions: from an image's latents to the noise, and what the edit loop needs to follow them.

All four start from DDIM inversion under the source prompt without guidance (the pivot of
Mokady et al. 2023), via diffusers' ``DDIMInverseScheduler``. They differ in how the guided
edit loop keeps the source branch on that trajectory:

- ``ddim``: it does not; guidance drifts it (the baseline).
- ``null_text`` (Mokady et al. 2023, PRISM): per step, the unconditional embedding is optimised
  so that the guided step lands on the pivot (10 Adam steps, early stop).
- ``negative_prompt`` (Miyake et al. 2023): the source prompt's embedding stands in for the
  unconditional one, so guidance cancels on the source branch; no optimisation.
- ``direct`` (Ju et al. 2024): after each step the source branch is moved onto the pivot,
  exact by construction and free; each target is moved by the same offset (the latent-space
  twin of null-text's shared embedding), so a null edit reconstructs exactly and the targets
  read their attention from an exact source.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from prism_aug.editing.denoiser import GuidedDenoiser

METHODS: tuple[str, ...] = ("ddim", "null_text", "negative_prompt", "direct")


@dataclass
class Inverted:
    """What the edit loop needs to reconstruct (and edit) a batch of B images.

    Attributes:
        trajectory: ``steps + 1`` latents ``(B, 4, h, w)``: entry i is the input of
            denoising step i (entry 0 is x_T), the last is x_0, the image's own latents.
        uncond: unconditional embeddings of every step ``(steps, B, L, D)``.
        pin_source: after step i, move the source branch to ``trajectory[i + 1]`` and its
            targets by the same offset (direct).
    """

    trajectory: list[torch.Tensor]
    uncond: torch.Tensor
    pin_source: bool


@dataclass(frozen=True)
class NullTextSettings:
    """Null-text optimisation (Mokady et al. 2023: 10 inner steps, Adam lr 1e-2 decaying,
    an image stops once its loss is under ``early_stop + step * early_stop_growth``)."""

    inner_steps: int = 10
    lr: float = 1e-2
    early_stop: float = 1e-5
    early_stop_growth: float = 2e-5


@torch.no_grad()
def ddim_inversion(
    denoiser: GuidedDenoiser,
    scheduler: DDIMScheduler,
    latents: torch.Tensor,
    cond: torch.Tensor,
    steps: int,
) -> list[torch.Tensor]:
    """The DDIM trajectory of ``latents`` under ``cond`` without guidance.

    Returns:
        ``steps + 1`` latents ordered as ``scheduler.timesteps`` after ``set_timesteps(steps)``
        (x_T first), then x_0.
    """
    accepted = inspect.signature(DDIMInverseScheduler.__init__).parameters
    inverse = DDIMInverseScheduler.from_config(
        {key: value for key, value in scheduler.config.items() if key in accepted}
    )
    inverse.set_timesteps(steps)
    path = [latents]
    x = latents
    for t in inverse.timesteps.tolist():
        x = inverse.step(denoiser(x, t, cond), t, x).prev_sample
        path.append(x)
    return path[::-1]


def null_text_optimisation(
    denoiser: GuidedDenoiser,
    scheduler: DDIMScheduler,
    trajectory: list[torch.Tensor],
    cond: torch.Tensor,
    null: torch.Tensor,
    guidance: float,
    settings: NullTextSettings,
) -> torch.Tensor:
    """Per-step unconditional embeddings ``(steps, B, L, D)`` that make guided DDIM follow
    ``trajectory``: step i minimises ||x*_{i+1} - DDIM(x_i, uncond_i)||^2 per image.

    Images stop optimising on their own once their loss is under the step's threshold, and
    keep that embedding (Adam's momentum would move it on while others optimise, making an
    image's result depend on the images it is batched with); each step starts from the
    previous step's embedding.
    """
    uncond = null.detach().clone()
    found = []
    x = trajectory[0]
    for i, t in enumerate(scheduler.timesteps.tolist()):
        with torch.no_grad():
            out_cond = denoiser(x, t, cond)
        uncond = uncond.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([uncond], lr=settings.lr * (1.0 - i / 100))
        target = trajectory[i + 1]
        threshold = settings.early_stop + i * settings.early_stop_growth
        active = torch.ones(x.shape[0], device=x.device)
        for _ in range(settings.inner_steps):
            out_uncond = denoiser(x, t, uncond)
            guided = out_uncond + guidance * (out_cond - out_uncond)
            x_next = scheduler.step(guided, t, x).prev_sample
            per_image = (x_next - target).pow(2).flatten(1).mean(1)
            active = active * (per_image.detach() >= threshold)
            if not active.any():
                break
            # Only the embedding's gradient: no weight gradients computed or left on the UNet.
            (uncond.grad,) = torch.autograd.grad((per_image * active).sum(), [uncond])
            before = uncond.detach().clone()
            optimizer.step()
            with torch.no_grad():  # a stopped image keeps its embedding
                uncond.copy_(torch.where(active.view(-1, 1, 1) > 0, uncond, before))
        uncond = uncond.detach()
        found.append(uncond)
        with torch.no_grad():
            x = scheduler.step(denoiser(x, t, cond, uncond, guidance), t, x).prev_sample
    return torch.stack(found)


def invert(
    method: str,
    denoiser: GuidedDenoiser,
    scheduler: DDIMScheduler,
    latents: torch.Tensor,
    cond: torch.Tensor,
    null: torch.Tensor,
    steps: int,
    guidance: float,
    null_text: NullTextSettings | None = None,
) -> Inverted:
    """Invert a batch by one of ``METHODS``.

    Args:
        method: "ddim", "null_text", "negative_prompt" or "direct".
        denoiser: the UNet with guidance (plain attention processors while inverting).
        scheduler: the DDIM scheduler the edit will sample with; ``set_timesteps(steps)`` is
            called on it.
        latents: x_0 ``(B, 4, h, w)``.
        cond: source prompt embeddings ``(B, L, D)``.
        null: the empty prompt's embeddings ``(B, L, D)``.
        steps: DDIM steps.
        guidance: the guidance scale of the edit (null-text optimises for it).
        null_text: settings of the optimisation (method "null_text" only).
    """
    if method not in METHODS:
        raise ValueError(f"unknown inversion {method!r}; expected one of {METHODS}")
    scheduler.set_timesteps(steps)  # on the host: timesteps are read as ints, no syncs
    trajectory = ddim_inversion(denoiser, scheduler, latents, cond, steps)
    if method == "null_text":
        uncond = null_text_optimisation(
            denoiser, scheduler, trajectory, cond, null, guidance, null_text or NullTextSettings()
        )
    else:
        source = cond if method == "negative_prompt" else null
        uncond = source.unsqueeze(0).expand(steps, *source.shape)
    return Inverted(trajectory, uncond, pin_source=method == "direct")
