"""Subsets of records with a chosen, exact correlation between a target and an attribute.

A shortcut study fixes a target finding y (Pleural Effusion) and an attribute a (Support
Devices, a device type, or a column test such as ``Sex=Female``), and trains on a subset
where P(a=1 | y=1) and P(a=1 | y=0) are set exactly (DeCoDEx's 90/10), then tests on the
balanced or anticorrelated subset. Groups are (y, a) in {0, 1}^2.

Policy for unclear labels: only rows whose y and a are both 0 or 1 are eligible. Rows where
either is uncertain, masked (-1 after ``apply_label_policy``) or blank (NaN, when the policy
was not applied) are left out of subsets and group counts and reported as "excluded". Apply
the label policy first to decide whether blank means 0.

Rates are exact: each rate is read as a fraction k/d with d <= 1000, and each class takes a
multiple of d rows, k/d of them with a=1. Sampling draws from a seeded numpy Generator and
returns rows in their original order.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from prism_aug.data.records import CHEXPERT_TO_RECORD, has_device
from prism_aug.data.splits import SPLITS, add_splits
from prism_aug.data.vocabulary import DEVICES, FINDINGS, check_finding

MAX_DENOMINATOR = 1000
# Group keys, in the order counts are reported and sampled: (y, a).
GROUPS: tuple[tuple[int, int], ...] = ((1, 1), (1, 0), (0, 1), (0, 0))
EXCLUDED = "excluded"


def group_key(y: int, a: int) -> str:
    """The JSON-friendly name of group (y, a), e.g. "y=1,a=0"."""
    return f"y={y},a={a}"


def attribute_values(records: pd.DataFrame, attribute: str) -> np.ndarray:
    """The attribute per row as float: 1.0, 0.0, or NaN/-1 (not eligible).

    Args:
        attribute: a finding name, a device type (positive when listed in the "Devices"
            column), or a column test ``Column=Value``: a record column or its CheXpert name
            ("Sex=Female"), compared as a number for numeric columns ("Age=60") and as text
            otherwise; missing cells are not eligible. A value no record has raises, since a
            typo ("Sex=female") would otherwise give an attribute that is never positive.
    """
    if attribute in FINDINGS:
        return records[attribute].to_numpy(dtype=np.float64)
    if attribute in DEVICES:
        return has_device(records, attribute).to_numpy(dtype=np.float64)
    column, sep, value = attribute.partition("=")
    if not sep:
        raise ValueError(
            f"unknown attribute {attribute!r}; expected a finding ({', '.join(FINDINGS)}), a "
            f"device ({', '.join(DEVICES)}) or a column test like 'Sex=Female'"
        )
    column = column if column in records.columns else CHEXPERT_TO_RECORD.get(column, column)
    if column not in records.columns:
        raise KeyError(
            f"attribute {attribute!r} tests column {column!r}, which the records lack; "
            f"columns are {list(records.columns)}"
        )
    cells = records[column]
    if pd.api.types.is_numeric_dtype(cells):
        try:
            number = float(value)
        except ValueError as err:
            msg = f"attribute {attribute!r}: {column} is numeric, {value!r} is not"
            raise ValueError(msg) from err
        equal = cells.to_numpy(dtype=np.float64, na_value=np.nan) == number
    else:
        equal = (cells.astype("str") == value).to_numpy(dtype=bool, na_value=False)
    if not equal.any():
        observed = sorted(cells.dropna().astype("str").unique())
        raise ValueError(
            f"attribute {attribute!r}: no record has {column} = {value!r}; "
            f"values seen: {observed[:20]}"
        )
    return np.where(cells.isna().to_numpy(), np.nan, equal)


def group_arrays(
    records: pd.DataFrame, target: str, attribute: str
) -> tuple[np.ndarray, np.ndarray]:
    """y and a as int8 arrays, with -1 wherever either is not 0 or 1 (excluded rows)."""
    check_finding(target)
    y = records[target].to_numpy(dtype=np.float64)
    a = attribute_values(records, attribute)
    eligible = np.isin(y, (0.0, 1.0)) & np.isin(a, (0.0, 1.0))
    return np.where(eligible, y, -1).astype(np.int8), np.where(eligible, a, -1).astype(np.int8)


def _count(y: np.ndarray, a: np.ndarray) -> dict[str, int]:
    counts = {group_key(gy, ga): int(np.sum((y == gy) & (a == ga))) for gy, ga in GROUPS}
    counts[EXCLUDED] = int(np.sum(y < 0))
    return counts


def group_counts(records: pd.DataFrame, target: str, attribute: str) -> dict[str, int]:
    """Rows per group {"y=1,a=1", "y=1,a=0", "y=0,a=1", "y=0,a=0"} plus "excluded"."""
    return _count(*group_arrays(records, target, attribute))


def _rate(name: str, rate: float | Fraction) -> Fraction:
    """Read a rate as an exact fraction with a small denominator."""
    if not 0 <= rate <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {rate}")
    fraction = Fraction(rate).limit_denominator(MAX_DENOMINATOR)
    if abs(float(fraction) - float(rate)) > 1e-6:
        raise ValueError(
            f"{name}={rate} is not a fraction with denominator <= {MAX_DENOMINATOR} "
            f"(nearest: {fraction}); pass it as a Fraction or round it"
        )
    return fraction


def _class_units(p: Fraction, n_a1: int, n_a0: int) -> int:
    """How many blocks of d rows (k with a=1, d-k with a=0) one class can fill."""
    k, d = p.numerator, p.denominator
    return min(n_a1 // k if k else n_a1 + n_a0, n_a0 // (d - k) if d - k else n_a1 + n_a0)


def _sample(
    records: pd.DataFrame, y: np.ndarray, a: np.ndarray, take: dict[str, int], seed: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Draw ``take[group]`` rows of each group without replacement, keeping row order."""
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero((y == gy) & (a == ga)), take[group_key(gy, ga)], replace=False)
        for gy, ga in GROUPS
    ]
    rows = np.sort(np.concatenate(chosen))
    counts = {group_key(gy, ga): take[group_key(gy, ga)] for gy, ga in GROUPS}
    counts[EXCLUDED] = int(np.sum(y < 0))
    return records.iloc[rows], counts


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {n}" for key, n in counts.items())


def shortcut_subset(
    records: pd.DataFrame,
    target: str,
    attribute: str,
    p_a_given_y1: float | Fraction,
    p_a_given_y0: float | Fraction,
    size: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The subset whose rates P(a=1 | y=1) and P(a=1 | y=0) are exactly the ones given.

    Args:
        records: records with the label policy applied (see the module's exclusion policy).
        target: the finding y.
        attribute: a finding, device or ``Column=Value`` test (see ``attribute_values``).
        p_a_given_y1: P(a=1 | y=1), read as k/d with d <= 1000.
        p_a_given_y0: P(a=1 | y=0), likewise.
        size: total rows; by default the largest subset with these rates. A requested size
            keeps the eligible rows' prevalence of y=1, rounded to the nearest split into
            whole blocks of each class's denominator.
        seed: seeds the numpy Generator that picks rows.

    Returns:
        The subset (rows in original order) and its group counts, plus "excluded": the rows
        of ``records`` whose y or a was not 0/1.

    Raises:
        ValueError: the rates or size cannot be met; the message gives the counts available
            and needed.
    """
    p1, p0 = _rate("p_a_given_y1", p_a_given_y1), _rate("p_a_given_y0", p_a_given_y0)
    y, a = group_arrays(records, target, attribute)
    available = _count(y, a)
    n11, n10, n01, n00 = (available[group_key(gy, ga)] for gy, ga in GROUPS)
    max1, max0 = _class_units(p1, n11, n10), _class_units(p0, n01, n00)
    d1, d0 = p1.denominator, p0.denominator
    where = f"{target} x {attribute} at P(a|y=1)={p1}, P(a|y=0)={p0}"
    if size is None:
        units1, units0 = max1, max0
        if not units1 or not units0:
            raise ValueError(
                f"{where}: each class needs at least one block of {d1} (y=1) and {d0} (y=0) "
                f"rows at these rates; available {_describe(available)}"
            )
    else:
        units1, units0 = _units_for_size(size, n11 + n10, n01 + n00, d1, d0)
        if units1 > max1 or units0 > max0:
            raise ValueError(
                f"{where}: size {size} needs {units1 * d1} y=1 rows ({units1 * p1.numerator} "
                f"with a=1) and {units0 * d0} y=0 rows ({units0 * p0.numerator} with a=1), "
                f"at most {max1 * d1} and {max0 * d0} can be met; available "
                f"{_describe(available)}"
            )
    take = {
        group_key(1, 1): units1 * p1.numerator,
        group_key(1, 0): units1 * (d1 - p1.numerator),
        group_key(0, 1): units0 * p0.numerator,
        group_key(0, 0): units0 * (d0 - p0.numerator),
    }
    return _sample(records, y, a, take, seed)


def _units_for_size(size: int, n1: int, n0: int, d1: int, d0: int) -> tuple[int, int]:
    """Blocks per class totalling ``size`` rows, with y=1's share nearest n1 / (n1 + n0)."""
    if size <= 0:
        raise ValueError(f"size must be a positive number of rows, got {size}")
    units1 = np.arange(size // d1 + 1)
    fits = (size - units1 * d1) % d0 == 0
    fits &= (units1 > 0) & (size - units1 * d1 > 0)
    if not fits.any():
        raise ValueError(
            f"size {size} cannot be split into blocks of {d1} y=1 rows and {d0} y=0 rows "
            "(each class non-empty) so that the rates stay exact"
        )
    target1 = size * n1 / max(n1 + n0, 1)
    best = int(units1[fits][np.argmin(np.abs(units1[fits] * d1 - target1))])
    return best, (size - best * d1) // d0


def balanced_subset(
    records: pd.DataFrame,
    target: str,
    attribute: str,
    size: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Four equal groups: the largest (4 x the smallest group) or ``size`` rows in all.

    Raises:
        ValueError: ``size`` is not a multiple of 4 or exceeds what the smallest group allows.
    """
    y, a = group_arrays(records, target, attribute)
    available = _count(y, a)
    smallest = min(available[group_key(gy, ga)] for gy, ga in GROUPS)
    if size is None:
        per_group = smallest
    elif size <= 0 or size % 4:
        raise ValueError(f"balanced subset size must be a positive multiple of 4, got {size}")
    else:
        per_group = size // 4
    if per_group == 0 or per_group > smallest:
        raise ValueError(
            f"{target} x {attribute} balanced: needs {per_group or 1} rows in each group, "
            f"smallest has {smallest}; available {_describe(available)}"
        )
    return _sample(records, y, a, {group_key(gy, ga): per_group for gy, ga in GROUPS}, seed)


def anticorrelated_subset(
    records: pd.DataFrame,
    target: str,
    attribute: str,
    p_a_given_y1: float | Fraction,
    p_a_given_y0: float | Fraction,
    size: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The shortcut reversed: rates 1 - p_a_given_y1 and 1 - p_a_given_y0 (test sets)."""
    p1, p0 = _rate("p_a_given_y1", p_a_given_y1), _rate("p_a_given_y0", p_a_given_y0)
    return shortcut_subset(records, target, attribute, 1 - p1, 1 - p0, size=size, seed=seed)


def study_split(
    records: pd.DataFrame,
    split: str,
    target: str,
    attribute: str,
    correlation: tuple[float, float] | None = None,
    split_by_patient: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """The records of one split of a shortcut study.

    The classifiers train and test on these, and an augment run plans its counterfactuals on
    the "train" ones, so that what it balances is the training set the classifier sees.

    Args:
        records: policy-applied records of the split's own CSV, or, with
            ``split_by_patient``, of the one CSV (CheXpert's train.csv) every split comes from.
        split: "train", "valid" or "test".
        target: the finding y.
        attribute: the spurious attribute a.
        correlation: (P(a=1 | y=1), P(a=1 | y=0)) set exactly in train and valid
            (``shortcut_subset``), with a group-balanced test; None keeps the records.
        split_by_patient: keep the split's patients (``add_splits``: 70/15/15 by patient).
        seed: the subset's draw, fixed for a study whatever seed its classifiers train with.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split_by_patient:
        named = add_splits(records)
        records = named[named["split"] == split].drop(columns="split")
    if correlation is None:
        return records
    if split == "test":
        return balanced_subset(records, target, attribute, seed=seed)[0]
    return shortcut_subset(records, target, attribute, *correlation, seed=seed)[0]
