"""Named architectures: each preset returns the configs that build an SD-style model.

A preset is a function whose keyword arguments are its hyper-parameters, so a YAML config can
override any of them (``build_components("tiny", unet_channels=[16, 32, 64])``). Register a
new one with one line in ``PRESETS``.

Naming quirk of diffusers kept on purpose: UNet2DConditionModel's ``attention_head_dim`` is
the number of heads (SD v1.5's 8 means 8 heads of 40..160 channels); diffusers refuses
``num_attention_heads`` for this model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prism_aug.diffusion.components import NOISE_SCHEDULE
from prism_aug.diffusion.tokenizer import MODEL_MAX_LENGTH, VOCAB_SIZE

# CLIP's special token ids in SD's tokenizer: the text encoder pools at <|endoftext|>.
BOS_TOKEN_ID = 49406
EOS_TOKEN_ID = 49407


@dataclass(frozen=True)
class ModelConfigs:
    """Constructor arguments of the three networks of an SD-style model, and its noise schedule.

    Attributes:
        unet: keyword arguments of ``diffusers.UNet2DConditionModel``.
        vae: keyword arguments of ``diffusers.AutoencoderKL``.
        text_encoder: keyword arguments of ``transformers.CLIPTextConfig``.
        noise_schedule: the scheduler config the model trains and samples with (see
            ``components.ddim_scheduler``).
    """

    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]
    noise_schedule: dict[str, Any]


def _clip_text_config(
    hidden_size: int, layers: int, heads: int, intermediate_size: int, projection_dim: int
) -> dict[str, Any]:
    """A CLIP text tower over SD's 49408-token vocabulary and 77-token context."""
    return {
        "vocab_size": VOCAB_SIZE,
        "max_position_embeddings": MODEL_MAX_LENGTH,
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate_size,
        "projection_dim": projection_dim,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": BOS_TOKEN_ID,
        "eos_token_id": EOS_TOKEN_ID,
        "pad_token_id": EOS_TOKEN_ID,
    }


def sd15() -> ModelConfigs:
    """Stable Diffusion v1.5's exact architecture (random weights when built).

    For tests and benchmarks where the real weights cannot be had: 512 px RGB images,
    latents ``(B, 4, 64, 64)``, text ``(B, 77, 768)`` from CLIP ViT-L/14's text tower. About
    859.5M UNet, 83.7M VAE and 123.1M text-encoder parameters.
    """
    unet = {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "act_fn": "silu",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "downsample_padding": 1,
    }
    vae = {
        "sample_size": 512,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "act_fn": "silu",
        "scaling_factor": 0.18215,
    }
    text_encoder = _clip_text_config(768, 12, 12, 3072, 768)
    return ModelConfigs(unet, vae, text_encoder, dict(NOISE_SCHEDULE))


def tiny(
    *,
    image_size: int = 64,
    image_channels: int = 3,
    vae_channels: Sequence[int] = (32, 64),
    vae_scaling_factor: float = 1.0,
    unet_channels: Sequence[int] = (32, 64, 128),
    unet_heads: int = 2,
    cross_attention_levels: int = 2,
    norm_groups: int = 8,
    text_hidden_size: int = 64,
    text_layers: int = 2,
    text_heads: int = 2,
    zero_terminal_snr: bool = True,
) -> ModelConfigs:
    """An SD-shaped model small enough to train on a 2-core CPU in minutes.

    Same parts and interfaces as SD v1.5, so every code path (fine-tuning, inversion,
    Prompt-to-Prompt, export) runs on it unchanged; only the sizes shrink.

    - VAE with two blocks, downsampling by 2 (64 px -> latents ``(B, 4, 32, 32)``), not SD's
      8: SynthCXR's tubes and leads are 1-2 px wide at 64 px and would not survive an 8x
      bottleneck, and the devices are what the edits are about.
    - 3 image channels by default, fed grayscale as three equal channels exactly as SD's VAE
      is, so the tiny model tests SD's path; 1 also works (the pipeline then returns
      ``(B, H, W, 1)`` arrays and mode "L" images).
    - UNet levels at 32, 16 and 8 latent px; cross-attention only at 16 and 8 (and the mid
      block), where attention is cheap and the layout is decided. ``cross_attention_levels=1``
      (8 px and the mid block) trains a step in 0.61 s instead of 0.89 s at batch 64, but the
      editor's Prompt-to-Prompt control then loses its 16 px layers, and its edits kept 1.6
      to 6.5 dB less PSNR outside the change on SynthCXR (configs/finetune/synthcxr_tiny.yaml).
    - 2 heads: on a toy renderer, 2 heads with the plain AttnProcessor trained 2.1x faster on
      CPU than 8 heads with SDPA (the processor is the trainer's choice, not saved here).
    - A 2-layer CLIP text tower over SD's full vocabulary; the token embedding (3.2M) is most
      of it.
    - SD v1's betas rescaled to zero terminal SNR, with v-prediction and trailing timesteps
      (Lin et al. 2024). Under SD v1's own schedule x_T keeps sqrt(abar_T) = 0.068 of the
      image, enough for a model trained from scratch to read large, low-contrast findings
      (an effusion) from the noise instead of the prompt: with epsilon prediction the tiny
      model drew an effusion for 49% of seeds under the *normal* prompt and ignored the word.

    Args:
        image_size: image side in px; latents are ``image_size / 2`` on a side.
        image_channels: VAE input and output channels (3 or 1).
        vae_channels: channels of the VAE's blocks; their number fixes the downsampling
            factor, 2 ** (len - 1).
        vae_scaling_factor: multiplies latents before the UNet; 1.0 until a trained VAE's
            latents are measured (SD's 0.18215 is 1 / std of its latents).
        unet_channels: channels of the UNet's levels, finest first.
        unet_heads: attention heads in every UNet transformer block.
        cross_attention_levels: how many of the coarsest levels have transformer blocks
            (self- and cross-attention); the mid block always has one. At 32 x 32 latents a
            16 x 16 level's blocks cost a third of a training step.
        norm_groups: GroupNorm groups in the UNet and VAE (must divide every channel count).
        text_hidden_size: text encoder width, which is also the UNet's cross_attention_dim.
        text_layers: text encoder layers.
        text_heads: text encoder attention heads.
        zero_terminal_snr: the schedule above; False keeps SD v1's (epsilon prediction).
    """
    factor = 2 ** (len(vae_channels) - 1)
    if image_size % (factor * 2 ** (len(unet_channels) - 1)):
        raise ValueError(
            f"tiny: image_size={image_size} must be divisible by the VAE's factor {factor} "
            f"times the UNet's {2 ** (len(unet_channels) - 1)}"
        )
    levels = len(unet_channels)
    if not 1 <= cross_attention_levels <= levels:
        raise ValueError(
            f"tiny: cross_attention_levels={cross_attention_levels} must be in 1..{levels} "
            f"(the UNet has {levels} levels)"
        )
    plain = levels - cross_attention_levels
    unet = {
        "sample_size": image_size // factor,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D",) * plain
        + ("CrossAttnDownBlock2D",) * cross_attention_levels,
        "up_block_types": ("CrossAttnUpBlock2D",) * cross_attention_levels + ("UpBlock2D",) * plain,
        "block_out_channels": tuple(unet_channels),
        "layers_per_block": 1,
        "cross_attention_dim": text_hidden_size,
        "attention_head_dim": unet_heads,
        "norm_num_groups": norm_groups,
    }
    vae = {
        "sample_size": image_size,
        "in_channels": image_channels,
        "out_channels": image_channels,
        "down_block_types": ("DownEncoderBlock2D",) * len(vae_channels),
        "up_block_types": ("UpDecoderBlock2D",) * len(vae_channels),
        "block_out_channels": tuple(vae_channels),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": norm_groups,
        "scaling_factor": vae_scaling_factor,
    }
    text_encoder = _clip_text_config(
        text_hidden_size, text_layers, text_heads, 4 * text_hidden_size, text_hidden_size
    )
    noise_schedule = dict(NOISE_SCHEDULE)
    if zero_terminal_snr:
        noise_schedule |= {
            "prediction_type": "v_prediction",  # epsilon is undefined at SNR 0
            "rescale_betas_zero_snr": True,
            "timestep_spacing": "trailing",  # sampling starts at t = T, where SNR is 0
        }
    return ModelConfigs(unet, vae, text_encoder, noise_schedule)


PRESETS: dict[str, Callable[..., ModelConfigs]] = {"sd15": sd15, "tiny": tiny}
