"""PRISM captions, edit specs and edit prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prism_aug.data.prompts import (
    ATTRIBUTES,
    NORMAL_CAPTION,
    EditSpec,
    caption,
    captions,
    edit_prompts,
)
from prism_aug.data.vocabulary import DEVICES, FINDINGS


def test_caption_is_prisms_exactly() -> None:
    assert caption({}) == "Normal chest X-ray with no significant findings"
    assert caption({"No Finding": 1.0}) == NORMAL_CAPTION
    assert caption({"Edema": -1.0, "Pneumonia": float("nan"), "Fracture": 0}) == NORMAL_CAPTION
    # FINDINGS order, whatever the mapping's order; ints (policy output) work too
    labels = {"Support Devices": 1, "Pleural Effusion": 1.0, "Cardiomegaly": 1, "Edema": -1}
    assert caption(labels) == "Chest X-ray showing Cardiomegaly, Pleural Effusion, Support Devices"


def test_captions_matches_caption_row_by_row() -> None:
    rng = np.random.default_rng(0)
    codes = rng.choice([1.0, 0.0, -1.0, np.nan], size=(200, len(FINDINGS)), p=[0.2, 0.5, 0.1, 0.2])
    records = pd.DataFrame(codes, columns=list(FINDINGS), index=range(100, 300))
    texts = captions(records)
    assert texts.index.equals(records.index)
    assert texts.tolist() == [caption(row) for _, row in records.iterrows()]


@pytest.mark.parametrize("attribute", ATTRIBUTES)
@pytest.mark.parametrize("action", ["remove", "add", "keep"])
def test_edit_spec_has_one_spelling(action: str, attribute: str) -> None:
    text = f"{action}:{attribute}"
    spec = EditSpec.parse(text)
    assert spec == EditSpec(action, attribute)
    assert str(spec) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Support Devices", r"not 'action:attribute'.*\('remove', 'add', 'keep'\)"),
        ("delete:Edema", r"unknown edit action 'delete'.*\('remove', 'add', 'keep'\)"),
        ("remove:No Finding", r"unknown edit attribute 'No Finding'.*Edema.*Pacemaker"),
        ("remove:support devices", r"unknown edit attribute 'support devices'"),
        ("remove: Edema", r"unknown edit attribute ' Edema'"),
    ],
)
def test_bad_edit_specs_list_the_choices(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EditSpec.parse(text)


def test_applies_to_gives_the_reason_it_does_not() -> None:
    effusion = {"Pleural Effusion": 1.0, "Edema": -1.0}
    assert EditSpec("remove", "Pleural Effusion").applies_to(effusion) == (True, "")
    assert EditSpec("add", "Pleural Effusion").applies_to(effusion) == (
        False,
        "Pleural Effusion is already present",
    )
    assert EditSpec("remove", "Cardiomegaly").applies_to(effusion) == (
        False,
        "Cardiomegaly is absent, nothing to remove",
    )
    assert EditSpec("add", "Cardiomegaly").applies_to(effusion) == (True, "")  # blank = absent
    assert EditSpec("add", "Edema").applies_to(effusion) == (
        False,
        "Edema is uncertain or masked (-1)",
    )
    ok, reason = EditSpec("remove", "Pacemaker").applies_to(effusion)
    assert not ok and "no 'Devices' list" in reason
    assert EditSpec("remove", "Pacemaker").applies_to({"Devices": "Chest Tube"}) == (
        False,
        "Pacemaker is absent, nothing to remove",
    )


def test_finding_edits_flip_the_finding_in_the_caption() -> None:
    labels = {"Pleural Effusion": 1.0, "Support Devices": 1.0}
    assert edit_prompts(labels, EditSpec.parse("remove:Support Devices")) == (
        "Chest X-ray showing Pleural Effusion, Support Devices",
        "Chest X-ray showing Pleural Effusion",
    )
    assert edit_prompts({}, EditSpec.parse("add:Pneumothorax")) == (
        NORMAL_CAPTION,
        "Chest X-ray showing Pneumothorax",
    )
    with pytest.raises(ValueError, match=r"edit add:Pleural Effusion does not apply: .*present"):
        edit_prompts(labels, EditSpec.parse("add:Pleural Effusion"))


def test_device_edits_flip_support_devices_when_any_device_changes() -> None:
    two = {"Devices": "Pacemaker;Chest Tube", "Support Devices": 1.0, "Edema": 1.0}
    both = "Chest X-ray showing Edema, Support Devices"
    assert edit_prompts(two, EditSpec.parse("remove:Pacemaker")) == (both, both)
    spec = EditSpec.parse("remove:Pacemaker")
    assert spec.edited_labels(two)["Devices"] == "Chest Tube"
    one = {"Devices": "Pacemaker", "Support Devices": 1.0, "Edema": 1.0}
    assert edit_prompts(one, spec) == (both, "Chest X-ray showing Edema")
    none = pd.Series({"Devices": np.nan, "Support Devices": 0.0})  # a record row works too
    added = EditSpec.parse("add:ECG Leads")
    assert edit_prompts(none, added) == (NORMAL_CAPTION, "Chest X-ray showing Support Devices")
    assert added.edited_labels(none)["Devices"] == "ECG Leads"
    assert added.edited_labels(one)["Devices"] == ";".join(["Pacemaker", "ECG Leads"])
    assert set(DEVICES) <= set(ATTRIBUTES)
    cleared = EditSpec.parse("remove:Support Devices").edited_labels(two)
    assert (cleared["Support Devices"], cleared["Devices"]) == (0.0, "")


def test_the_null_edit_keeps_labels_and_caption() -> None:
    labels = {"Pleural Effusion": 1.0, "Support Devices": 1.0, "Devices": "Chest Tube"}
    for attribute in ("Support Devices", "Chest Tube", "Cardiomegaly"):
        keep = EditSpec.parse(f"keep:{attribute}")
        assert keep.applies_to(labels) == (True, "")
        assert keep.edited_labels(labels) == labels
        source, target = edit_prompts(labels, keep)
        assert source == target == "Chest X-ray showing Pleural Effusion, Support Devices"
