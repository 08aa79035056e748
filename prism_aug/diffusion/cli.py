"""LightningCLI entry points of the two fine-tuning stages (wired as ``prism-aug`` commands).

    prism-aug finetune-vae fit --config configs/finetune/synthcxr_tiny_vae.yaml
    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml [--model.lr=3e-4]
    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml \
        --ckpt_path outputs/runs/synthcxr_tiny/checkpoints/last.ckpt      # resume
    prism-aug finetune-quality --model outputs/models/synthcxr_tiny --oracle outputs/models/oracle

Each accepts LightningCLI's ``fit``, ``validate`` and ``test`` subcommands and its
``--key=value`` overrides; the resolved config is saved in the run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.pytorch.cli import LightningCLI

from prism_aug.diffusion.data import CXRDataModule
from prism_aug.diffusion.finetune import DiffusionFineTuner
from prism_aug.diffusion.vae import VAETrainer

SUBCOMMANDS: tuple[str, ...] = ("fit", "validate", "test")


class _CLI(LightningCLI):
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


def _quality_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Prompt accuracy and Frechet distance, judged by the oracle."
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=str, default="outputs/models/synthcxr_tiny")
    parser.add_argument("--oracle", type=str, default="outputs/models/oracle")
    parser.add_argument("--real_csv", type=str, default="data/synthcxr_finetune/test.csv")
    parser.add_argument("--samples_per_condition", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=3.0, help="guidance scale")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("outputs/quality/synthcxr_tiny.json"))
    return parser


def run_quality_cli(args: Sequence[str] | None = None) -> None:
    """``prism-aug finetune-quality --model <folder> --oracle <folder>``: print and save."""
    from prism_aug.diffusion.loading import load_components
    from prism_aug.diffusion.quality import evaluate, write_report

    # The oracle lives one layer up (evaluation); only this command runner reaches for it.
    from prism_aug.evaluation.oracle import load_oracle

    cfg = _quality_parser().parse_args(None if args is None else list(args))
    report = evaluate(
        load_oracle(cfg.oracle),
        load_components(cfg.model),
        cfg.real_csv,
        cfg.samples_per_condition,
        cfg.steps,
        cfg.guidance,
        cfg.batch_size,
    )
    write_report(report, cfg.out)
    print(report.markdown())
    print(f"saved {cfg.out}")
