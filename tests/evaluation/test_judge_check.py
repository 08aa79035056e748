"""The judge check: its hard cases are what they claim, and recall is counted right."""

from __future__ import annotations

import numpy as np
import torch

from prism_aug.data.synthcxr import render, sample_patient
from prism_aug.evaluation import ORACLE_ATTRIBUTES
from prism_aug.evaluation.judge_check import (
    JUDGE_SEED_OFFSET,
    REQUIRED_RECALL,
    device_cases,
    finding_cases,
    judge_check,
)

SIZE = 32


class ChangeJudge:
    """Calls every attribute present unless the image is one of the patients' empty renders
    (or, ``blind``, never): the perfect and the useless judge."""

    attributes = ORACLE_ATTRIBUTES
    image_size = SIZE

    def __init__(self, empties: np.ndarray, blind: bool = False) -> None:
        self.empties, self.blind = empties, blind

    def predict_proba(self, images: np.ndarray) -> torch.Tensor:
        changed = [not any(np.array_equal(im, e) for e in self.empties) for im in images]
        p = torch.tensor(changed, dtype=torch.float32)[:, None] * (not self.blind)
        return p.expand(len(images), len(ORACLE_ATTRIBUTES))


def test_device_cases_keep_only_a_part_of_one_device() -> None:
    cases = device_cases(3, SIZE)
    assert {"Pacemaker generator", "Pacemaker leads", "Central Line (piece)"} <= set(cases)
    images, attributes = cases["Central Line (piece)"]
    assert attributes == ("Central Line", "Support Devices")
    patient = sample_patient(JUDGE_SEED_OFFSET)
    empty = render(patient, (), (), SIZE).image
    full = render(patient, (), ("Central Line",), SIZE)
    changed = images[0] != empty
    assert changed.any() and (full.masks["Central Line"] | ~changed).all()  # inside the line
    assert changed.sum() < (full.image != empty).sum()  # and only part of it


def test_faint_findings_are_the_lowest_fifth() -> None:
    cases = finding_cases(10, SIZE)
    images, attributes = cases["Pleural Effusion (smallest 20%)"]
    assert attributes == ("Pleural Effusion",) and len(images) == 2


def test_recall_and_pass_per_case() -> None:
    empties = np.stack(
        [render(sample_patient(JUDGE_SEED_OFFSET + i), size=SIZE).image for i in range(2 * 5)]
    )
    table = judge_check(ChangeJudge(empties), n=2)
    assert (table["recall"] == 1.0).all() and table["passed"].all()
    blind = judge_check(ChangeJudge(empties, blind=True), n=2)
    assert (blind["recall"] == 0.0).all() and not blind["passed"].any()
    assert REQUIRED_RECALL == 0.95
