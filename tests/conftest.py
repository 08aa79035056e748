"""Shared fixtures: tiny CheXpert-shaped CSVs written into tmp_path."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from prism_aug.data.vocabulary import FINDINGS

CHEXPERT_HEADER: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *FINDINGS)


def make_chexpert_row(
    patient: int,
    study: int = 1,
    view: str = "Frontal",
    ap_pa: str = "AP",
    sex: str = "Female",
    age: int = 60,
    prefix: str = "CheXpert-v1.0-small/train",
    **labels: float | str,
) -> dict[str, object]:
    """One CheXpert CSV row; findings are passed with underscores for spaces, blank if absent.

    ``make_chexpert_row(1, Pleural_Effusion=1.0)`` is patient00001/study1 with effusion positive.
    """
    image = "view1_frontal.jpg" if view == "Frontal" else "view2_lateral.jpg"
    row = {
        "Path": f"{prefix}/patient{patient:05d}/study{study}/{image}",
        "Sex": sex,
        "Age": age,
        "Frontal/Lateral": view,
        "AP/PA": ap_pa if view == "Frontal" else "",
    }
    row.update({name.replace("_", " "): value for name, value in labels.items()})
    return row


@pytest.fixture
def chexpert_row() -> Callable[..., dict[str, object]]:
    """The row builder :func:`make_chexpert_row`, as a fixture."""
    return make_chexpert_row


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write rows (dicts) as a CSV under tmp_path; columns default to CheXpert's plus extras."""

    def write(
        rows: Sequence[dict[str, object]],
        name: str = "CheXpert-v1.0-small/train.csv",
        columns: Sequence[str] | None = None,
    ) -> Path:
        if columns is None:
            extras = [c for row in rows for c in row if c not in CHEXPERT_HEADER]
            columns = [*CHEXPERT_HEADER, *dict.fromkeys(extras)]
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, list(columns), restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return path

    return write
