"""Fine-tune a Stable Diffusion UNet on captioned radiographs (PRISM stage 1).

    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml
    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml --model.lr=3e-4
    prism-aug finetune fit --config configs/finetune/chexpert_sd15.yaml   # 4 GPUs, DDP

The UNet learns to predict the noise (or v) of noised VAE latents given the caption's CLIP
embedding; the VAE is frozen, the text encoder frozen unless ``train_text_encoder``. An EMA
of the trained weights is what gets sampled and exported (``save_pipeline``, loadable by
``StableDiffusionPipeline.from_pretrained``) when the fit ends.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from diffusers import AutoencoderKL
from diffusers.models.attention_processor import AttnProcessor
from diffusers.training_utils import EMAModel
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.loggers import WandbLogger

from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.channels import to_vae_channels
from prism_aug.diffusion.components import SDComponents
from prism_aug.diffusion.data import CXRDataModule
from prism_aug.diffusion.export import save_pipeline
from prism_aug.diffusion.latent_cache import vae_fingerprint
from prism_aug.diffusion.loading import load_components
from prism_aug.diffusion.loss import denoising_loss, denoising_target, loss_weights
from prism_aug.diffusion.presets import PRESETS
from prism_aug.diffusion.sampling import SYNTHCXR_FINDINGS, save_switch_grid
from prism_aug.diffusion.tokenizer import prompt_ids

LR_SCHEDULES: tuple[str, ...] = ("cosine", "constant")
ATTENTION_CHOICES: tuple[str, ...] = ("default", "plain")


def _check_choice(key: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ValueError(f"model.{key}={value!r} is not valid; choose one of {list(valid)}")
    return value


def drop_captions(
    captions: Sequence[str], p: float, generator: torch.Generator | None = None
) -> list[str]:
    """Replace each caption by "" with probability p (classifier-free guidance training)."""
    drop = torch.rand(len(captions), generator=generator) < p
    return ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """LR multiplier: linear warm-up from 0 over warmup_steps, then cosine to 0 or constant."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def load_model(
    model: str, vae: str | None, preset_overrides: dict[str, Any] | None, seed: int
) -> SDComponents:
    """The components of ``model`` (folder, preset or hub id), with a trained VAE swapped in.

    Raises:
        ValueError: preset_overrides for a model that is not a preset, or a VAE whose latent
            channels differ from the UNet's input.
    """
    if preset_overrides:
        if model not in PRESETS:
            raise ValueError(
                f"model.preset_overrides applies to presets {sorted(PRESETS)}, not {model!r}"
            )
        components = build_components(model, seed=seed, **preset_overrides)
    else:
        components = load_components(model, seed=seed)
    if vae is not None:
        components.vae = AutoencoderKL.from_pretrained(vae)
        latent, expected = components.vae.config.latent_channels, components.unet.config.in_channels
        if latent != expected:
            raise ValueError(
                f"model.vae={vae!r} has {latent} latent channels, the UNet takes {expected}"
            )
    return components


class DiffusionFineTuner(L.LightningModule):
    """Noise-prediction fine-tuning of an SD UNet, with EMA, caption dropout and sample grids.

    Args:
        model: the model to fine-tune: a diffusers folder, a preset name ("tiny", "sd15") or
            a hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``).
        vae: folder of an ``AutoencoderKL`` that replaces the model's VAE (the tiny preset's
            VAE trained by ``prism-aug finetune-vae``); None keeps the model's.
        preset_overrides: hyper-parameters of the preset (``{"unet_channels": [16, 32]}``).
        seed: weight seed of a preset.
        optimizer: builds the optimizer from the trainable parameters (LightningCLI's
            ``--model.optimizer``); called with ``lr``.
        lr: peak learning rate.
        lr_warmup_steps: optimizer steps of linear warm-up.
        lr_schedule: after warm-up, "cosine" (to 0 at the last step) or "constant".
        train_text_encoder: train the text encoder with the UNet (PRISM freezes it).
        caption_dropout: probability that a training caption is replaced by "", so the
            unconditional embedding that guidance and null-text inversion use is learnt.
        ema_decay: maximum decay of the EMA of the trained weights (diffusers' EMAModel, with
            its (1 + n) / (10 + n) warm-up); None trains without EMA and exports the weights.
        snr_gamma: min-SNR-gamma loss weighting (5.0 in Hang et al. 2023); None: unweighted.
        gradient_checkpointing: recompute UNet activations in backward (less memory).
        attention: "default" keeps diffusers' processor and the text encoder's SDPA; "plain"
            installs the plain ``AttnProcessor`` in the UNet and eager attention in the text
            encoder, faster on CPU for few heads (DESIGN.md: 2.1x on the tiny UNet; SDPA's
            CPU backward made the tiny text encoder's step 1.8x slower than eager).
        sample_every_n_steps: save and log a sample grid every N optimizer steps and at the
            end of the fit; 0: no grids.
        sample_seeds: the grid's columns; fixed seeds, so grids compare across steps.
        sample_steps: DDIM steps of the grid.
        sample_guidance: guidance scale of the grid.
        sample_batch_size: grid images per pipeline call; rank 0 draws them beside the
            training state (SD at 512 px: 28 images at once decode in an estimated 22 GB).
        grid_findings: the grid's rows besides the normal caption, each finding switched on.
        export_dir: folder the EMA model is saved to when the fit ends; None: no export.
    """

    def __init__(
        self,
        model: str = "tiny",
        vae: str | None = None,
        preset_overrides: dict[str, Any] | None = None,
        seed: int = 0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr: float = 1e-4,
        lr_warmup_steps: int = 0,
        lr_schedule: str = "cosine",
        train_text_encoder: bool = False,
        caption_dropout: float = 0.1,
        ema_decay: float | None = 0.9999,
        snr_gamma: float | None = None,
        gradient_checkpointing: bool = False,
        attention: str = "default",
        sample_every_n_steps: int = 0,
        sample_seeds: Sequence[int] = (0, 1, 2, 3),
        sample_steps: int = 20,
        sample_guidance: float = 5.0,
        sample_batch_size: int = 8,
        grid_findings: Sequence[str] = SYNTHCXR_FINDINGS,
        export_dir: str | None = "outputs/models/synthcxr_tiny",
    ) -> None:
        super().__init__()
        _check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        _check_choice("attention", attention, ATTENTION_CHOICES)
        if not 0.0 <= caption_dropout <= 1.0:
            raise ValueError(f"model.caption_dropout must be in [0, 1], got {caption_dropout}")
        if sample_batch_size < 1:
            raise ValueError(f"model.sample_batch_size must be >= 1, got {sample_batch_size}")
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer = optimizer
        components = load_model(model, vae, preset_overrides, seed)
        self.unet, self.vae, self.text_encoder = (
            components.unet,
            components.vae,
            components.text_encoder,
        )
        self.tokenizer, self.scheduler = components.tokenizer, components.scheduler
        self.vae.requires_grad_(False)
        self.text_encoder.requires_grad_(train_text_encoder)
        self.train()  # presets and from_pretrained give eval-mode networks
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        if attention == "plain":
            self.unet.set_attn_processor(AttnProcessor())
            self.text_encoder.set_attn_implementation("eager")
        self.ema: EMAModel | None = None
        if ema_decay is not None:
            self.ema = EMAModel(self.trained_parameters(), ema_decay, foreach=True)
        self._last_grid_step = -1
        self.noise_generator: torch.Generator | None = None  # per rank, from on_train_start

    # -- the model ------------------------------------------------------------------------

    @property
    def components(self) -> SDComponents:
        """The model as it trains (not the EMA), sharing this module's networks."""
        return SDComponents(self.unet, self.vae, self.text_encoder, self.tokenizer, self.scheduler)

    @functools.cached_property
    def vae_hash(self) -> str:
        """The frozen VAE's fingerprint, hashed once: it keys the latent cache and is checked
        on resume (SD's VAE is 335 MB to hash at every checkpoint otherwise)."""
        return vae_fingerprint(self.vae)

    def trained_parameters(self) -> list[torch.nn.Parameter]:
        """The UNet's parameters, then the text encoder's when it trains."""
        params = list(self.unet.parameters())
        if self.hparams.train_text_encoder:
            params += list(self.text_encoder.parameters())
        return params

    def train(self, mode: bool = True) -> DiffusionFineTuner:
        """Lightning calls train() on the whole module: frozen networks stay in eval."""
        super().train(mode)
        self.vae.eval()
        if not self.hparams.train_text_encoder:
            self.text_encoder.eval()
        return self

    @torch.no_grad()
    def encode_posterior(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grayscale pixels ``(B, 1, S, S)`` in [-1, 1] -> posterior mean and std
        ``(B, 4, S/f, S/f)``, unscaled (the latent cache stores these)."""
        pixels = to_vae_channels(pixels.to(self.vae.device), self.vae.config.in_channels)
        posterior = self.vae.encode(pixels).latent_dist
        return posterior.mean, posterior.std

    def latents(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_0: a posterior sample times the VAE's scaling factor, ``(B, 4, S/f, S/f)``."""
        if "latent_mean" in batch:
            mean, std = batch["latent_mean"], batch["latent_std"]
        else:
            mean, std = self.encode_posterior(batch["pixel_values"])
        noise = torch.randn(mean.shape, generator=generator, device="cpu").to(mean)
        return (mean + std * noise) * self.vae.config.scaling_factor

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        """Captions -> CLIP hidden states ``(B, 77, D)``; no graph when the encoder is frozen."""
        ids = prompt_ids(self.tokenizer, captions).to(self.device)
        with torch.set_grad_enabled(self.hparams.train_text_encoder and self.training):
            return self.text_encoder(ids)[0]

    def model_step(
        self, x0: torch.Tensor, c: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The denoising loss (``loss.py``) of one batch.

        Args:
            x0: scaled latents ``(B, 4, h, w)``.
            c: text embeddings ``(B, 77, D)``.
            generator: draws eps and t (validation fixes it; training draws from the rank's
                ``noise_generator``).
        """
        num_timesteps = self.scheduler.config.num_train_timesteps
        eps = torch.randn(x0.shape, generator=generator, device="cpu").to(x0)
        t = torch.randint(0, num_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
        x_t = self.scheduler.add_noise(x0, eps, t)
        prediction = self.unet(x_t, t, encoder_hidden_states=c).sample
        target = denoising_target(self.scheduler, x0, eps, t)
        return denoising_loss(
            prediction, target, loss_weights(self.scheduler, t, self.hparams.snr_gamma)
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        generator = self.noise_generator
        x0 = self.latents(batch, generator)
        captions = drop_captions(batch["caption"], self.hparams.caption_dropout, generator)
        loss = self.model_step(x0, self.encode_text(captions), generator)
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(batch_idx)  # same eps and t at every epoch
        x0 = self.latents(batch)
        loss = self.model_step(x0, self.encode_text(batch["caption"]), generator)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=x0.shape[0])
        return loss

    # -- optimisation ---------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer(self.trained_parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        hp = self.hparams
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, hp.lr_warmup_steps, total, hp.lr_schedule)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Step the optimizer, then the EMA (once per optimizer step, after accumulation)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.step(self.trained_parameters())

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Before fit: check the data's resolution and serve it from the latent cache.

        Runs before the trainer first builds the train loader (``configure_optimizers``
        counts its batches), so the cache is in place for the whole fit. The VAE goes to the
        training device first, so that each rank encodes its share there.
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "fit" or not isinstance(datamodule, CXRDataModule):
            return
        expected = self.unet.config.sample_size * self.components.vae_scale_factor
        if datamodule.hparams.image_size != expected:
            raise ValueError(
                f"data.image_size={datamodule.hparams.image_size} but the model samples "
                f"{expected} px images (UNet sample_size {self.unet.config.sample_size} x VAE "
                f"factor {self.components.vae_scale_factor}): set data.image_size={expected}"
            )
        self.vae.to(self.trainer.strategy.root_device)
        datamodule.attach_latent_cache(self.encode_posterior, self.vae_hash, self.trainer)

    def on_fit_start(self) -> None:
        if self.ema is not None:
            self.ema.to(self.device)

    def on_train_start(self) -> None:
        """Give this rank its own draws of noise, timesteps and caption dropout.

        ``seed_everything`` seeds every DDP rank alike, so with the global RNG all ranks
        would draw the same t and noise for their different images, and a batch of 8 x 4
        GPUs would hold 8 distinct timesteps, not 32. The seed also holds the step the run
        starts from (after a resume), so a resumed run draws afresh, reproducibly.
        """
        key = [torch.initial_seed(), self.global_rank, self.trainer.global_step]
        seed = int(np.random.SeedSequence(key).generate_state(1)[0])
        self.noise_generator = torch.Generator().manual_seed(seed)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vae_fingerprint"] = self.vae_hash
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose UNet learnt another VAE's latents (a VAE retrained since,
        or another model.vae): resuming it would export that UNet beside this VAE."""
        saved, current = checkpoint.get("vae_fingerprint"), self.vae_hash
        if saved is not None and saved != current:
            raise ValueError(
                f"the checkpoint to resume was trained with another VAE (fingerprint "
                f"{saved[:12]}, model.vae gives {current[:12]}): start a new run instead "
                "(leave out --ckpt_path, or delete the checkpoint)"
            )
        if self.ema is not None:
            if "ema" not in checkpoint:
                raise KeyError(
                    "the checkpoint has no 'ema' state; resume with model.ema_decay=null"
                )
            self.ema.load_state_dict(checkpoint["ema"])

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hparams.sample_every_n_steps
        step = self.trainer.global_step
        if every and step % every == 0 and self._last_grid_step != step:
            self.log_sample_grid()

    def on_fit_end(self) -> None:
        if self.hparams.sample_every_n_steps and self._last_grid_step != self.trainer.global_step:
            self.log_sample_grid()
        if self.hparams.export_dir is not None and self.trainer.is_global_zero:
            with self.ema_weights():
                save_pipeline(self.components, self.hparams.export_dir)

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """Context in which the trained networks hold the EMA weights (restored on exit)."""
        if self.ema is None:
            yield
            return
        parameters = self.trained_parameters()
        self.ema.store(parameters)
        self.ema.copy_to(parameters)
        try:
            yield
        finally:
            self.ema.restore(parameters)

    def log_sample_grid(self) -> None:
        """Sample the switch grid with the EMA weights; save it under the run folder and log it."""
        self._last_grid_step = step = self.trainer.global_step
        if not self.trainer.is_global_zero:
            return
        path = Path(self.trainer.default_root_dir) / "samples" / f"step_{step:06d}.png"
        hp = self.hparams
        with self.ema_weights():
            save_switch_grid(
                self.components,
                path,
                hp.grid_findings,
                hp.sample_seeds,
                hp.sample_steps,
                hp.sample_guidance,
                hp.sample_batch_size,
                bf16_autocast=self.trainer.precision == "bf16-mixed",  # as the fit runs
            )
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                rows = ", ".join(["normal", *hp.grid_findings])
                logger.log_image("samples", [str(path)], step=step, caption=[f"rows: {rows}"])
