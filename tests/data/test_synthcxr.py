"""SynthCXR: determinism, ground-truth locality of every attribute, masks, CSVs and the study."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prism_aug.data.splits import split_patients
from prism_aug.data.synthcxr import (
    EDIT_ATTRIBUTES,
    MASK_ATTRIBUTES,
    SUPPORT_DEVICES,
    SUPPORTED_FINDINGS,
    Study,
    counterfactual,
    group_counts,
    load_masks,
    render,
    sample_patient,
    save_masks,
    write_synthcxr,
)
from prism_aug.data.synthcxr.anatomy import anatomy_fields
from prism_aug.data.synthcxr.findings import finding_layers
from prism_aug.data.synthcxr.writer import CSV_COLUMNS
from prism_aug.data.vocabulary import DEVICES, FINDINGS

# Grey levels above the patients' pixel noise, and pixels a finding must change by that much.
VISIBLE_CHANGE = 6
VISIBLE_PIXELS = 8


def _random_state(patient, seed: int) -> tuple[set[str], set[str]]:
    """Some other findings and devices switched on, so locality is tested in context."""
    rng = np.random.default_rng(seed)
    findings = {f for f in SUPPORTED_FINDINGS if rng.random() < 0.4}
    devices = {d for d in DEVICES if rng.random() < 0.3}
    return findings, devices


def test_same_seed_same_bytes():
    a = render(sample_patient(7), ["Pleural Effusion"], ["Pacemaker"], 96)
    b = render(sample_patient(7), ["Pleural Effusion"], ["Pacemaker"], 96)
    assert a.image.dtype == np.uint8 and a.image.shape == (96, 96)
    assert a.image.tobytes() == b.image.tobytes()
    assert sample_patient(7) == sample_patient(7) != sample_patient(8)


def test_every_attribute_has_a_bool_mask():
    r = render(sample_patient(3), size=64)
    assert set(r.masks) == set(MASK_ATTRIBUTES) == {*SUPPORTED_FINDINGS, *DEVICES, SUPPORT_DEVICES}
    for name, mask in r.masks.items():
        assert mask.dtype == bool and mask.shape == (64, 64), name
        assert mask.any(), f"{name} has an empty mask on an absent attribute"


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize("attribute", EDIT_ATTRIBUTES)
def test_flip_changes_pixels_only_inside_the_mask(attribute: str, size: int):
    for seed in (0, 1, 2):
        patient = sample_patient(seed)
        findings, devices = _random_state(patient, seed)
        for action in ("add", "remove"):
            # Put the attribute in the state the action needs, keeping the rest.
            if attribute == SUPPORT_DEVICES:
                devs = set() if action == "add" else set(patient.kit) | devices
                finds = findings
            elif attribute in SUPPORTED_FINDINGS:
                finds = findings - {attribute} if action == "add" else findings | {attribute}
                devs = devices
            else:
                devs = devices - {attribute} if action == "add" else devices | {attribute}
                finds = findings
            source, target, change = counterfactual(patient, finds, devs, action, attribute, size)
            region = source.masks[attribute] | target.masks[attribute]
            assert change.any(), f"{action}:{attribute} changed nothing (seed {seed}, {size} px)"
            assert not (change & ~region).any(), (
                f"{action}:{attribute} changed {int((change & ~region).sum())} pixels outside "
                f"its mask (seed {seed}, {size} px)"
            )


@pytest.mark.parametrize(
    ("finding", "density"), [("Lung Opacity", "opacity_density"), ("Edema", "edema_density")]
)
def test_hazes_peak_at_their_density_wherever_they_fall(finding: str, density: str):
    """A patchy texture low at the haze's centre, or a haze half behind the heart, once drew
    opacities the oracle could not see at 64 px: the densest visible pixel of each haze
    attenuates by exactly the patient's drawn density."""
    for seed in range(30):
        patient = sample_patient(seed)
        layer = finding_layers(patient, anatomy_fields(patient, 64))[finding]
        assert layer.min() >= 0
        assert layer.max() == pytest.approx(getattr(patient.findings, density), rel=1e-5), seed


def test_every_finding_is_visible_at_64_px():
    """A label the image does not show is noise to every judge: each finding, alone, must change
    some pixels by more than the image noise, for every patient (an opacity behind the heart
    of patient 177 once changed none)."""
    patients = [sample_patient(seed) for seed in range(200)]
    plain = [render(patient, (), (), 64).image.astype(np.int16) for patient in patients]
    for finding in SUPPORTED_FINDINGS:
        seen = []
        for patient, without in zip(patients, plain, strict=True):
            change = np.abs(render(patient, (finding,), (), 64).image - without)
            seen.append(int((change > VISIBLE_CHANGE).sum()))
        assert min(seen) >= VISIBLE_PIXELS, (
            f"{finding}: patient {int(np.argmin(seen))} shows it in {min(seen)} pixels"
        )


def test_counterfactual_checks_its_edit():
    patient = sample_patient(0)
    with pytest.raises(ValueError, match="already has"):
        counterfactual(patient, ["Edema"], [], "add", "Edema")
    with pytest.raises(ValueError, match="does not have"):
        counterfactual(patient, [], [], "remove", SUPPORT_DEVICES)
    with pytest.raises(ValueError, match="Pleural Effusion"):
        counterfactual(patient, [], [], "add", "Pleural Efusion")
    with pytest.raises(ValueError, match="add"):
        counterfactual(patient, [], [], "insert", "Edema")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="Pleural Effusion"):
        render(sample_patient(0), ["Fracture"])
    with pytest.raises(ValueError, match="Endotracheal Tube"):
        render(sample_patient(0), [], ["Stent"])
    with pytest.raises(ValueError, match="Support Devices"):
        Study(attribute="Tattoo")
    with pytest.raises(ValueError, match="Cardiomegaly"):
        Study(target="Fracture")


def test_resolution_free():
    patient = sample_patient(5)
    small = render(patient, SUPPORTED_FINDINGS, DEVICES, 64)
    large = render(patient, SUPPORTED_FINDINGS, DEVICES, 512)
    assert large.image.shape == (512, 512)
    pooled = large.image.reshape(64, 8, 64, 8).mean(axis=(1, 3))
    assert np.abs(pooled - small.image).mean() < 12  # the same picture, up to noise and edges
    for name in MASK_ATTRIBUTES:  # the same region, up to a pixel of anti-aliasing at 64 px
        block = large.masks[name].reshape(64, 8, 64, 8).any(axis=(1, 3))
        tolerance = 2 + 0.01 * block.sum()  # corners where two soft edges meet
        assert (small.masks[name] & ~_dilate(block)).sum() <= tolerance, name
        assert (block & ~_dilate(small.masks[name])).sum() <= tolerance, name


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a bool mask by one pixel (8-neighbourhood)."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    return np.logical_or.reduce(
        [padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    )


def test_mask_bits_round_trip(tmp_path: Path):
    masks = render(sample_patient(4), size=64).masks
    save_masks(tmp_path / "m.png", masks)
    loaded = load_masks(tmp_path / "m.png")
    assert list(loaded) == list(MASK_ATTRIBUTES)
    for name in MASK_ATTRIBUTES:
        np.testing.assert_array_equal(loaded[name], masks[name], err_msg=name)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    out = tmp_path_factory.mktemp("w") / "synth"
    return out, write_synthcxr(out, 120, size=32, seed=3)


def test_writer_is_deterministic_and_workers_agree(written, tmp_path: Path):
    out, _ = written
    again = write_synthcxr(tmp_path / "synth", 120, size=32, seed=3, workers=2)
    assert _digest(out) == _digest(tmp_path / "synth")
    assert len(again["train"]) > 0


def test_csv_columns_codes_and_paths(written):
    out, tables = written
    for split in tables:
        csv = pd.read_csv(out / f"{split}.csv")
        assert list(csv.columns) == list(CSV_COLUMNS)
        assert list(csv.columns[: 5 + len(FINDINGS)]) == [
            "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *FINDINGS
        ]  # fmt: skip
        assert csv["Path"].str.startswith(f"synth/{split}/patient").all()
        assert csv["Path"].str.endswith("/study1/view1_frontal.png").all()
        assert set(csv["Sex"]) <= {"Male", "Female"} and set(csv["AP/PA"]) <= {"AP", "PA"}
        assert (csv["Frontal/Lateral"] == "Frontal").all() and csv["Age"].dtype.kind == "i"
        for name in FINDINGS:
            values = set(csv[name].dropna())
            if name in (*SUPPORTED_FINDINGS, "No Finding", SUPPORT_DEVICES):
                assert csv[name].notna().all() and values <= {0.0, 1.0}, name
            else:
                assert csv[name].isna().all(), name
        devices = csv["Devices"].fillna("")
        assert ((devices != "") == (csv[SUPPORT_DEVICES] == 1.0)).all()
        any_finding = (csv[list(SUPPORTED_FINDINGS)] == 1.0).any(axis=1)
        assert ((csv["No Finding"] == 1.0) == ~any_finding).all()
        for _, row in csv.head(3).iterrows():  # the files are where the CSV says
            assert (out.parent / row["Path"]).is_file()
            masks = load_masks(out.parent / row["Mask Path"])
            patient = sample_patient(int(row["Seed"]))
            finds = [f for f in SUPPORTED_FINDINGS if row[f] == 1.0]
            devs = row["Devices"].split(";") if isinstance(row["Devices"], str) else []
            expected = render(patient, finds, devs, 32).masks
            for name in MASK_ATTRIBUTES:
                np.testing.assert_array_equal(masks[name], expected[name])


def test_splits_agree_with_split_patients(written):
    _, tables = written
    for split, table in tables.items():
        ids = table["Path"].str.split("/").str[2]
        assert (split_patients(ids) == split).all()


def test_study_rates_are_exact(written):
    _, tables = written
    study = Study()
    for split, table in tables.items():
        y = table[study.target] == 1.0
        a = table[study.attribute] == 1.0
        counts = {(yy, aa): int(((y == yy) & (a == aa)).sum()) for yy in (1, 0) for aa in (1, 0)}
        assert counts == group_counts(len(table), split, study), split
        for name in ("Cardiomegaly", "Pneumothorax"):
            assert int((table[name] == 1.0).sum()) == int(np.floor(0.1 * len(table) + 0.5))


def test_group_counts():
    study = Study()
    assert group_counts(1000, "train", study) == {(1, 1): 450, (1, 0): 50, (0, 1): 50, (0, 0): 450}
    assert group_counts(1000, "test", study) == {(1, 1): 250, (1, 0): 250, (0, 1): 250, (0, 0): 250}
    assert sum(group_counts(37, "test", study).values()) == 37
