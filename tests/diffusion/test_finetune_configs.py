"""The fine-tuning configs parse through LightningCLI, and --model.lr style overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prism_aug.diffusion.cli import run_finetune_cli, run_vae_cli

CONFIGS = Path(__file__).parents[2] / "configs" / "finetune"


@pytest.mark.parametrize(
    ("runner", "config"),
    [
        (run_finetune_cli, "synthcxr_tiny.yaml"),
        (run_finetune_cli, "chexpert_sd15.yaml"),
        (run_vae_cli, "synthcxr_tiny_vae.yaml"),
    ],
)
def test_config_parses_with_overrides(runner, config: str, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        runner(["fit", "--config", str(CONFIGS / config), "--model.lr=0.00042", "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["lr"] == 0.00042
    assert printed["data"]["image_size"] in (64, 512)
