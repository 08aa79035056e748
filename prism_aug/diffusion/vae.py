"""Train the tiny preset's VAE on radiographs: the first stage of ``make finetune``.

    prism-aug finetune-vae fit --config configs/finetune/synthcxr_tiny_vae.yaml

SD's VAE was trained on photographs and is frozen during fine-tuning; the tiny preset's has
random weights, so it is trained here first, on the same images the UNet will see:

    L = |x - D(z)|_1 (or squared) + beta * KL(q(z | x) || N(0, I)),   z ~ q(z | x) = E(x)

with both terms averaged per element and a small beta (the latent space only needs to stay
bounded; perceptual and adversarial terms are not needed at 64 px). When the fit ends, the
VAE's ``scaling_factor`` is set to 1 / std of the training latents (SD's 0.18215 is the
same rule), the VAE is saved with ``save_pretrained`` to ``export_dir``, and the fine-tuning
stage loads it with ``model.vae: <export_dir>``. Reconstruction PSNR is logged on the valid
split at each epoch and on the test split after the fit (``test/psnr``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from diffusers import AutoencoderKL
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info

from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.channels import from_vae_channels, to_vae_channels
from prism_aug.diffusion.presets import PRESETS

RECONSTRUCTION_LOSSES: tuple[str, ...] = ("l1", "l2")


def load_vae(model: str, preset_overrides: dict[str, Any] | None, seed: int) -> AutoencoderKL:
    """A preset's VAE with seeded random weights, or a saved ``AutoencoderKL``.

    Args:
        model: a preset name, a folder holding an AutoencoderKL (``config.json``), or a
            diffusers SD folder or hub id (its ``vae`` subfolder).
    """
    if model in PRESETS:
        return build_components(model, seed=seed, **(preset_overrides or {})).vae
    if preset_overrides:
        raise ValueError(
            f"model.preset_overrides applies to presets {sorted(PRESETS)}, not {model!r}"
        )
    if (Path(model) / "config.json").is_file():
        return AutoencoderKL.from_pretrained(model)
    return AutoencoderKL.from_pretrained(model, subfolder="vae")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of ``(B, C, H, W)`` images in [-1, 1] (peak-to-peak 2): ``(B,)``."""
    mse = (x.float() - y.float()).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return 10.0 * torch.log10(4.0 / mse)


class VAETrainer(L.LightningModule):
    """AutoencoderKL training with a reconstruction loss and a small KL term.

    Args:
        model: the VAE to train: a preset name (``"tiny"``), an AutoencoderKL folder, or an
            SD folder / hub id.
        preset_overrides: hyper-parameters of the preset (``{"image_size": 32}``).
        seed: weight seed of a preset.
        optimizer: builds the optimizer from the VAE's parameters; called with ``lr``.
        lr: learning rate (constant).
        reconstruction: "l1" or "l2".
        kl_weight: beta, the weight of the per-element KL term.
        scale_batches: training batches whose latents measure the std for scaling_factor.
        export_dir: folder the trained VAE is saved to when the fit ends; None: no export.
    """

    def __init__(
        self,
        model: str = "tiny",
        preset_overrides: dict[str, Any] | None = None,
        seed: int = 0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr: float = 1e-3,
        reconstruction: str = "l1",
        kl_weight: float = 1e-4,
        scale_batches: int = 32,
        export_dir: str | None = "outputs/models/synthcxr_tiny_vae",
    ) -> None:
        super().__init__()
        if reconstruction not in RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"model.reconstruction={reconstruction!r} is not valid; "
                f"choose one of {list(RECONSTRUCTION_LOSSES)}"
            )
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer = optimizer
        self.vae = load_vae(model, preset_overrides, seed).train()

    def model_step(self, pixels: torch.Tensor, sample: bool) -> dict[str, torch.Tensor]:
        """Loss terms and PSNR of a batch of grayscale pixels ``(B, 1, S, S)`` in [-1, 1]."""
        x = to_vae_channels(pixels, self.vae.config.in_channels)
        posterior = self.vae.encode(x).latent_dist
        z = posterior.sample() if sample else posterior.mean  # (B, 4, S/f, S/f)
        x_hat = self.vae.decode(z).sample  # (B, C, S, S)
        error = x_hat.float() - x.float()
        rec = error.abs().mean() if self.hparams.reconstruction == "l1" else error.pow(2).mean()
        kl = posterior.kl().mean() / z[0].numel()  # per latent element
        gray = from_vae_channels(x_hat.float()).clamp(-1, 1)
        return {
            "loss": rec + self.hparams.kl_weight * kl,
            "rec": rec,
            "kl": kl,
            "psnr": psnr(gray, pixels).mean(),
        }

    def _log_step(self, stage: str, batch: dict[str, Any], sample: bool) -> torch.Tensor:
        out = self.model_step(batch["pixel_values"], sample)
        size = batch["pixel_values"].shape[0]
        sync = stage != "train"
        for name, value in out.items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=name in ("loss", "psnr"),
                batch_size=size,
                sync_dist=sync,
            )
        return out["loss"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._log_step("train", batch, sample=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._log_step("val", batch, sample=False)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._log_step("test", batch, sample=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.vae.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def latent_std(self, batches: int) -> float:
        """Std of posterior samples over the first ``batches`` training batches."""
        total, total_sq, count = 0.0, 0.0, 0
        loader = self.trainer.datamodule.train_dataloader()
        for k, batch in enumerate(loader):
            if k == batches:
                break
            x = to_vae_channels(batch["pixel_values"].to(self.device), self.vae.config.in_channels)
            z = self.vae.encode(x).latent_dist.sample().double()
            total, total_sq, count = total + z.sum(), total_sq + z.pow(2).sum(), count + z.numel()
        mean = total / count
        return float((total_sq / count - mean**2).sqrt())

    def on_fit_end(self) -> None:
        """Set scaling_factor = 1 / latent std and save the VAE (rank 0)."""
        if self.hparams.export_dir is None or not self.trainer.is_global_zero:
            return
        self.vae.eval()
        std = self.latent_std(self.hparams.scale_batches)
        self.vae.register_to_config(scaling_factor=1.0 / std)
        self.vae.save_pretrained(self.hparams.export_dir, safe_serialization=True)
        rank_zero_info(
            f"VAE saved to {self.hparams.export_dir}: latent std {std:.4f}, "
            f"scaling_factor {1.0 / std:.4f}"
        )
