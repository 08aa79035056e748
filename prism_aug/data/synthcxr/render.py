"""Render a SynthCXR patient with any set of findings and devices, and every attribute's mask.

The image is a sum of attenuation layers (anatomy, then one per finding and device, each zero
outside its region) passed through a pointwise tone curve plus pointwise noise that depends
on the patient's seed and the size only. So flipping one finding or device changes pixels
only inside that attribute's mask: the two renderings are a ground-truth counterfactual pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from prism_aug.data.synthcxr.anatomy import anatomy_fields
from prism_aug.data.synthcxr.devices import device_layers
from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS, finding_layers
from prism_aug.data.synthcxr.patient import Patient
from prism_aug.data.vocabulary import DEVICES

SUPPORT_DEVICES = "Support Devices"
MIN_SIZE, MAX_SIZE = 16, 2048
TONE_FLOOR = 0.08  # attenuation that still renders black (air outside the body)


@dataclass(frozen=True)
class Rendering:
    """One rendered radiograph and the region of every attribute on this patient.

    Attributes:
        image: ``(S, S)`` uint8, bright = attenuating.
        masks: ``(S, S)`` bool for every supported finding and device, present or not (for an
            absent one: where it would appear), plus "Support Devices": the union of the
            patient's device kit and the devices drawn.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]


def _names(names: Iterable[str] | str, valid: tuple[str, ...], kind: str) -> frozenset[str]:
    """Check names against ``valid``; a single string counts as one name."""
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        if name not in valid:
            raise ValueError(f"unknown {kind} {name!r}; SynthCXR supports: {', '.join(valid)}")
    return frozenset(names)


def check_findings(findings: Iterable[str] | str) -> frozenset[str]:
    """Return the findings as a set, raising ValueError on one SynthCXR cannot draw."""
    return _names(findings, SUPPORTED_FINDINGS, "finding")


def check_devices(devices: Iterable[str] | str) -> frozenset[str]:
    """Return the devices as a set, raising ValueError on an unknown device type."""
    return _names(devices, DEVICES, "device")


def _tone(patient: Patient, attenuation: np.ndarray) -> np.ndarray:
    """Pointwise film curve plus pointwise noise: ``(S, S)`` float attenuation -> uint8."""
    a, size = patient.anatomy, attenuation.shape[0]
    light = 1.0 - np.exp(np.maximum(attenuation - TONE_FLOOR, 0.0) * -a.exposure)
    light **= a.gamma
    noise = np.random.default_rng([patient.seed, size]).standard_normal((size, size), np.float32)
    light += noise * (a.noise * (0.5 + 0.5 * light))
    return np.clip(light * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def render(
    patient: Patient,
    findings: Iterable[str] = (),
    devices: Iterable[str] = (),
    size: int = 64,
) -> Rendering:
    """Render ``patient`` with exactly these findings and device types at ``size`` px.

    Args:
        patient: from :func:`sample_patient`.
        findings: any of SUPPORTED_FINDINGS (none: a normal chest, "No Finding").
        devices: any of vocabulary.DEVICES, whether in the patient's kit or not.
        size: output side in pixels; the picture is the same at any size.
    """
    on = check_findings(findings) | check_devices(devices)
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {size}")
    fields = anatomy_fields(patient, int(size))
    layers = {**finding_layers(patient, fields), **device_layers(patient, int(size))}
    attenuation = fields.base.copy()
    for name, layer in layers.items():  # fixed order: adding a zero leaves a pixel exact
        if name in on:
            attenuation += layer
    masks = {name: layer != 0 for name, layer in layers.items()}
    worn = set(patient.kit) | (on & set(DEVICES))
    masks[SUPPORT_DEVICES] = np.logical_or.reduce([masks[d] for d in DEVICES if d in worn])
    return Rendering(image=_tone(patient, attenuation), masks=masks)
