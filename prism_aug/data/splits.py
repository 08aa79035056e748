"""Patient-level train/valid/test splits that never move a patient.

A patient's split is a function of its id alone (a salted hash), so adding or removing rows
never moves anyone, and no patient can land in two splits.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from prism_aug.data.vocabulary import PATIENT

SPLITS: tuple[str, ...] = ("train", "valid", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)


def patient_unit_interval(patient_id: str, salt: str = "") -> float:
    """Map a patient id to a uniform number in [0, 1) that never changes."""
    digest = hashlib.blake2b(f"{salt}{patient_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Check that split fractions are one per split, non-negative, and sum to 1."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLITS):
        raise ValueError(f"split fractions need {len(SPLITS)} values {SPLITS}, got {fractions}")
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    return fractions


def split_patients(
    patient_ids: pd.Series,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    salt: str = "",
) -> pd.Series:
    """Return each row's split name ("train", "valid" or "test"), decided by its patient id.

    Args:
        patient_ids: one id per row; repeated ids (several studies of a patient) share a split.
        fractions: the expected share of patients in train, valid and test.
        salt: changes the assignment as a whole (a different random split of the same ids).
    """
    fractions = check_fractions(fractions)
    codes, uniques = pd.factorize(patient_ids.astype(str), sort=False)
    u = np.fromiter((patient_unit_interval(p, salt) for p in uniques), float, len(uniques))
    bounds = np.cumsum(fractions)[:-1]
    split_codes = np.searchsorted(bounds, u, side="right")
    names = np.asarray(SPLITS, dtype=object)[split_codes]
    return pd.Series(names[codes], index=patient_ids.index, name="split")


def add_splits(
    records: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = ""
) -> pd.DataFrame:
    """Return a copy of ``records`` with a ``split`` column from :func:`split_patients`."""
    if PATIENT not in records.columns:
        raise KeyError(f"records have no {PATIENT!r} column; columns are {list(records.columns)}")
    return records.assign(split=split_patients(records[PATIENT], fractions, salt))
