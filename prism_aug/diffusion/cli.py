"""LightningCLI entry points of the two fine-tuning stages (wired as ``prism-aug`` commands).

    prism-aug finetune-vae fit --config configs/finetune/synthcxr_tiny_vae.yaml
    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml [--model.lr=3e-4]
    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml \
        --ckpt_path outputs/runs/synthcxr_tiny/checkpoints/last.ckpt      # resume

Each accepts LightningCLI's ``fit``, ``validate`` and ``test`` subcommands and its
``--key=value`` overrides; the resolved config is saved in the run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.cli import LightningCLI

from prism_aug.diffusion.data import CXRDataModule
from prism_aug.diffusion.finetune import DiffusionFineTuner
from prism_aug.diffusion.vae import VAETrainer
from prism_aug.lightning_cli import PrismCLI

SUBCOMMANDS: tuple[str, ...] = ("fit", "validate", "test")


class _CLI(PrismCLI):
    """LightningCLI with only the subcommands the stages support."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: LightningCLI.subcommands()[name] for name in SUBCOMMANDS}


class _VAECLI(_CLI):
    """After ``fit``, test the exported VAE on the test split (reconstruction PSNR)."""

    def after_fit(self) -> None:
        if "test" in self.datamodule.datasets:
            self.trainer.test(self.model, datamodule=self.datamodule)


def _run(cli: type[LightningCLI], model: type, args: Sequence[str] | None) -> None:
    kwargs: dict[str, Any] = {"save_config_kwargs": {"overwrite": True}}
    cli(model, CXRDataModule, args=None if args is None else list(args), **kwargs)


def run_finetune_cli(args: Sequence[str] | None = None) -> None:
    """``prism-aug finetune <fit|validate|test> --config ...``: the UNet stage."""
    _run(_CLI, DiffusionFineTuner, args)


def run_vae_cli(args: Sequence[str] | None = None) -> None:
    """``prism-aug finetune-vae <fit|validate|test> --config ...``: the tiny VAE stage."""
    _run(_VAECLI, VAETrainer, args)
