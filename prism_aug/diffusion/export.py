"""Export components as a folder that ``StableDiffusionPipeline.from_pretrained`` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from diffusers import DiffusionPipeline, StableDiffusionPipeline

from prism_aug.diffusion.components import SDComponents

Pipeline = TypeVar("Pipeline", bound=DiffusionPipeline)


def to_pipeline(
    components: SDComponents,
    pipeline_class: type[Pipeline] = StableDiffusionPipeline,
    **extra: Any,
) -> Pipeline:
    """A Stable Diffusion pipeline over the components (shared, not copied).

    No safety checker or feature extractor: the images are radiographs, and SD's NSFW
    checker (a CLIP ViT-L/14 vision tower) would only blank out false positives.

    Args:
        components: the model.
        pipeline_class: StableDiffusionPipeline, or another SD 1.x pipeline of diffusers
            (image-to-image, DiffEdit, LEdits++).
        **extra: further components the class needs (DiffEdit's ``inverse_scheduler``).
    """
    return pipeline_class(
        **extra,
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        scheduler=components.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(components: SDComponents, folder: Path | str) -> Path:
    """Save the components as a diffusers Stable Diffusion folder, weights as safetensors.

    The folder holds ``model_index.json`` and the subfolders unet, vae, text_encoder,
    tokenizer and scheduler; ``StableDiffusionPipeline.from_pretrained(folder)`` and
    ``load_components(folder)`` both read it unchanged.

    Returns:
        The folder.
    """
    folder = Path(folder)
    to_pipeline(components).save_pretrained(folder, safe_serialization=True)
    return folder
