"""Can the oracle judge an edit? Its recall on what an imperfect removal leaves behind.

An edit that removes a device but leaves a piece of tube, or a pacemaker's leads without the
generator, has failed; so has an addition that draws only a faint effusion. A judge that
calls those images "no device" or "no effusion" would score such edits as successes. Before
the oracle scores any edit, its recall is measured on held-out renders of exactly these cases:

- ``<device> (piece)``: one box-shaped piece of a single device on an otherwise device-free
  image (a left-over tube);
- ``Pacemaker generator`` and ``Pacemaker leads``: each part of the pacemaker alone (the
  generator is the pacemaker mask's opening by a 3x3 square, which the 1-2 px leads do not
  survive at 64 px; the leads are the rest);
- ``<finding> (smallest 20%)``: a finding alone, among the fifth of renders where it changes
  the fewest grey levels.

Recall must reach ``REQUIRED_RECALL`` on every row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from prism_aug.data.synthcxr import SUPPORTED_FINDINGS, render, sample_patient
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES
from prism_aug.data.vocabulary import DEVICES
from prism_aug.evaluation.oracle_data import device_piece
from prism_aug.evaluation.oracle_report import SMALLEST_SHARE, Judge

REQUIRED_RECALL = 0.95
# Held-out patients: far from the oracle's training and validation seed offsets (2**32, 2**33).
JUDGE_SEED_OFFSET = 3 << 32
PACEMAKER = "Pacemaker"


def _opening(mask: np.ndarray) -> np.ndarray:
    """Binary opening of a ``(S, S)`` mask by a 3x3 square."""
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return F.max_pool2d(eroded, 3, stride=1, padding=1)[0, 0].numpy() > 0


def _dilate(mask: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.max_pool2d(x, 3, stride=1, padding=1)[0, 0].numpy() > 0


def device_cases(n: int, size: int) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """``{case: (images (M, S, S) uint8, attributes that must be seen)}`` for devices: the
    device type and Support Devices, which judges ``remove:Support Devices``."""
    cases: dict[str, list[np.ndarray]] = {}
    for i in range(n):
        seed = JUDGE_SEED_OFFSET + i
        patient, rng = sample_patient(seed), np.random.default_rng(seed)
        empty = render(patient, (), (), size).image
        for device in DEVICES:
            full = render(patient, (), (device,), size)
            mask = full.masks[device]
            parts = {f"{device} (piece)": device_piece(mask, rng)}
            if device == PACEMAKER:
                generator = _opening(mask)
                parts["Pacemaker generator"] = generator
                parts["Pacemaker leads"] = mask & ~_dilate(generator)
            for case, part in parts.items():
                if part.any():
                    cases.setdefault(case, []).append(np.where(part, full.image, empty))
    return {
        case: (
            np.stack(images),
            (PACEMAKER if case.startswith(PACEMAKER) else case.split(" (")[0], SUPPORT_DEVICES),
        )
        for case, images in cases.items()
    }


def finding_cases(n: int, size: int) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """``{"<finding> (smallest 20%)": (images, finding)}``: the faintest of n renders each."""
    cases = {}
    for finding in SUPPORTED_FINDINGS:
        images, change = [], []
        for i in range(n):
            patient = sample_patient(JUDGE_SEED_OFFSET + i)
            with_ = render(patient, (finding,), (), size).image
            without = render(patient, (), (), size).image
            images.append(with_)
            change.append(np.abs(with_.astype(np.int16) - without).mean())
        faint = np.asarray(change) <= np.quantile(change, SMALLEST_SHARE)
        cases[f"{finding} (smallest 20%)"] = (np.stack(images)[faint], (finding,))
    return cases


def judge_check(judge: Judge, n: int = 200, threshold: float = 0.5) -> pd.DataFrame:
    """Recall of ``judge`` on every hard case, and whether it reaches REQUIRED_RECALL.

    Args:
        judge: the oracle (``attributes``, ``image_size``, ``predict_proba``).
        n: patients per device case; finding cases keep the faintest fifth of n * 5 renders.
        threshold: a probability at or above it counts as "present".

    Returns:
        One row per case and attribute judged (index "case"): n, attribute, recall, passed.
    """
    cases = {
        **device_cases(n, judge.image_size),
        **finding_cases(n * round(1 / SMALLEST_SHARE), judge.image_size),
    }
    rows = []
    for case, (images, attributes) in cases.items():
        seen = judge.predict_proba(images).numpy() >= threshold
        for attribute in attributes:
            recall = float(seen[:, judge.attributes.index(attribute)].mean())
            passed = recall >= REQUIRED_RECALL
            rows.append(
                {
                    "case": case,
                    "attribute": attribute,
                    "n": len(images),
                    "recall": recall,
                    "passed": passed,
                }
            )
    return pd.DataFrame(rows).set_index("case")
