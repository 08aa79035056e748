"""diffusers' editing pipelines behind the editor's interface, as baselines for Table 1.

Each takes uint8 radiographs ``(B, H, W)`` with source and target prompts and returns an
``EditedBatch`` with one candidate per image, so the evaluation scores them like ``Editor``:

- ``SDEdit``: image-to-image at a strength (Meng et al. 2022), ``StableDiffusionImg2ImgPipeline``;
- ``DiffEdit``: mask from the two prompts' noise estimates, DDIM inversion, masked
  denoising (Couairon et al. 2023), ``StableDiffusionDiffEditPipeline``;
- ``LEditsPP``: edit-friendly DDPM inversion and semantic guidance away from or towards the
  edited words (Brack et al. 2024), ``LEditsPPPipelineStableDiffusion``.

Images go in as grayscale repeated to RGB (what SD's VAE was trained on) and come back as the
mean of the channels, one image per pipeline call per prompt pair (the pipelines' own batching
of differing prompts is what the editor's benchmark compares against).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import (
    DDIMInverseScheduler,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    LEditsPPPipelineStableDiffusion,
    StableDiffusionDiffEditPipeline,
    StableDiffusionImg2ImgPipeline,
)
from PIL import Image

from prism_aug.data.prompts import EditSpec
from prism_aug.diffusion.components import SDComponents
from prism_aug.diffusion.export import to_pipeline
from prism_aug.editing.editor import EditedBatch


def _rgb(image: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(image).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


def _gray(images: np.ndarray) -> np.ndarray:
    """Pipeline output ``(B, H, W, 3)`` floats in [0, 1] -> uint8 ``(B, H, W)``."""
    return np.rint(np.asarray(images).mean(axis=-1) * 255).clip(0, 255).astype(np.uint8)


def _batch(candidates: list[np.ndarray]) -> EditedBatch:
    out = np.stack(candidates)[:, None]  # (B, 1, H, W)
    return EditedBatch(out, np.ones(out.shape, dtype=np.float32))


class SDEdit:
    """Noise the image to ``strength`` and denoise it under the target prompt."""

    def __init__(
        self, components: SDComponents, strength: float, steps: int = 50, guidance: float = 7.5
    ) -> None:
        self.pipeline = to_pipeline(components, StableDiffusionImg2ImgPipeline)
        self.pipeline.set_progress_bar_config(disable=True)
        self.size = components.vae.config.sample_size
        self.strength, self.steps, self.guidance = strength, steps, guidance

    def edit(
        self, images: np.ndarray, source_prompts: Sequence[str], target_prompts: Sequence[str]
    ) -> EditedBatch:
        out = []
        for i, (image, prompt) in enumerate(zip(images, target_prompts, strict=True)):
            result = self.pipeline(
                prompt,
                image=_rgb(image, self.size),
                strength=self.strength,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                generator=torch.Generator().manual_seed(i),
                output_type="np",
            ).images
            out.append(_gray(result)[0])
        return _batch(out)


class DiffEdit:
    """DiffEdit with diffusers' defaults for the mask and 0.8 inpainting strength."""

    def __init__(self, components: SDComponents, steps: int = 50, guidance: float = 7.5) -> None:
        scheduler = DDIMScheduler.from_config(components.scheduler.config)
        inverse = DDIMInverseScheduler.from_config(components.scheduler.config)
        self.pipeline = to_pipeline(
            components, StableDiffusionDiffEditPipeline, inverse_scheduler=inverse
        )
        self.pipeline.scheduler = scheduler
        self.pipeline.set_progress_bar_config(disable=True)
        self.size = components.vae.config.sample_size
        self.steps, self.guidance = steps, guidance

    def edit(
        self, images: np.ndarray, source_prompts: Sequence[str], target_prompts: Sequence[str]
    ) -> EditedBatch:
        out = []
        for i, (image, source, target) in enumerate(
            zip(images, source_prompts, target_prompts, strict=True)
        ):
            rgb = _rgb(image, self.size)
            mask = self.pipeline.generate_mask(
                image=rgb,
                source_prompt=source,
                target_prompt=target,
                generator=torch.Generator().manual_seed(i),
            )
            latents = self.pipeline.invert(
                prompt=source, image=rgb, num_inference_steps=self.steps
            ).latents
            result = self.pipeline(
                prompt=target,
                mask_image=mask,
                image_latents=latents,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                negative_prompt=source,
                output_type="np",
            ).images
            out.append(_gray(result)[0])
        return _batch(out)


class LEditsPP:
    """LEdits++: invert under the source prompt, then guide away from a removed attribute's
    words (reverse direction) or towards an added one's."""

    def __init__(self, components: SDComponents, steps: int = 50, edit_guidance: float = 5.0):
        scheduler = DPMSolverMultistepScheduler.from_config(
            components.scheduler.config, algorithm_type="sde-dpmsolver++", solver_order=2
        )
        self.pipeline = to_pipeline(components, LEditsPPPipelineStableDiffusion)
        self.pipeline.scheduler = scheduler
        self.pipeline.set_progress_bar_config(disable=True)
        self.size = components.vae.config.sample_size
        self.steps, self.edit_guidance = steps, edit_guidance

    def edit(
        self,
        images: np.ndarray,
        source_prompts: Sequence[str],
        target_prompts: Sequence[str],
        edits: Sequence[EditSpec],
    ) -> EditedBatch:
        out = []
        for i, (image, source, edit) in enumerate(zip(images, source_prompts, edits, strict=True)):
            self.pipeline.invert(
                image=_rgb(image, self.size),
                source_prompt=source,
                num_inversion_steps=self.steps,
                generator=torch.Generator().manual_seed(i),
            )
            result = self.pipeline(
                editing_prompt=[edit.attribute],
                reverse_editing_direction=[edit.action == "remove"],
                edit_guidance_scale=self.edit_guidance,
                output_type="np",
            ).images
            out.append(_gray(result)[0])
        return _batch(out)
