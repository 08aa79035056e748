"""The names prism-aug uses for findings, devices and record columns.

One name per thing: the CheXpert spelling of a finding ("Pleural Effusion") is used in
records, prompts, edit specs (``remove:Support Devices``), shard metadata and tables alike.
"""

from __future__ import annotations

# The 14 CheXpert observations, in the column order of CheXpert's train.csv.
FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# Device types drawn by SynthCXR; "Support Devices" is positive when any of them is present.
DEVICES: tuple[str, ...] = (
    "Pacemaker",
    "Chest Tube",
    "Central Line",
    "Endotracheal Tube",
    "ECG Leads",
)

# CheXpert label codes.
POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0

# Columns of the records table every reader returns, before the finding columns.
PATH, PATIENT, STUDY, VIEW, AP_PA, SEX, AGE = (
    "path",
    "patient_id",
    "study_id",
    "view",
    "ap_pa",
    "sex",
    "age",
)
RECORD_COLUMNS: tuple[str, ...] = (PATH, PATIENT, STUDY, VIEW, AP_PA, SEX, AGE, *FINDINGS)

# Columns SynthCXR adds to its CheXpert-shaped CSVs (and the records table keeps).
DEVICE_TYPES, SEED, MASK_PATH = "Devices", "Seed", "Mask Path"


def check_finding(name: str) -> str:
    """Return ``name`` if it is one of the 14 findings, else raise naming the valid ones."""
    if name not in FINDINGS:
        raise ValueError(f"unknown finding {name!r}; expected one of: {', '.join(FINDINGS)}")
    return name
