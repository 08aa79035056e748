"""A contact sheet: a few patients, each finding and device alone, so a person can check looks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.patient import sample_patient
from prism_aug.data.synthcxr.render import render
from prism_aug.data.synthcxr.writer import patient_seed
from prism_aug.data.vocabulary import DEVICES

LABEL_HEIGHT = 14  # px above each column for its name (PIL's default font)


def write_contact_sheet(
    path: str | Path, n_patients: int = 6, size: int = 128, seed: int = 0
) -> None:
    """Write one PNG: a row per patient (those of a data set written with ``seed``); columns
    no finding, each supported finding alone, each device alone, and everything together."""
    columns = [("No Finding", (), ())]
    columns += [(f, (f,), ()) for f in SUPPORTED_FINDINGS]
    columns += [(d, (), (d,)) for d in DEVICES]
    columns += [("All", SUPPORTED_FINDINGS, DEVICES)]
    sheet = np.zeros((LABEL_HEIGHT + n_patients * size, len(columns) * size), dtype=np.uint8)
    for row in range(n_patients):
        patient = sample_patient(patient_seed(seed, row + 1))
        for col, (_, findings, devices) in enumerate(columns):
            image = render(patient, findings, devices, size).image
            top = LABEL_HEIGHT + row * size
            sheet[top : top + size, col * size : (col + 1) * size] = image
    picture = Image.fromarray(sheet)
    draw = ImageDraw.Draw(picture)
    for col, (name, _, _) in enumerate(columns):
        draw.text((col * size + 3, 1), name, fill=255)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
