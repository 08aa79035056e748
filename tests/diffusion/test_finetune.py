"""DiffusionFineTuner: the loss, caption dropout, freezing, EMA, latent cache, export, resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from diffusers import DDIMScheduler
from lightning.pytorch.callbacks import ModelCheckpoint

from prism_aug.diffusion.components import NOISE_SCHEDULE
from prism_aug.diffusion.finetune import drop_captions, warmup_cosine
from prism_aug.diffusion.loss import denoising_loss, denoising_target, loss_weights


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_loss_is_the_definition(prediction_type: str) -> None:
    scheduler = DDIMScheduler.from_config({**NOISE_SCHEDULE, "prediction_type": prediction_type})
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    prediction = torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    abar = scheduler.alphas_cumprod[t].view(3, 1, 1, 1)
    expected_target = (
        eps if prediction_type == "epsilon" else abar.sqrt() * eps - (1 - abar).sqrt() * x0
    )
    target = denoising_target(scheduler, x0, eps, t)
    torch.testing.assert_close(target, expected_target)
    unweighted = denoising_loss(prediction, target, loss_weights(scheduler, t, None))
    torch.testing.assert_close(unweighted, ((prediction - expected_target) ** 2).mean())
    snr = (abar / (1 - abar)).flatten()
    gamma = 5.0
    w = torch.clamp(snr, max=gamma) / (snr if prediction_type == "epsilon" else snr + 1)
    weighted = denoising_loss(prediction, target, loss_weights(scheduler, t, gamma))
    per_sample = ((prediction - expected_target) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(weighted, (w * per_sample).mean())


def test_unknown_prediction_type_is_refused() -> None:
    scheduler = DDIMScheduler.from_config({**NOISE_SCHEDULE, "prediction_type": "sample"})
    with pytest.raises(ValueError, match="epsilon"):
        denoising_target(
            scheduler, torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), torch.tensor([1])
        )


def test_caption_dropout_rate() -> None:
    captions = ["Chest X-ray showing Pleural Effusion"] * 20_000
    dropped = drop_captions(captions, 0.1, torch.Generator().manual_seed(0))
    rate = np.mean([c == "" for c in dropped])
    assert abs(rate - 0.1) < 0.01
    assert set(dropped) == {"", captions[0]}
    assert drop_captions(captions[:10], 0.0) == captions[:10]


def test_warmup_then_cosine() -> None:
    assert warmup_cosine(0, 10, 110, "cosine") == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110, "cosine") == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, "cosine") == pytest.approx(0.5)
    assert warmup_cosine(110, 10, 110, "cosine") == pytest.approx(0.0)
    assert warmup_cosine(60, 10, 110, "constant") == 1.0


def _one_backward(module) -> torch.Tensor:
    batch = {
        "pixel_values": torch.rand(2, 1, 32, 32) * 2 - 1,
        "caption": ["Normal", "Cardiomegaly"],
    }
    loss = module.training_step(batch, 0)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("train_text_encoder", [False, True])
def test_vae_frozen_and_text_encoder_by_option(train_text_encoder: bool, small_module) -> None:
    module = small_module(train_text_encoder=train_text_encoder, ema_decay=None)
    module.log = lambda *args, **kwargs: None  # no trainer attached
    _one_backward(module)
    assert all(p.grad is not None for p in module.unet.parameters())
    assert all(not p.requires_grad and p.grad is None for p in module.vae.parameters())
    text_grads = [p.grad is not None for p in module.text_encoder.parameters()]
    assert any(text_grads) if train_text_encoder else not any(text_grads)
    trained = {id(p) for p in module.trained_parameters()}
    assert all(id(p) in trained for p in module.unet.parameters())
    assert any(id(p) in trained for p in module.text_encoder.parameters()) == train_text_encoder
    assert not module.vae.training


def test_plain_attention_trains_as_the_default_does(small_module) -> None:
    """ "plain" swaps the UNet's processors and the text encoder's attention for CPU-faster
    kernels of the same function: same loss, same gradients."""
    modules = {
        attention: small_module(train_text_encoder=True, ema_decay=None, attention=attention)
        for attention in ("default", "plain")
    }
    modules["plain"].load_state_dict(modules["default"].state_dict())
    assert modules["plain"].text_encoder.config._attn_implementation == "eager"
    losses = {}
    for attention, module in modules.items():
        module.log = lambda *args, **kwargs: None  # no trainer attached
        module.noise_generator = torch.Generator().manual_seed(0)
        torch.manual_seed(0)  # the batch's pixels
        losses[attention] = _one_backward(module)
    torch.testing.assert_close(losses["plain"], losses["default"])
    for plain, default in zip(
        modules["plain"].trained_parameters(), modules["default"].trained_parameters(), strict=True
    ):
        torch.testing.assert_close(plain.grad, default.grad, rtol=1e-4, atol=1e-6)


class _Record(L.Callback):
    """Record the EMA and trained weights after each optimizer step (and EMA update)."""

    def __init__(self) -> None:
        self.ema: list[list[torch.Tensor]] = []
        self.weights: list[list[torch.Tensor]] = []
        self.start_step: int | None = None
        self.start_ema: list[torch.Tensor] | None = None

    def on_train_start(self, trainer, module) -> None:
        self.start_step = trainer.global_step
        self.start_ema = [p.clone() for p in module.ema.shadow_params]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.ema.append([p.clone() for p in module.ema.shadow_params])
        self.weights.append([p.detach().clone() for p in module.trained_parameters()])


def test_ema_update_is_the_definition(
    synthcxr_32: Path, tmp_path: Path, small_datamodule, small_module, small_trainer
) -> None:
    """theta_ema_n = beta_n theta_ema_(n-1) + (1 - beta_n) theta_n, with diffusers' warm-up
    beta_n = min(decay, (1 + k) / (10 + k)), k = n - 1 updates before: 0 (a copy), then 2/11."""
    record = _Record()
    module = small_module(ema_decay=0.999)
    small_trainer(tmp_path, callbacks=[record]).fit(module, small_datamodule(synthcxr_32))
    assert len(record.ema) == 2
    for ema, theta in zip(record.ema[0], record.weights[0], strict=True):
        torch.testing.assert_close(ema, theta)
    beta = 2 / 11
    for ema, before, theta in zip(record.ema[1], record.ema[0], record.weights[1], strict=True):
        torch.testing.assert_close(ema, beta * before + (1 - beta) * theta)


def test_latent_cache_is_written_once_and_reused(
    synthcxr_32: Path, tmp_path: Path, small_datamodule, small_module, small_trainer
) -> None:
    cache = tmp_path / "cache"
    calls = []

    def counting(module):  # count the VAE encoder's calls
        encode = module.vae.encode

        def wrapped(x):
            calls.append(x.shape[0])
            return encode(x)

        module.vae.encode = wrapped
        return module

    datamodule = small_datamodule(synthcxr_32, latent_cache=str(cache))
    datamodule.setup()
    n_train, n_valid = len(datamodule.datasets["train"]), len(datamodule.datasets["valid"])
    trainer = small_trainer(
        tmp_path, max_steps=-1, max_epochs=2, limit_train_batches=2, limit_val_batches=1.0
    )
    trainer.fit(counting(small_module()), datamodule)
    assert trainer.current_epoch == 2
    assert sum(calls) == n_train + n_valid  # each image once: nothing at the second epoch
    folders = sorted(p.parent for p in cache.glob("*/index.json"))
    assert len(folders) == 2
    counts = sorted(json.loads((f / "index.json").read_text())["count"] for f in folders)
    assert counts == sorted([n_train, n_valid])

    calls.clear()
    trainer = small_trainer(tmp_path, max_steps=2, limit_val_batches=1.0)
    trainer.fit(counting(small_module()), small_datamodule(synthcxr_32, latent_cache=str(cache)))
    assert calls == []  # the same VAE, resolution and records: read from disk


def test_a_fit_trains_alike_whether_it_builds_the_cache_or_finds_it(
    synthcxr_32: Path, tmp_path: Path, small_datamodule, small_module, small_trainer
) -> None:
    """Building the cache must not draw from the global RNG, which shuffles the training data:
    a fresh clone and a rerun of the same config and seed train the same model."""
    weights = []
    for _ in range(2):  # the first fit builds the cache, the second reads it
        L.seed_everything(0)
        module = small_module(ema_decay=None)
        trainer = small_trainer(tmp_path, max_steps=3)
        trainer.fit(module, small_datamodule(synthcxr_32, latent_cache=str(tmp_path / "c")))
        weights.append([p.detach().clone() for p in module.trained_parameters()])
    for built, found in zip(*weights, strict=True):
        assert torch.equal(built, found)


def test_short_fit_exports_a_pipeline(
    synthcxr_32, tmp_path, small_datamodule, small_module, small_trainer, sample_exported
) -> None:
    export = tmp_path / "model"
    module = small_module(
        export_dir=str(export), sample_every_n_steps=2, sample_seeds=[0, 1], sample_steps=2
    )
    small_trainer(tmp_path).fit(module, small_datamodule(synthcxr_32))
    assert (tmp_path / "samples" / "step_000002.png").is_file()
    pipeline, images = sample_exported(export, "Chest X-ray showing Cardiomegaly")
    assert images.shape == (1, 32, 32, 3)
    assert np.isfinite(images).all()
    # The export holds the EMA weights, not the last trained ones.
    exported = dict(pipeline.unet.named_parameters())
    ema = dict(
        zip([n for n, _ in module.unet.named_parameters()], module.ema.shadow_params, strict=False)
    )
    name = next(iter(exported))
    torch.testing.assert_close(exported[name], ema[name])


@pytest.fixture
def last_checkpoint(
    synthcxr_32: Path, tmp_path: Path, small_datamodule, small_module, small_trainer
) -> Path:
    """last.ckpt of a finished two-step run of the small preset (seed 0)."""
    checkpoints = tmp_path / "checkpoints"
    first = small_trainer(
        tmp_path,
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=checkpoints, save_last=True, save_top_k=0)],
    )
    first.fit(small_module(), small_datamodule(synthcxr_32))
    return checkpoints / "last.ckpt"


@pytest.fixture
def resume(
    last_checkpoint: Path, synthcxr_32: Path, tmp_path: Path, small_datamodule, small_trainer
) -> Callable[..., L.Trainer]:
    """``resume(module, callbacks)``: a third step from last_checkpoint; returns the trainer."""

    def fit(module, callbacks=()) -> L.Trainer:
        trainer = small_trainer(tmp_path, max_steps=3, callbacks=list(callbacks))
        trainer.fit(module, small_datamodule(synthcxr_32), ckpt_path=last_checkpoint)
        return trainer

    return fit


def test_resume_continues_the_run(last_checkpoint: Path, resume, small_module) -> None:
    saved = torch.load(last_checkpoint, weights_only=False)
    record = _Record()
    second = resume(small_module(), [record])
    assert record.start_step == 2
    for resumed, stored in zip(record.start_ema, saved["ema"]["shadow_params"], strict=True):
        torch.testing.assert_close(resumed, stored)
    assert second.global_step == 3


def test_resume_refuses_a_checkpoint_trained_with_another_vae(resume, small_module) -> None:
    """A VAE retrained after a finished run (new renders, `make finetune` again) must not
    resume that run: its UNet learnt the old VAE's latents."""
    other_vae = small_module(seed=1)  # the preset draws other random weights
    with pytest.raises(ValueError, match="another VAE"):
        resume(other_vae)


@pytest.mark.parametrize("config", ["synthcxr_tiny.yaml", "chexpert_sd15.yaml"])
def test_the_configs_checkpoint_during_an_epoch(
    config, synthcxr_32: Path, tmp_path: Path, small_datamodule, small_module, small_trainer
) -> None:
    # The configs' ModelCheckpoint, its step interval shortened to 1, validating every step:
    # a run killed mid-epoch (the tiny model's 1600 steps take hours on some CPUs) must
    # leave last.ckpt to resume from.
    text = (Path(__file__).parents[2] / "configs" / "finetune" / config).read_text()
    callbacks = yaml.safe_load(text)["trainer"]["callbacks"]
    callback = next(c for c in callbacks if c["class_path"].endswith("ModelCheckpoint"))
    saved = tmp_path / "saved"
    args = {**callback["init_args"], "dirpath": saved}
    if "every_n_train_steps" in args:
        args["every_n_train_steps"] = 1
    seen = []

    class LookForLast(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            seen.append((saved / "last.ckpt").exists())

    trainer = small_trainer(
        tmp_path, max_steps=3, enable_checkpointing=True, val_check_interval=1,
        limit_val_batches=1, callbacks=[ModelCheckpoint(**args), LookForLast()],
    )  # fmt: skip
    trainer.fit(small_module(), small_datamodule(synthcxr_32, batch_size=2))
    assert trainer.num_training_batches > 3  # all within the first epoch
    assert seen == [False, True, True]


def test_image_size_must_match_the_model(
    synthcxr_32: Path, tmp_path: Path, small_datamodule, small_module, small_trainer
) -> None:
    datamodule = small_datamodule(synthcxr_32, image_size=64)
    with pytest.raises(ValueError, match=r"data\.image_size=32"):
        small_trainer(tmp_path).fit(small_module(), datamodule)
