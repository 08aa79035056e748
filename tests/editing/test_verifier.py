"""The verifier's accept and reject paths, with a classifier whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prism_aug.data.prompts import EditSpec
from prism_aug.editing.verifier import Verifier, judged_attribute, may_change


class QuadrantClassifier:
    """Sees Support Devices in the top-left quadrant, Pleural Effusion in the bottom half."""

    attributes = ("Support Devices", "Pleural Effusion", "Cardiomegaly")

    def predict_proba(self, images: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(images, dtype=torch.float32) / 255
        devices = x[:, :8, :8].mean((1, 2))
        effusion = x[:, 16:, :].mean((1, 2))
        return torch.stack([devices, effusion, torch.full_like(devices, 0.9)], dim=1)


def _image(devices: bool, effusion: bool, grey: int = 100) -> np.ndarray:
    image = np.full((32, 32), grey, dtype=np.uint8)
    image[:8, :8] = 230 if devices else 20
    image[16:, :] = 230 if effusion else 20
    return image


REMOVE = EditSpec.parse("remove:Support Devices")


def test_the_passing_candidate_with_the_smallest_change_is_chosen() -> None:
    source = _image(devices=True, effusion=True)
    candidates = np.stack(
        [
            _image(devices=True, effusion=True),  # no flip
            _image(devices=False, effusion=True, grey=140),  # flips, but changes more
            _image(devices=False, effusion=True),  # flips, minimal
            _image(devices=False, effusion=False),  # flips, and loses the effusion
        ]
    )
    (verdict,) = Verifier(QuadrantClassifier()).judge(source[None], candidates[None], [REMOVE])
    assert verdict.accepted and verdict.chosen == 2
    assert verdict.status == "accepted" and verdict.kept_or(0) == 2
    assert verdict.passed == (False, True, True, False)
    assert verdict.reason == ""
    assert verdict.source_scores["Support Devices"] > 0.5
    assert verdict.candidate_scores[2]["Support Devices"] < 0.5


def test_rejections_say_why() -> None:
    source = _image(devices=True, effusion=True)
    unchanged = np.stack([source, source])
    collateral = np.stack([_image(devices=False, effusion=False)] * 2)
    verdicts = Verifier(QuadrantClassifier()).judge(
        np.stack([source, source]), np.stack([unchanged, collateral]), [REMOVE, REMOVE]
    )
    assert [v.chosen for v in verdicts] == [-1, -1]
    assert verdicts[0].reason.startswith("no candidate lost Support Devices (best p=")
    assert verdicts[1].reason == (
        "every candidate that flipped Support Devices also changed ['Pleural Effusion']"
    )


def test_an_edit_the_classifier_already_sees_as_made_is_rejected() -> None:
    # The source's device is invisible to the classifier: every candidate would "flip",
    # and the least changed one (the source itself) would pass as a removal.
    source = _image(devices=False, effusion=True)
    candidates = np.stack([source, _image(devices=False, effusion=True, grey=110)])
    (verdict,) = Verifier(QuadrantClassifier()).judge(source[None], candidates[None], [REMOVE])
    assert not verdict.accepted and verdict.passed == (False, False)
    assert verdict.status == "rejected" and verdict.kept_or(1) == 1  # the fallback
    assert verdict.reason.startswith("the classifier already sees Support Devices absent")


def test_attributes_an_edit_may_change() -> None:
    assert judged_attribute(EditSpec.parse("add:Pacemaker"), QuadrantClassifier.attributes) == (
        "Support Devices"
    )
    assert "Central Line" in may_change(REMOVE)
    assert may_change(EditSpec.parse("remove:Pleural Effusion")) == {
        "Pleural Effusion",
        "No Finding",
    }
    assert may_change(EditSpec.parse("keep:Support Devices")) == frozenset()
    with pytest.raises(ValueError, match="cannot judge add:Edema"):
        judged_attribute(EditSpec.parse("add:Edema"), QuadrantClassifier.attributes)


def test_a_null_edit_passes_only_when_nothing_changes() -> None:
    keep = EditSpec.parse("keep:Support Devices")
    source = _image(devices=True, effusion=False)
    candidates = np.stack(
        [
            _image(devices=False, effusion=False),  # lost the device
            _image(devices=True, effusion=True),  # grew an effusion
            _image(devices=True, effusion=False, grey=104),  # the same, a little brighter
        ]
    )
    (verdict,) = Verifier(QuadrantClassifier()).judge(source[None], candidates[None], [keep])
    assert verdict.passed == (False, False, True) and verdict.chosen == 2
    (rejected,) = Verifier(QuadrantClassifier()).judge(source[None], candidates[None, :1], [keep])
    assert not rejected.accepted and "no candidate kept Support Devices" in rejected.reason
