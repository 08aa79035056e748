"""How good a judge the oracle is: accuracy, recall and specificity per attribute on records.

    prism-aug oracle report --oracle outputs/models/oracle --csv data/synthcxr/test.csv

Besides one row per ORACLE_ATTRIBUTES name, the table has the hard cases a judge of edits
must not miss: "Pleural Effusion (smallest 20%)", the effusions whose rendered change is in
the lowest quintile, and "<device> (alone)", images whose only device is that one.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
import torch

from prism_aug.data.records import load_image
from prism_aug.data.synthcxr import SUPPORTED_FINDINGS, render, sample_patient
from prism_aug.data.vocabulary import DEVICE_TYPES, DEVICES, SEED
from prism_aug.evaluation.oracle_data import record_labels

EFFUSION = "Pleural Effusion"
SMALLEST_SHARE = 0.2
METRICS: tuple[str, ...] = ("n", "positives", "accuracy", "recall", "specificity")


class Judge(Protocol):
    """What the report needs of an oracle (:class:`prism_aug.evaluation.oracle.Oracle`)."""

    attributes: tuple[str, ...]
    image_size: int

    def predict_proba(self, images: np.ndarray) -> torch.Tensor: ...


def attribute_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Metrics of one attribute from ``(N,)`` bool labels and predictions; NaN where undefined."""
    positives, negatives = labels.sum(), (~labels).sum()
    return {
        "n": len(labels),
        "positives": int(positives),
        "accuracy": float((labels == predicted).mean()) if len(labels) else np.nan,
        "recall": float((labels & predicted).sum() / positives) if positives else np.nan,
        "specificity": float((~labels & ~predicted).sum() / negatives) if negatives else np.nan,
    }


def effusion_change(records: pd.DataFrame, size: int) -> np.ndarray:
    """``(N,)`` mean absolute pixel change (0..255) the effusion makes; NaN without effusion.

    Each effusion-positive record is rendered again from its "Seed" with its own findings and
    devices, with and without the effusion: the change is what a judge has to see, whatever
    size or opacity the renderer drew.
    """
    if SEED not in records.columns:
        raise ValueError(f"records lack the {SEED!r} column that SynthCXR CSVs carry")
    labels = record_labels(records)
    findings_on = labels[:, : len(SUPPORTED_FINDINGS)]
    change = np.full(len(records), np.nan)
    for i in np.flatnonzero(findings_on[:, SUPPORTED_FINDINGS.index(EFFUSION)]):
        patient = sample_patient(int(records[SEED].iloc[i]))
        findings = [f for f, on in zip(SUPPORTED_FINDINGS, findings_on[i], strict=True) if on]
        devices = [d for d in str(records[DEVICE_TYPES].iloc[i]).split(";") if d in DEVICES]
        with_ = render(patient, findings, devices, size).image.astype(np.float64)
        rest = [f for f in findings if f != EFFUSION]
        without = render(patient, rest, devices, size).image.astype(np.float64)
        change[i] = np.abs(with_ - without).mean()
    return change


def predict_records(oracle: Judge, records: pd.DataFrame, batch_size: int = 256) -> np.ndarray:
    """``(N, 11)`` probabilities of the oracle on the records' images."""
    root = records.attrs["root"]
    paths = records["path"].tolist()
    chunks = []
    for start in range(0, len(paths), batch_size):
        images = np.stack([load_image(root, p) for p in paths[start : start + batch_size]])
        chunks.append(oracle.predict_proba(images).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, len(oracle.attributes)))


def oracle_report(oracle: Judge, records: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Accuracy, recall and specificity of ``oracle`` per attribute, then the hard cases.

    Args:
        oracle: a loaded oracle (or anything with ``attributes``, ``image_size`` and
            ``predict_proba``).
        records: a SynthCXR CSV read by read_chexpert (labels from its finding columns and
            "Devices"; "Seed" to re-render effusions).
        threshold: a probability at or above it counts as "present".

    Returns:
        One row per attribute and hard case (index "attribute"), columns METRICS.
    """
    labels = record_labels(records)  # (N, 11)
    predicted = predict_records(oracle, records) >= threshold  # (N, 11)
    rows = {
        name: attribute_metrics(labels[:, j], predicted[:, j])
        for j, name in enumerate(oracle.attributes)
    }
    j = oracle.attributes.index(EFFUSION)
    change = effusion_change(records, oracle.image_size)
    if np.isfinite(change).any():
        small = change <= np.nanquantile(change, SMALLEST_SHARE)  # NaN compares False
        rows[f"{EFFUSION} (smallest 20%)"] = attribute_metrics(
            labels[small, j], predicted[small, j]
        )
    device_count = labels[:, [oracle.attributes.index(d) for d in DEVICES]].sum(axis=1)
    for device in DEVICES:
        j = oracle.attributes.index(device)
        alone = labels[:, j] & (device_count == 1)
        rows[f"{device} (alone)"] = attribute_metrics(labels[alone, j], predicted[alone, j])
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(METRICS)).rename_axis(
        "attribute"
    )


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A markdown table of ``table`` (index first), floats with ``digits`` decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    header = [table.index.name or "", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(name=None):  # keeps each column's dtype, unlike iterrows
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)
