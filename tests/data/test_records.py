"""Readers, view filter, image paths and image loading."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prism_aug.data.records import (
    device_list,
    filter_views,
    has_device,
    image_path,
    load_image,
    read_chexpert,
    read_mimic,
)
from prism_aug.data.vocabulary import DEVICES, FINDINGS, RECORD_COLUMNS


@pytest.fixture
def chexpert_csv(write_csv, chexpert_row) -> Path:
    return write_csv(
        [
            chexpert_row(1, 1, Pleural_Effusion=1.0, Support_Devices=-1.0, Edema=0.0),
            chexpert_row(1, 1, view="Lateral", Pleural_Effusion=1.0),
            chexpert_row(2, 1, ap_pa="PA", sex="Male", age=45, No_Finding=1.0),
            chexpert_row(2, 2, ap_pa="LL", Cardiomegaly=-1.0),
        ]
    )


def test_read_chexpert_builds_the_records_table(chexpert_csv: Path) -> None:
    records = read_chexpert(chexpert_csv)
    assert tuple(records.columns) == RECORD_COLUMNS
    assert records["patient_id"].tolist() == ["patient00001"] * 2 + ["patient00002"] * 2
    # study ids are unique across patients: both patients have a "study1"
    assert records["study_id"].tolist() == [
        "patient00001/study1",
        "patient00001/study1",
        "patient00002/study1",
        "patient00002/study2",
    ]
    assert records["view"].tolist() == ["Frontal", "Lateral", "Frontal", "Frontal"]
    assert records["ap_pa"].tolist()[0] == "AP" and records["ap_pa"].tolist()[2] == "PA"
    assert records["ap_pa"].isna().tolist() == [False, True, False, True]  # lateral, LL
    assert records["sex"].tolist()[2] == "Male" and records["age"].tolist()[2] == 45.0
    assert all(records[f].dtype == np.float64 for f in FINDINGS)
    first = records.iloc[0]
    assert first["Pleural Effusion"] == 1.0 and first["Support Devices"] == -1.0
    assert first["Edema"] == 0.0 and np.isnan(first["Cardiomegaly"])
    assert records.attrs["root"] == str(chexpert_csv.parent.parent)
    assert records.attrs["rows_read"] == 4


def test_read_chexpert_valid_csv_and_explicit_root(write_csv, chexpert_row, tmp_path: Path) -> None:
    rows = [chexpert_row(64541, prefix="CheXpert-v1.0/valid", Fracture=1.0)]
    path = write_csv(rows, name="CheXpert-v1.0/valid.csv")
    assert read_chexpert(path).attrs["root"] == str(tmp_path)
    assert read_chexpert(path, root="/data/cxr").attrs["root"] == "/data/cxr"
    assert read_chexpert(path)["patient_id"].tolist() == ["patient64541"]


def test_synthcxr_extra_columns_are_kept_unchanged(write_csv, chexpert_row, tmp_path: Path) -> None:
    rows = [
        chexpert_row(
            1,
            prefix="train",
            Devices="Pacemaker;Chest Tube",
            Seed=7,
            **{"Mask Path": "masks/patient00001/study1.png", "Support Devices": 1.0},
        ),
        chexpert_row(2, prefix="train", Devices="", Seed=8, **{"Mask Path": ""}),
    ]
    records = read_chexpert(write_csv(rows, name="synthcxr/train.csv"))
    assert tuple(records.columns) == (*RECORD_COLUMNS, "Devices", "Seed", "Mask Path")
    assert records["Seed"].tolist() == [7, 8]
    assert records["Devices"].iloc[0] == "Pacemaker;Chest Tube"
    assert pd.isna(records["Devices"].iloc[1])
    # paths do not start with the CSV's folder name, so they are relative to that folder
    assert records.attrs["root"] == str(tmp_path / "synthcxr")


def test_missing_column_names_the_file_and_column(write_csv, chexpert_row) -> None:
    columns = ["Path", "Sex", "Frontal/Lateral", "AP/PA", *FINDINGS]
    path = write_csv([chexpert_row(1)], columns=columns)
    with pytest.raises(ValueError, match=r"train\.csv.*missing column.*'Age'"):
        read_chexpert(path)


def test_bad_label_code_names_line_and_finding(write_csv, chexpert_row) -> None:
    path = write_csv([chexpert_row(1), chexpert_row(2, Edema=2.0)])
    with pytest.raises(ValueError, match=r"train\.csv: line 3 has 2\.0 in 'Edema'"):
        read_chexpert(path)


def test_non_numeric_label_names_the_file(write_csv, chexpert_row) -> None:
    path = write_csv([chexpert_row(1, Edema="yes")])
    with pytest.raises(ValueError, match=r"train\.csv.*must be numeric"):
        read_chexpert(path)


def test_path_without_patient_and_study_names_the_line(write_csv, chexpert_row) -> None:
    bad = {**chexpert_row(2), "Path": "CheXpert-v1.0-small/train/img.jpg"}
    path = write_csv([chexpert_row(1), bad])
    with pytest.raises(ValueError, match=r"line 3 has Path 'CheXpert-v1.0-small/train/img\.jpg'"):
        read_chexpert(path)


def test_unknown_view_names_the_line_and_choices(write_csv, chexpert_row) -> None:
    path = write_csv([{**chexpert_row(1), "Frontal/Lateral": "Oblique"}])
    with pytest.raises(ValueError, match=r"line 2 has Frontal/Lateral 'Oblique'.*Frontal, Lateral"):
        read_chexpert(path)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def mimic_csvs(tmp_path: Path) -> tuple[Path, Path]:
    blank = [""] * len(FINDINGS)
    effusion = [1.0 if f == "Pleural Effusion" else "" for f in FINDINGS]
    labels = _write(
        tmp_path / "mimic-cxr-2.0.0-chexpert.csv",
        ["subject_id", "study_id", *FINDINGS],
        [[10000032, 50414267, *effusion], [11000011, 51000001, *blank]],
    )
    metadata = _write(
        tmp_path / "mimic-cxr-2.0.0-metadata.csv",
        ["dicom_id", "subject_id", "study_id", "ViewPosition", "Rows"],
        [
            ["02aa804e-bde0afdd", 10000032, 50414267, "PA", 3056],
            ["174413ec-4ec4c1f7", 10000032, 50414267, "LATERAL", 3056],
            ["aaaa0000-00000000", 11000011, 51000001, "AP", 2544],
            ["bbbb0000-00000000", 11000011, 51000001, "", 2544],
            ["cccc0000-00000000", 12000000, 52000000, "AP", 2544],  # study has no labels
        ],
    )
    return labels, metadata


def test_read_mimic_joins_images_with_study_labels(mimic_csvs, tmp_path: Path) -> None:
    records = read_mimic(*mimic_csvs)
    assert tuple(records.columns) == (*RECORD_COLUMNS, "Rows")
    assert records["path"].iloc[0] == "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg"
    assert records["patient_id"].tolist() == ["p10000032"] * 2 + ["p11000011"] * 2
    assert records["study_id"].tolist() == ["s50414267"] * 2 + ["s51000001"] * 2
    assert records["view"].tolist() == ["Frontal", "Lateral", "Frontal", "Lateral"]
    assert records["ap_pa"].tolist()[::2] == ["PA", "AP"]
    assert records["ap_pa"].isna().tolist() == [False, True, False, True]
    assert records["sex"].isna().all() and records["age"].isna().all()
    assert records["Pleural Effusion"].tolist()[:2] == [1.0, 1.0]
    assert records["Rows"].tolist() == [3056, 3056, 2544, 2544]
    assert records.attrs["root"] == str(tmp_path) and records.attrs["rows_read"] == 5


def test_read_mimic_errors(mimic_csvs, tmp_path: Path) -> None:
    labels, metadata = mimic_csvs
    no_view = _write(tmp_path / "meta.csv", ["dicom_id", "subject_id", "study_id"], [])
    with pytest.raises(ValueError, match=r"meta\.csv: missing column.*'ViewPosition'"):
        read_mimic(labels, no_view)
    twice = _write(
        tmp_path / "labels.csv",
        ["subject_id", "study_id", *FINDINGS],
        [[1, 2, *[""] * 14], [1, 2, *[""] * 14]],
    )
    with pytest.raises(ValueError, match=r"labels\.csv: line 3 repeats study s2 of p1"):
        read_mimic(twice, metadata)


def test_filter_views(chexpert_csv: Path) -> None:
    records = read_chexpert(chexpert_csv)
    frontal = filter_views(records)
    assert frontal["view"].tolist() == ["Frontal"] * 3
    assert frontal.attrs["rows_read"] == 4
    assert frontal.attrs["view_filter"] == {"views": ["Frontal"], "ap_pa": None}
    assert len(filter_views(records, ("Frontal", "Lateral"))) == 4
    assert len(filter_views(records, "Lateral")) == 1
    assert filter_views(records, ap_pa="PA")["patient_id"].tolist() == ["patient00002"]
    with pytest.raises(ValueError, match=r"unknown view \['Oblique'\].*'Frontal', 'Lateral'"):
        filter_views(records, ("Oblique",))
    with pytest.raises(ValueError, match=r"unknown AP/PA \['LL'\].*'AP', 'PA'"):
        filter_views(records, ap_pa="LL")


def test_devices_column() -> None:
    records = pd.DataFrame({"Devices": ["Pacemaker;Chest Tube", None, "Central Line", ""]})
    assert has_device(records, "Chest Tube").tolist() == [True, False, False, False]
    assert has_device(records, "Central Line").tolist() == [False, False, True, False]
    assert device_list("Pacemaker; ECG Leads") == ("Pacemaker", "ECG Leads")
    assert device_list(float("nan")) == ()
    with pytest.raises(ValueError, match="unknown device"):
        has_device(records, "Stent")
    with pytest.raises(ValueError, match=r"unknown device\(s\) \['Stent'\]"):
        device_list("Stent")
    with pytest.raises(KeyError, match="no 'Devices' column"):
        has_device(pd.DataFrame({"x": [1]}), DEVICES[0])


def test_image_path_refuses_to_escape_the_root(tmp_path: Path) -> None:
    assert image_path(tmp_path, "a/b.jpg") == tmp_path / "a" / "b.jpg"
    for bad in ("../secret.jpg", "a/../../b.jpg", "/etc/passwd"):
        with pytest.raises(ValueError, match=f"image path '{bad}' escapes the data root"):
            image_path(tmp_path, bad)


def test_load_image_returns_grayscale_uint8(tmp_path: Path) -> None:
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((4, 6), 200, np.uint8)).save(tmp_path / "gray.jpg")
    Image.fromarray(np.full((3, 2), 65535, np.uint16)).save(tmp_path / "deep.png")
    image = load_image(tmp_path, "rgb.png")
    assert image.shape == (5, 7) and image.dtype == np.uint8
    assert image[0, 0] == 76  # ITU-R 601 luma of pure red
    assert load_image(tmp_path, "gray.jpg").shape == (4, 6)
    assert load_image(tmp_path, "deep.png").max() == 255  # 16 bits scaled, not clipped


def test_load_image_names_the_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(OSError, match=r"cannot read image .*broken\.jpg"):
        load_image(tmp_path, "broken.jpg")
    with pytest.raises(OSError, match=r"cannot read image .*missing\.jpg"):
        load_image(tmp_path, "missing.jpg")
