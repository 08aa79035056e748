"""Ground-truth counterfactuals: the same patient rendered before and after one edit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from prism_aug.data.records import device_list
from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.patient import Patient, sample_patient
from prism_aug.data.synthcxr.render import (
    SUPPORT_DEVICES,
    Rendering,
    check_devices,
    check_findings,
    render,
)
from prism_aug.data.vocabulary import DEVICE_TYPES, DEVICES, SEED

EDIT_ACTIONS: tuple[str, ...] = ("add", "remove")
EDIT_ATTRIBUTES: tuple[str, ...] = (*SUPPORTED_FINDINGS, *DEVICES, SUPPORT_DEVICES)


def counterfactual(
    patient: Patient,
    findings: Iterable[str],
    devices: Iterable[str],
    edit_action: str,
    attribute: str,
    size: int = 64,
) -> tuple[Rendering, Rendering, np.ndarray]:
    """Render the source image and its true counterfactual under ``edit_action:attribute``.

    "remove:Support Devices" removes every device; "add:Support Devices" adds the patient's
    kit; a finding or a single device type is added or removed alone.

    Returns:
        source and target renderings, and the ``(size, size)`` bool mask of pixels that differ.
    """
    findings, devices = set(check_findings(findings)), set(check_devices(devices))
    if edit_action not in EDIT_ACTIONS:
        raise ValueError(f"unknown edit action {edit_action!r}; expected one of {EDIT_ACTIONS}")
    if attribute not in EDIT_ATTRIBUTES:
        raise ValueError(
            f"unknown attribute {attribute!r}; SynthCXR edits: {', '.join(EDIT_ATTRIBUTES)}"
        )
    if attribute == SUPPORT_DEVICES:
        present = bool(devices)
        change = set(patient.kit) if edit_action == "add" else devices
    else:
        present = attribute in findings or attribute in devices
        change = {attribute}
    if present == (edit_action == "add"):
        state = "already has" if present else "does not have"
        raise ValueError(f"cannot {edit_action} {attribute!r}: the source {state} it")
    flip = set.union if edit_action == "add" else set.difference
    source = render(patient, findings, devices, size)
    target = render(
        patient,
        flip(findings, change & set(SUPPORTED_FINDINGS)),
        flip(devices, change & set(DEVICES)),
        size,
    )
    return source, target, source.image != target.image


def record_state(row: Mapping[str, object]) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """A SynthCXR record's patient seed, findings (code 1) and devices (the "Devices" cell):
    all a render of it depends on, hashable."""
    findings = tuple(f for f in SUPPORTED_FINDINGS if row.get(f) == 1.0)
    return int(row[SEED]), findings, device_list(row[DEVICE_TYPES])


def record_counterfactual(
    row: Mapping[str, object], edit_action: str, attribute: str, size: int = 64
) -> tuple[Rendering, Rendering, np.ndarray]:
    """``counterfactual`` of a SynthCXR record: its Seed's patient with its own findings
    and devices (``record_state``)."""
    seed, findings, devices = record_state(row)
    return counterfactual(sample_patient(seed), findings, devices, edit_action, attribute, size)
