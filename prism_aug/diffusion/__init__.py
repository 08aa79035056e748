"""Stable Diffusion components: build from a preset, load, export, and the CLIP tokenizer.

>>> components = load_components("tiny")  # or a diffusers folder, or a hub id
>>> save_pipeline(components, "outputs/tiny")  # StableDiffusionPipeline.from_pretrained
"""

from prism_aug.diffusion.build import build_components, preset_configs
from prism_aug.diffusion.channels import from_vae_channels, to_vae_channels
from prism_aug.diffusion.components import SDComponents, ddim_scheduler
from prism_aug.diffusion.export import save_pipeline, to_pipeline
from prism_aug.diffusion.loading import load_components
from prism_aug.diffusion.presets import PRESETS, ModelConfigs
from prism_aug.diffusion.tokenizer import build_clip_tokenizer

__all__ = [
    "PRESETS",
    "ModelConfigs",
    "SDComponents",
    "build_clip_tokenizer",
    "build_components",
    "ddim_scheduler",
    "from_vae_channels",
    "load_components",
    "preset_configs",
    "save_pipeline",
    "to_pipeline",
    "to_vae_channels",
]
