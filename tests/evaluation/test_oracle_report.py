"""oracle_report on a hand-made case: numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from prism_aug.data.synthcxr import SUPPORTED_FINDINGS, render, sample_patient
from prism_aug.evaluation import ORACLE_ATTRIBUTES, oracle_report, to_markdown
from prism_aug.evaluation.oracle_report import effusion_change

SIZE = 16


class ScriptedOracle:
    """Returns fixed probabilities, whatever the images."""

    attributes = ORACLE_ATTRIBUTES
    image_size = SIZE

    def __init__(self, probabilities: np.ndarray) -> None:
        self.probabilities = probabilities

    def predict_proba(self, images: np.ndarray) -> torch.Tensor:
        assert images.shape == (len(self.probabilities), SIZE, SIZE)
        return torch.from_numpy(self.probabilities)


@pytest.fixture
def records(tmp_path) -> pd.DataFrame:
    """Four images: 0 effusion + chest tube, 1 effusion, 2 ECG leads, 3 nothing."""
    effusion = [1.0, 1.0, 0.0, 0.0]
    table = pd.DataFrame(
        {
            "path": [f"p{i}.png" for i in range(4)],
            **{f: effusion if f == "Pleural Effusion" else [0.0] * 4 for f in SUPPORTED_FINDINGS},
            "Support Devices": [1.0, 0.0, 1.0, 0.0],
            "Devices": ["Chest Tube", "", "ECG Leads", ""],
            "Seed": [11, 12, 13, 14],
        }
    )
    for i, path in enumerate(table["path"]):
        Image.fromarray(render(sample_patient(10 + i), size=SIZE).image).save(tmp_path / path)
    table.attrs["root"] = str(tmp_path)
    return table


def test_oracle_report_matches_hand_computed_numbers(records) -> None:
    p = np.zeros((4, len(ORACLE_ATTRIBUTES)), dtype=np.float32)
    col = ORACLE_ATTRIBUTES.index
    p[[0, 3], col("Pleural Effusion")] = 0.9  # one hit, one miss, one false alarm, one right
    p[0, col("Chest Tube")] = 0.5  # at the threshold: present
    p[[0, 2], col("Support Devices")] = 0.7
    p[2, col("Cardiomegaly")] = 0.6  # a false alarm
    table = oracle_report(ScriptedOracle(p), records)

    effusion = table.loc["Pleural Effusion"]
    assert (effusion["n"], effusion["positives"]) == (4, 2)
    assert effusion["accuracy"] == 0.5 and effusion["recall"] == 0.5
    assert effusion["specificity"] == 0.5
    cardiomegaly = table.loc["Cardiomegaly"]
    assert cardiomegaly["accuracy"] == 0.75 and cardiomegaly["specificity"] == 0.75
    assert np.isnan(cardiomegaly["recall"])  # no positives
    assert table.loc["Support Devices", "accuracy"] == 1.0
    assert table.loc["ECG Leads", "recall"] == 0.0
    # Hard cases: the smaller of the two effusions (20% quantile of two values), each device
    # alone: the chest tube found, the ECG leads missed.
    change = effusion_change(records, SIZE)
    assert np.isnan(change[2:]).all() and (change[:2] > 0).all()
    smallest = table.loc["Pleural Effusion (smallest 20%)"]
    assert smallest["n"] == 1 and smallest["recall"] == float(change[0] < change[1])
    assert table.loc["Chest Tube (alone)", "recall"] == 1.0
    assert table.loc["ECG Leads (alone)", "recall"] == 0.0
    assert table.loc["Pacemaker (alone)", "n"] == 0
    markdown = to_markdown(table)
    assert "| Pleural Effusion | 4 | 2 | 0.500 | 0.500 | 0.500 |" in markdown
