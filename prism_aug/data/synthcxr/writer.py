"""Write a SynthCXR data set as a CheXpert-shaped folder, with masks, for any reader of CheXpert.

Layout (``out`` is the folder; CSV paths start with its name, like CheXpert's
"CheXpert-v1.0-small/train/..."), so the CheXpert reader with root = out's parent serves it::

    out/train.csv, out/valid.csv, out/test.csv
    out/{split}/patientNNNNN/study1/view1_frontal.png        uint8 image
    out/{split}/patientNNNNN/study1/view1_frontal_masks.png  16-bit masks (masks.py)
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from prism_aug.data.splits import SPLITS, split_patients
from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.masks import save_masks
from prism_aug.data.synthcxr.patient import Patient, sample_patient
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES, render
from prism_aug.data.synthcxr.study import Study, study_labels
from prism_aug.data.vocabulary import DEVICE_TYPES, DEVICES, FINDINGS, MASK_PATH, SEED

CSV_COLUMNS: tuple[str, ...] = (
    "Path",
    "Sex",
    "Age",
    "Frontal/Lateral",
    "AP/PA",
    *FINDINGS,
    DEVICE_TYPES,
    SEED,
    MASK_PATH,
)
IMAGE_NAME, MASK_NAME = "view1_frontal.png", "view1_frontal_masks.png"

# A job: (patient seed, findings, devices, size, image path, mask path).
Job = tuple[int, tuple[str, ...], tuple[str, ...], int, str, str]


def patient_id(index: int) -> str:
    """CheXpert-style id of the index-th patient (1-based): "patient00001"."""
    return f"patient{index:05d}"


def patient_seed(seed: int, index: int) -> int:
    """The renderer seed of the index-th patient of a data set written with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _labels_for(patient: Patient, labels: dict[str, np.ndarray], j: int):
    """The findings and device types the j-th patient of a split is drawn with."""
    findings = tuple(f for f in SUPPORTED_FINDINGS if f in labels and labels[f][j])
    if SUPPORT_DEVICES in labels and labels[SUPPORT_DEVICES][j]:
        devices = patient.kit
    else:
        devices = tuple(d for d in DEVICES if d in labels and labels[d][j])
    return findings, devices


def _row(patient: Patient, findings, devices, path: str, mask_path: str) -> dict:
    """One CheXpert-shaped CSV row: modelled findings 1.0/0.0, the others blank."""
    row = {"Path": path, "Sex": patient.sex, "Age": patient.age}
    row.update({"Frontal/Lateral": "Frontal", "AP/PA": patient.view})
    for name in FINDINGS:
        row[name] = float(name in findings) if name in SUPPORTED_FINDINGS else np.nan
    row[SUPPORT_DEVICES] = float(bool(devices))
    row["No Finding"] = float(not findings)
    row.update({DEVICE_TYPES: ";".join(devices), SEED: patient.seed, MASK_PATH: mask_path})
    return row


def _write_one(job: Job) -> None:
    seed, findings, devices, size, image_path, mask_path = job
    rendering = render(sample_patient(seed), findings, devices, size)
    Path(image_path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rendering.image).save(image_path, format="PNG")
    save_masks(mask_path, rendering.masks)


def write_synthcxr(
    out_dir: str | Path,
    n_patients: int,
    size: int = 64,
    seed: int = 0,
    study: Study = Study(),  # noqa: B008 (frozen, so a shared default is safe)
    workers: int = 1,
) -> dict[str, pd.DataFrame]:
    """Render ``n_patients`` (one frontal study each) into a CheXpert-shaped folder.

    Patients go to train/valid/test by :func:`prism_aug.data.splits.split_patients` on their
    ids (70/15/15), and get labels by :func:`study_labels`. The bytes written depend only on
    the arguments (not on ``workers``).

    Returns:
        ``{split: the table written to out_dir/{split}.csv}``.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    out_dir = Path(out_dir)
    ids = pd.Series([patient_id(i) for i in range(1, n_patients + 1)])
    split_of = split_patients(ids).to_numpy()
    tables, jobs = {}, []
    for split in SPLITS:
        members = np.flatnonzero(split_of == split)
        labels = study_labels(len(members), split, study, seed)
        rows = []
        for j, k in enumerate(members):
            patient = sample_patient(patient_seed(seed, k + 1))
            findings, devices = _labels_for(patient, labels, j)
            folder = f"{out_dir.name}/{split}/{ids[k]}/study1"
            rows.append(
                _row(patient, findings, devices, f"{folder}/{IMAGE_NAME}", f"{folder}/{MASK_NAME}")
            )
            image_path = out_dir.parent / folder / IMAGE_NAME
            mask_path = out_dir.parent / folder / MASK_NAME
            jobs.append((patient.seed, findings, devices, size, str(image_path), str(mask_path)))
        tables[split] = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    out_dir.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=32):
                pass
    else:
        for job in jobs:
            _write_one(job)
    for split, table in tables.items():
        table.to_csv(out_dir / f"{split}.csv", index=False)
    return tables
