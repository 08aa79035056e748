"""The tiny VAE stage: training, scaling factor, export, and its use by the UNet stage."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from prism_aug.diffusion.finetune import DiffusionFineTuner
from prism_aug.diffusion.vae import VAETrainer, psnr

SMALL_VAE = {"image_size": 32, "vae_channels": [8, 16], "unet_channels": [8, 16], "norm_groups": 4}


def test_psnr_is_the_definition() -> None:
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[0] += 0.2  # MSE 0.04 on a peak-to-peak range of 2: 10 log10(4 / 0.04) = 20 dB
    y[1] += 0.02
    torch.testing.assert_close(psnr(y, x), torch.tensor([20.0, 40.0]))


def test_vae_fit_exports_a_scaled_vae_the_unet_stage_loads(
    synthcxr_32: Path, tmp_path: Path, small_datamodule, small_trainer
) -> None:
    export = tmp_path / "vae"
    module = VAETrainer(preset_overrides=SMALL_VAE, export_dir=str(export))
    before = [p.clone() for p in module.vae.parameters()]
    small_trainer(tmp_path, max_steps=3).fit(module, small_datamodule(synthcxr_32))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.vae.parameters(), strict=True))
    config = json.loads((export / "config.json").read_text())
    assert config["scaling_factor"] != 1.0
    vae = AutoencoderKL.from_pretrained(export)
    std = module.latent_std(batches=100)  # the whole train set
    assert abs(vae.config.scaling_factor * std - 1.0) < 0.1  # sampled latents: not exact
    unet_stage = DiffusionFineTuner(
        preset_overrides={**SMALL_VAE, "text_hidden_size": 32, "text_layers": 1},
        vae=str(export),
        export_dir=None,
    )
    assert unet_stage.vae.config.scaling_factor == vae.config.scaling_factor
    assert all(not p.requires_grad for p in unet_stage.vae.parameters())
