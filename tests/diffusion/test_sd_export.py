"""Exports load in StableDiffusionPipeline unchanged; load_components reads folders and ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from prism_aug.diffusion import build_components, load_components, save_pipeline


def _public(config: dict) -> dict:
    """A diffusers config without its bookkeeping keys (``_class_name``, versions)."""
    return {key: value for key, value in config.items() if not key.startswith("_")}


@pytest.fixture(scope="module")
def tiny():
    return build_components("tiny", seed=0)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pipeline(tiny, tmp_path_factory.mktemp("tiny"))


def test_export_is_safetensors_in_diffusers_layout(exported: Path) -> None:
    assert (exported / "model_index.json").is_file()
    for name in ("unet", "vae", "text_encoder"):
        assert list((exported / name).glob("*.safetensors")), name
    assert not list(exported.rglob("*.bin"))


def test_stable_diffusion_pipeline_samples_from_export(
    exported: Path, no_network, sample_exported
) -> None:
    pipeline, images = sample_exported(exported, "Chest X-ray showing Pleural Effusion")
    assert images.shape == (1, 64, 64, 3)
    assert np.isfinite(images).all()
    assert pipeline.safety_checker is None


def test_load_components_round_trips_the_export(tiny, exported: Path, no_network) -> None:
    loaded = load_components(exported)
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(tiny, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    assert _public(loaded.scheduler.config) == _public(tiny.scheduler.config)
    assert (
        loaded.tokenizer("a photo of a cat").input_ids
        == tiny.tokenizer("a photo of a cat").input_ids
    )


def test_load_components_builds_a_named_preset() -> None:
    loaded = load_components("tiny", seed=3)
    built = build_components("tiny", seed=3)
    assert torch.equal(next(loaded.unet.parameters()), next(built.unet.parameters()))


def test_folder_missing_a_subfolder_is_named(tmp_path: Path) -> None:
    for name in ("unet", "vae", "tokenizer"):
        (tmp_path / name).mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"lacks the subfolder\(s\) \['text_encoder', 'scheduler'\]"
    ):
        load_components(tmp_path)


# diffusers 0.42 still passes local_dir_use_symlinks, deprecated by huggingface_hub 2.4.
@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_uncached_hub_id_offline_says_so(monkeypatch: pytest.MonkeyPatch, no_network) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match=r"'prism-aug/no-such-model'.*offline mode is on"):
        load_components("prism-aug/no-such-model")
