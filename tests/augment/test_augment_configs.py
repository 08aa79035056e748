"""The augment configs parse through LightningCLI, with overrides and composed settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prism_aug.augment.cli import run_augment_cli

CONFIGS = Path(__file__).parents[2] / "configs" / "augment"


@pytest.mark.parametrize(
    ("config", "steps"), [("synthcxr_tiny.yaml", 20), ("chexpert_sd15.yaml", 50)]
)
def test_config_parses_with_overrides(config: str, steps: int, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        run_augment_cli(["--config", str(CONFIGS / config), "--data.plan.seed=3", "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["plan"]["seed"] == 3
    assert "out" not in printed["writer"]  # linked from data.out: given once
    assert printed["model"]["settings"]["steps"] == steps  # the tiny model's, or PRISM's
    assert printed["model"]["settings"]["images_per_batch"] == printed["data"]["batch_size"]
