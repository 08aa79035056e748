"""The generator's quality check: Frechet distance and prompt accuracy against definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from prism_aug.evaluation import generation_quality
from prism_aug.evaluation.generation_quality import (
    frechet_distance,
    prompt_accuracy,
    prompt_conditions,
)
from prism_aug.evaluation.generation_quality_cli import _quality_parser, report_path


def reference_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook form: tr(sqrtm(S_x S_y)) as the sum of sqrt of eig(S_x S_y)."""
    mu = x.mean(0) - y.mean(0)
    s_x, s_y = np.cov(x.T), np.cov(y.T)
    eig = np.linalg.eigvals(s_x @ s_y).real.clip(min=0)
    return float(mu @ mu + np.trace(s_x) + np.trace(s_y) - 2 * np.sqrt(eig).sum())


def test_frechet_distance_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    y = rng.normal(loc=0.5, size=(300, 6)) @ rng.normal(size=(6, 6))
    got = frechet_distance(torch.from_numpy(x), torch.from_numpy(y))
    assert got == pytest.approx(reference_frechet(x, y), rel=1e-6)
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0, abs=1e-6)


class BrightnessJudge:
    """Calls Pleural Effusion when an image is bright, and never calls anything else."""

    attributes = ("Support Devices", "Pleural Effusion", "Cardiomegaly")

    def predict_proba(self, images: np.ndarray) -> torch.Tensor:
        p = torch.zeros(len(images), len(self.attributes))
        p[:, 1] = torch.from_numpy(images.reshape(len(images), -1).mean(1) > 127).float()
        return p


def test_prompt_accuracy_counts_the_judges_calls(monkeypatch) -> None:
    def draw(components, prompts, seeds, *args) -> np.ndarray:
        """A perfect generator of effusions: bright exactly when the prompt asks for one."""
        return np.stack(
            [np.full((8, 8), 255 * ("Pleural Effusion" in p), np.uint8) for p in prompts]
        )

    monkeypatch.setattr(generation_quality, "sample_images", draw)
    accuracy, per_condition = prompt_accuracy(BrightnessJudge(), None, n=3)
    # Effusion is always right; the others are right only on the half where they are absent.
    assert accuracy == {"Support Devices": 0.5, "Pleural Effusion": 1.0, "Cardiomegaly": 0.5}
    assert len(per_condition) == len(prompt_conditions()) == 8
    normal = per_condition["Normal chest X-ray with no significant findings"]
    assert normal == {"Support Devices": 1.0, "Pleural Effusion": 1.0, "Cardiomegaly": 1.0}


def test_prompt_accuracy_needs_the_judged_outputs() -> None:
    class Blind(BrightnessJudge):
        attributes = ("Pneumothorax",)

    with pytest.raises(ValueError, match="Pleural Effusion"):
        prompt_accuracy(Blind(), None, n=1)


def test_report_is_named_after_the_model_unless_given() -> None:
    """Judging a candidate model must not overwrite the default model's report."""
    assert report_path("/tmp/runs/r2", None) == Path("outputs/quality/r2.json")
    assert report_path("outputs/models/synthcxr_tiny", None) == Path(
        "outputs/quality/synthcxr_tiny.json"
    )
    assert report_path("outputs/models/synthcxr_tiny", Path("q.json")) == Path("q.json")
    parsed = _quality_parser().parse_args(["--model", "m", "--out", "a/b.json"])
    assert parsed.out == Path("a/b.json")
    assert _quality_parser().parse_args(["--model", "m"]).out is None
