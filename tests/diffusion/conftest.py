"""Fixtures of the fine-tuning tests: a 32 px SynthCXR folder and a shrunken tiny model."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from small_models import small_preset

from prism_aug.data.synthcxr import write_synthcxr
from prism_aug.diffusion.data import CXRDataModule
from prism_aug.diffusion.finetune import DiffusionFineTuner

# The tiny preset shrunk further: 32 px images, latents (4, 16, 16), UNet 8/16 channels.
SMALL: dict[str, Any] = small_preset(text_heads=2)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def sample_exported() -> Callable[[Path, str], tuple[StableDiffusionPipeline, np.ndarray]]:
    """Load an exported folder with StableDiffusionPipeline and draw one image in 2 steps."""

    def sample(folder: Path, prompt: str) -> tuple[StableDiffusionPipeline, np.ndarray]:
        pipeline = StableDiffusionPipeline.from_pretrained(folder)
        pipeline.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(0)
        images = pipeline(prompt, num_inference_steps=2, output_type="np", generator=generator)
        return pipeline, images.images

    return sample


@pytest.fixture(scope="session")
def synthcxr_32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SynthCXR folder of 40 patients at 32 px (train.csv, valid.csv, test.csv)."""
    out = tmp_path_factory.mktemp("data") / "synthcxr"
    write_synthcxr(out, 40, size=32, seed=0)
    return out


def _small_datamodule(folder: Path, **kwargs: Any) -> CXRDataModule:
    """The data module over a ``synthcxr_32`` folder, batches of 4."""
    defaults = {
        "train_csv": str(folder / "train.csv"),
        "val_csv": str(folder / "valid.csv"),
        "test_csv": str(folder / "test.csv"),
        "image_size": 32,
        "batch_size": 4,
    }
    return CXRDataModule(**{**defaults, **kwargs})


def _small_module(**kwargs: Any) -> DiffusionFineTuner:
    """A DiffusionFineTuner over the shrunken tiny preset; no export unless asked."""
    defaults = {"model": "tiny", "preset_overrides": SMALL, "export_dir": None, "lr": 1e-3}
    return DiffusionFineTuner(**{**defaults, **kwargs})


def _small_trainer(root: Path, **kwargs: Any) -> L.Trainer:
    """A quiet CPU trainer: no logger, progress bar, summary or sanity check."""
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": 2,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "default_root_dir": str(root),
    }
    return L.Trainer(**{**defaults, **kwargs})


@pytest.fixture
def small_datamodule() -> Callable[..., CXRDataModule]:
    """``small_datamodule(folder, **overrides)``: the data module over ``synthcxr_32``."""
    return _small_datamodule


@pytest.fixture
def small_module() -> Callable[..., DiffusionFineTuner]:
    """``small_module(**overrides)``: a DiffusionFineTuner over the shrunken tiny preset."""
    return _small_module


@pytest.fixture
def small_trainer() -> Callable[..., L.Trainer]:
    """``small_trainer(root, **overrides)``: a quiet CPU trainer."""
    return _small_trainer
