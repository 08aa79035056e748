"""Attribute masks stored as one 16-bit PNG per image: bit i is MASK_ATTRIBUTES[i].

PNG (not npz) because its bytes are deterministic (no timestamps) and any image tool opens it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES
from prism_aug.data.vocabulary import DEVICES

# Bit order of the mask PNGs: the supported findings, the devices, then "Support Devices".
MASK_ATTRIBUTES: tuple[str, ...] = (*SUPPORTED_FINDINGS, *DEVICES, SUPPORT_DEVICES)


def pack_masks(masks: dict[str, np.ndarray]) -> np.ndarray:
    """``(S, S)`` uint16 with bit i set where ``masks[MASK_ATTRIBUTES[i]]`` is true."""
    missing = [name for name in MASK_ATTRIBUTES if name not in masks]
    if missing:
        raise KeyError(f"masks lack {missing}; expected keys: {', '.join(MASK_ATTRIBUTES)}")
    bits = np.zeros(masks[MASK_ATTRIBUTES[0]].shape, dtype=np.uint16)
    for i, name in enumerate(MASK_ATTRIBUTES):
        bits |= masks[name].astype(np.uint16) << i
    return bits


def save_masks(path: str | Path, masks: dict[str, np.ndarray]) -> None:
    """Write every attribute's ``(S, S)`` bool mask into one 16-bit grayscale PNG."""
    Image.fromarray(pack_masks(masks)).save(path, format="PNG")


def load_masks(path: str | Path) -> dict[str, np.ndarray]:
    """Read a mask PNG back: ``{attribute: (S, S) bool}`` for every MASK_ATTRIBUTES entry."""
    with Image.open(path) as image:
        bits = np.asarray(image).astype(np.uint16)
    return {name: (bits >> i & 1).astype(bool) for i, name in enumerate(MASK_ATTRIBUTES)}
