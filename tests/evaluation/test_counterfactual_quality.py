"""Counterfactual metrics against their definitions, on SynthCXR's true counterfactuals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prism_aug.data.prompts import EditSpec
from prism_aug.data.synthcxr import sample_patient
from prism_aug.data.synthcxr.counterfactual import counterfactual
from prism_aug.evaluation import ORACLE_ATTRIBUTES
from prism_aug.evaluation.counterfactual_quality import (
    EditSet,
    change_recovered,
    changed_area,
    dilate,
    edit_metrics,
    masked_psnr,
    masked_ssim,
    reference_rows,
)

SIZE = 32


class TruthJudge:
    """Sees Support Devices exactly on the ground-truth sources (by bytes), and nothing else."""

    attributes = ORACLE_ATTRIBUTES

    def __init__(self, with_devices: np.ndarray) -> None:
        self.with_devices = with_devices

    def predict_proba(self, images: np.ndarray) -> torch.Tensor:
        p = torch.zeros(len(images), len(self.attributes))
        j = self.attributes.index("Support Devices")
        for i, image in enumerate(images):
            p[i, j] = float(any(np.array_equal(image, d) for d in self.with_devices))
        return p


@pytest.fixture(scope="module")
def removals() -> EditSet:
    triples = [
        counterfactual(
            sample_patient(s),
            ["Pleural Effusion"],
            ["Chest Tube"],
            "remove",
            "Support Devices",
            SIZE,
        )
        for s in (1, 2, 3)
    ]
    sources = np.stack([t[0].image for t in triples])
    truths = np.stack([t[1].image for t in triples])
    masks = np.stack([t[2] for t in triples])
    return EditSet(EditSpec.parse("remove:Support Devices"), sources, truths, truths, masks)


def test_share_recovered_is_zero_for_nothing_and_one_for_the_truth(removals) -> None:
    e = removals
    assert np.allclose(change_recovered(e.sources, e.sources, e.truths, e.masks), 0.0)
    assert np.allclose(change_recovered(e.sources, e.truths, e.truths, e.masks), 1.0)
    halfway = ((e.sources.astype(np.float64) + e.truths) / 2).round().astype(np.uint8)
    share = change_recovered(e.sources, halfway, e.truths, e.masks)
    assert np.allclose(share, 0.5, atol=0.02)


def test_psnr_and_ssim_count_only_the_kept_pixels() -> None:
    a = np.full((1, 16, 16), 100, dtype=np.uint8)
    b = a.copy()
    b[0, :4, :4] = 110  # an error of 10 grey levels on 16 pixels
    keep = ~dilate(b != a, 1)
    assert masked_psnr(a, b, keep) == np.inf
    everywhere = np.ones_like(keep)
    assert masked_psnr(a, b, everywhere) == pytest.approx(10 * np.log10(255**2 / (100 * 16 / 256)))
    # An untouched image beside it halves the pooled error instead of making the mean infinite.
    pair_a, pair_b = np.concatenate([a, a]), np.concatenate([a, b])
    assert masked_psnr(pair_a, pair_b, np.ones_like(pair_a, dtype=bool)) == pytest.approx(
        10 * np.log10(255**2 / (100 * 16 / 512))
    )
    assert masked_ssim(a, a, everywhere)[0] == pytest.approx(1.0)


def test_the_truth_scores_perfectly_and_identity_scores_nothing(removals) -> None:
    judge = TruthJudge(removals.sources)
    truth = edit_metrics(judge, removals)
    assert truth["effectiveness"] == 1.0 and truth["change_recovered"] == pytest.approx(1.0)
    assert truth["psnr_outside"] == np.inf and truth["others_unchanged"] == 1.0
    assert edit_metrics(judge, reference_rows(removals)["ground truth"]) == truth
    identity = edit_metrics(judge, reference_rows(removals)["identity"])
    assert identity["effectiveness"] == 0.0 and identity["change_recovered"] == pytest.approx(0.0)
    assert identity["psnr_to_truth"] < truth["psnr_to_truth"]


def test_mask_blend_and_changed_area_of_additions(removals) -> None:
    e = removals
    blurred = np.clip(e.truths.astype(int) + 40, 0, 255).astype(np.uint8)  # wrong everywhere
    blend = reference_rows(EditSet(e.edit, e.sources, blurred, e.truths, e.masks))
    blended = blend["ground-truth mask blend"].counterfactuals
    assert np.array_equal(blended[~e.masks], e.sources[~e.masks])
    assert np.array_equal(blended[e.masks], blurred[e.masks])
    addition = EditSet(
        EditSpec.parse("add:Support Devices"), e.truths, e.sources, e.sources, e.masks
    )
    metrics = edit_metrics(TruthJudge(e.sources), addition)
    assert metrics["changed_area_ratio"] == pytest.approx(1.0)
    assert (changed_area(e.sources, e.truths) > 0).all()
