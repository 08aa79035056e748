"""The oracle's data: on-the-fly renders, record labels and the input conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from prism_aug.data.synthcxr import SUPPORTED_FINDINGS, render, sample_patient
from prism_aug.data.vocabulary import DEVICES
from prism_aug.evaluation import ORACLE_ATTRIBUTES, OracleRenders, images_to_tensor, record_labels
from prism_aug.evaluation.oracle_data import TRAIN_SEED_OFFSET, VAL_SEED_OFFSET, RenderedOnce

SIZE = 32


def _names(labels: np.ndarray, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if labels[ORACLE_ATTRIBUTES.index(n)]]


def test_attributes_are_the_mask_attributes() -> None:
    assert (*SUPPORTED_FINDINGS, *DEVICES, "Support Devices") == ORACLE_ATTRIBUTES


def test_labels_agree_with_the_rendering() -> None:
    renders = OracleRenders(40, SIZE, p_partial=0.0)
    all_labels = []
    for i in range(len(renders)):
        image, labels = renders.render(i)
        findings, devices = _names(labels, SUPPORTED_FINDINGS), _names(labels, DEVICES)
        patient = sample_patient(TRAIN_SEED_OFFSET + i)
        np.testing.assert_array_equal(image, render(patient, findings, devices, SIZE).image)
        assert labels[ORACLE_ATTRIBUTES.index("Support Devices")] == bool(devices)
        all_labels.append(labels)
    counts = np.stack(all_labels).sum(axis=0)
    assert (counts > 0).all() and (counts < len(renders)).all()  # each attribute both ways


def test_partial_device_changes_only_its_own_pixels() -> None:
    renders = OracleRenders(20, SIZE, p_partial=1.0)
    for i in range(len(renders)):
        image, labels = renders.render(i)
        findings, devices = _names(labels, SUPPORTED_FINDINGS), _names(labels, DEVICES)
        patient = sample_patient(TRAIN_SEED_OFFSET + i)
        full = render(patient, findings, devices, SIZE)
        assert not (image != full.image)[~full.masks["Support Devices"]].any()
        if devices:  # a piece is drawn, and labelled present
            assert (image != render(patient, findings, [], SIZE).image).any()


def test_renders_are_deterministic_per_index_also_in_workers() -> None:
    renders = OracleRenders(12, SIZE)
    images, labels = zip(*(renders[i] for i in range(len(renders))), strict=True)
    again = OracleRenders(12, SIZE)
    assert torch.equal(again[5][0], images[5]) and torch.equal(again[5][1], labels[5])
    loaded = list(DataLoader(renders, batch_size=4, num_workers=2))
    assert torch.equal(torch.cat([x for x, _ in loaded]), torch.stack(images))
    assert torch.equal(torch.cat([y for _, y in loaded]), torch.stack(labels))
    val = OracleRenders(12, SIZE, VAL_SEED_OFFSET)
    assert not torch.equal(val[0][0], images[0])


def test_rendered_once_holds_exactly_the_renders() -> None:
    renders = OracleRenders(10, SIZE, p_partial=0.5)
    held = RenderedOnce(renders, num_workers=0)
    assert len(held) == len(renders) and held.images.dtype == torch.uint8
    for i in range(len(renders)):
        image, labels = renders[i]
        assert torch.equal(held[i][0], image) and torch.equal(held[i][1], labels)


def test_renders_reject_bad_options() -> None:
    with pytest.raises(ValueError, match="p_device"):
        OracleRenders(4, SIZE, p_device=1.5)
    with pytest.raises(IndexError, match="out of range"):
        OracleRenders(4, SIZE).render(4)


def test_record_labels_read_findings_and_device_types() -> None:
    records = pd.DataFrame(
        {
            **{f: [0.0, 1.0] for f in SUPPORTED_FINDINGS},
            "Support Devices": [1.0, 0.0],
            "Devices": ["Chest Tube;ECG Leads", np.nan],
        }
    )
    labels = record_labels(records)
    assert _names(labels[0], ORACLE_ATTRIBUTES) == ["Chest Tube", "ECG Leads", "Support Devices"]
    assert _names(labels[1], ORACLE_ATTRIBUTES) == list(SUPPORTED_FINDINGS)
    with pytest.raises(ValueError, match="Devices"):
        record_labels(records.drop(columns="Devices"))


def test_images_to_tensor_takes_both_kinds_and_resizes() -> None:
    uint8 = np.full((2, 48, 48), 255, dtype=np.uint8)
    x = images_to_tensor(uint8, SIZE)
    assert x.shape == (2, 1, SIZE, SIZE) and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.ones_like(x))
    floats = torch.rand(3, 1, SIZE, SIZE)
    assert torch.equal(images_to_tensor(floats, SIZE), floats)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((2, 1, 32, 32), dtype=np.uint8),  # numpy with a channel axis
        np.zeros((2, 32, 32), dtype=np.float32),  # numpy floats
        torch.zeros(2, 32, 32),  # tensor without the channel axis
        torch.zeros(2, 3, 32, 32),  # RGB
        torch.zeros(2, 1, 32, 32, dtype=torch.uint8),  # integer tensor
    ],
)
def test_images_to_tensor_rejects_bad_inputs(images) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)|\(B, H, W\)"):
        images_to_tensor(images, SIZE)
