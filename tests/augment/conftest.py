"""Fixtures of the augment tests: a small random model, a random oracle, a 40-patient SynthCXR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from small_models import small_preset

from prism_aug.data.synthcxr import write_synthcxr
from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.export import save_pipeline
from prism_aug.evaluation.oracle import save_oracle
from prism_aug.evaluation.oracle_network import OracleNetwork


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a saved small model, a random-weight oracle and SynthCXR (40 patients)."""
    root = tmp_path_factory.mktemp("augment_assets")
    network = OracleNetwork("resnet18", model_kwargs={"in_chans": 1, "num_classes": 11})
    write_synthcxr(root / "synthcxr", 40, size=32, seed=0)
    return {
        "model": save_pipeline(build_components("tiny", seed=0, **small_preset()), root / "model"),
        "oracle": save_oracle(network, 32, root / "oracle"),
        "data": root / "synthcxr",
    }


@pytest.fixture(scope="session")
def write_config() -> Callable[..., Path]:
    """Writes an augment config on the small assets: ``write_config(path, assets, out,
    **sections)``; 4 steps, 2 candidates, chunks of 3, shards of 4; ``sections`` override."""
    return _write_config


def _write_config(path: Path, assets: dict[str, Path], out: Path, **sections: dict) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "enable_progress_bar": False,
        },
        "model": {
            "model": str(assets["model"]),
            "oracle": str(assets["oracle"]),
            "settings": {"steps": 4, "self_replace": [0.4, 0.8]},
        },
        "data": {"records": str(assets["data"] / "train.csv"), "out": str(out), "batch_size": 3},
        "writer": {"samples_per_shard": 4},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path.write_text(yaml.safe_dump(config))
    return path
