"""Shortcut subsets: exact rates, largest size, requested sizes, exclusions and errors."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from prism_aug.data.shortcuts import (
    anticorrelated_subset,
    balanced_subset,
    group_counts,
    shortcut_subset,
)

Y, A = "Pleural Effusion", "Support Devices"


def _table(n11: int, n10: int, n01: int, n00: int, excluded: int = 0, seed: int = 0):
    """Records with the given (y, a) group counts, shuffled, plus rows with y or a unclear."""
    y = [1] * (n11 + n10) + [0] * (n01 + n00)
    a = [1] * n11 + [0] * n10 + [1] * n01 + [0] * n00
    unclear = [(-1, 1), (1, -1), (np.nan, 0), (0, np.nan)] * excluded
    y += [u for u, _ in unclear]
    a += [v for _, v in unclear]
    order = np.random.default_rng(seed).permutation(len(y))
    return pd.DataFrame({Y: np.asarray(y, float)[order], A: np.asarray(a, float)[order]})


def _rates(counts: dict[str, int]) -> tuple[Fraction, Fraction]:
    y1 = counts["y=1,a=1"] + counts["y=1,a=0"]
    y0 = counts["y=0,a=1"] + counts["y=0,a=0"]
    return Fraction(counts["y=1,a=1"], y1), Fraction(counts["y=0,a=1"], y0)


def _observed(subset: pd.DataFrame) -> dict[str, int]:
    counts = group_counts(subset, Y, A)
    assert counts.pop("excluded") == 0
    return counts


def test_group_counts_report_excluded_rows() -> None:
    records = _table(5, 4, 3, 2, excluded=2)
    assert group_counts(records, Y, A) == {
        "y=1,a=1": 5,
        "y=1,a=0": 4,
        "y=0,a=1": 3,
        "y=0,a=0": 2,
        "excluded": 8,
    }


def test_attribute_kinds() -> None:
    records = pd.DataFrame(
        {
            Y: [1.0, 1.0, 0.0, 0.0, 1.0],
            A: [1.0, 0.0, 1.0, -1.0, 0.0],
            "Devices": ["Chest Tube;Pacemaker", None, "Chest Tube", "", "Central Line"],
            "Sex": ["Female", "Male", None, "Female", "Male"],
        }
    )
    assert group_counts(records, Y, "Chest Tube") == {
        "y=1,a=1": 1,
        "y=1,a=0": 2,
        "y=0,a=1": 1,
        "y=0,a=0": 1,
        "excluded": 0,
    }
    # a missing Sex is excluded, like an uncertain label
    assert group_counts(records, Y, "Sex=Female") == {
        "y=1,a=1": 1,
        "y=1,a=0": 2,
        "y=0,a=1": 1,
        "y=0,a=0": 0,
        "excluded": 1,
    }
    assert group_counts(records, Y, A)["excluded"] == 1
    # CheXpert's column names reach the record columns; numeric columns compare as numbers
    records = records.rename(columns={"Sex": "sex"}).assign(age=[60.0, 70, 60, np.nan, 80])
    assert group_counts(records, Y, "Sex=Female") == group_counts(records, Y, "sex=Female")
    assert group_counts(records, Y, "Age=60")["y=0,a=1"] == 1
    assert group_counts(records, Y, "Age=60")["excluded"] == 1


def test_attribute_and_target_errors_list_the_choices() -> None:
    records = pd.DataFrame({Y: [1.0], A: [0.0], "Sex": ["Female"]})
    with pytest.raises(ValueError, match=r"unknown attribute 'Tube'.*Support Devices.*Pacemaker"):
        group_counts(records, Y, "Tube")
    with pytest.raises(KeyError, match=r"column 'Race'.*columns are \['Pleural Effusion'"):
        group_counts(records, Y, "Race=White")
    with pytest.raises(ValueError, match=r"no record has Sex = 'female'.*\['Female'\]"):
        group_counts(records, Y, "Sex=female")
    with pytest.raises(ValueError, match=r"'Y=old': Y is numeric, 'old' is not"):
        group_counts(records.assign(Y=[1]), Y, "Y=old")
    with pytest.raises(KeyError, match="no 'Devices' column"):
        group_counts(records, Y, "Pacemaker")
    with pytest.raises(ValueError, match=r"unknown finding 'Effusion'.*Pleural Effusion"):
        group_counts(records, "Effusion", A)


def test_largest_subset_has_exact_rates_and_excludes_unclear_rows() -> None:
    records = _table(300, 80, 120, 500, excluded=10)
    subset, counts = shortcut_subset(records, Y, A, 0.9, 0.1)
    # y=1: blocks of 10 (9 with a=1) limited by 80 a=0 rows and 300 a=1 rows -> 33 blocks
    # y=0: blocks of 10 (1 with a=1) limited by 500 a=0 rows -> 55 blocks
    assert counts == {
        "y=1,a=1": 297,
        "y=1,a=0": 33,
        "y=0,a=1": 55,
        "y=0,a=0": 495,
        "excluded": 40,
    }
    assert _observed(subset) == {k: v for k, v in counts.items() if k != "excluded"}
    assert _rates(counts) == (Fraction(9, 10), Fraction(1, 10))
    assert subset.index.is_monotonic_increasing  # original order


def _brute_force_class(p: Fraction, n_a1: int, n_a0: int) -> int:
    """The most rows of one class (at least one) whose a=1 share is exactly p."""
    sizes = [
        c1 + c0
        for c1, c0 in itertools.product(range(n_a1 + 1), range(n_a0 + 1))
        if c1 + c0 and Fraction(c1, c1 + c0) == p
    ]
    return max(sizes, default=0)


@pytest.mark.parametrize(
    ("p1", "p0"), [(0.9, 0.1), (0.5, 0.5), (2 / 3, 0.25), (1.0, 0.0), (0.75, Fraction(1, 3))]
)
def test_largest_subset_is_optimal_on_small_tables(p1: float, p0: float) -> None:
    rng = np.random.default_rng(1)
    for n11, n10, n01, n00 in rng.integers(0, 13, size=(25, 4)).tolist():
        records = _table(n11, n10, n01, n00)
        best1 = _brute_force_class(Fraction(p1).limit_denominator(1000), n11, n10)
        best0 = _brute_force_class(Fraction(p0).limit_denominator(1000), n01, n00)
        if not best1 or not best0:
            with pytest.raises(ValueError, match="needs at least one block"):
                shortcut_subset(records, Y, A, p1, p0)
            continue
        subset, counts = shortcut_subset(records, Y, A, p1, p0)
        assert len(subset) == best1 + best0
        assert _rates(counts) == (
            Fraction(p1).limit_denominator(1000),
            Fraction(p0).limit_denominator(1000),
        )


def test_requested_size_keeps_prevalence_and_rates() -> None:
    records = _table(600, 200, 300, 900)  # prevalence of y=1: 0.4
    subset, counts = shortcut_subset(records, Y, A, 0.8, 0.2, size=500)
    assert len(subset) == 500
    assert counts["y=1,a=1"] + counts["y=1,a=0"] == 200
    assert _rates(counts) == (Fraction(4, 5), Fraction(1, 5))
    # 0.9 and 0.1 need blocks of 10 rows in each class, so 505 rows cannot keep them exact
    with pytest.raises(ValueError, match=r"size 505 cannot be split into blocks of 10"):
        shortcut_subset(records, Y, A, 0.9, 0.1, size=505)


def test_requested_size_too_large_names_the_counts() -> None:
    records = _table(600, 200, 300, 900)
    with pytest.raises(ValueError, match=r"size 1900 needs 760 y=1 rows .* at most 400 and 600"):
        shortcut_subset(records, Y, A, 0.5, 0.5, size=1900)
    with pytest.raises(ValueError, match=r"needs 1000 y=1 rows \(900 with a=1\).*y=1,a=1: 600"):
        shortcut_subset(records, Y, A, 0.9, 0.1, size=2500)


def test_sampling_is_deterministic_per_seed() -> None:
    records = _table(100, 100, 100, 100)
    first, _ = shortcut_subset(records, Y, A, 0.7, 0.3, seed=3)
    again, _ = shortcut_subset(records, Y, A, 0.7, 0.3, seed=3)
    other, _ = shortcut_subset(records, Y, A, 0.7, 0.3, seed=4)
    assert first.index.tolist() == again.index.tolist()
    assert first.index.tolist() != other.index.tolist()


def test_bad_rates() -> None:
    records = _table(10, 10, 10, 10)
    with pytest.raises(ValueError, match=r"p_a_given_y1 must be in \[0, 1\], got 1.5"):
        shortcut_subset(records, Y, A, 1.5, 0.1)
    with pytest.raises(ValueError, match=r"p_a_given_y0=0.12345.*denominator <= 1000"):
        shortcut_subset(records, Y, A, 0.9, 0.12345)


def test_balanced_subset() -> None:
    records = _table(40, 7, 12, 90, excluded=3)
    subset, counts = balanced_subset(records, Y, A)
    assert counts == {
        "y=1,a=1": 7,
        "y=1,a=0": 7,
        "y=0,a=1": 7,
        "y=0,a=0": 7,
        "excluded": 12,
    }
    assert _observed(subset) == dict.fromkeys(["y=1,a=1", "y=1,a=0", "y=0,a=1", "y=0,a=0"], 7)
    assert len(balanced_subset(records, Y, A, size=20)[0]) == 20
    with pytest.raises(ValueError, match="positive multiple of 4, got 22"):
        balanced_subset(records, Y, A, size=22)
    with pytest.raises(ValueError, match=r"needs 8 rows in each group, smallest has 7"):
        balanced_subset(records, Y, A, size=32)
    with pytest.raises(ValueError, match=r"needs 1 rows in each group, smallest has 0"):
        balanced_subset(_table(5, 0, 5, 5), Y, A)


def test_anticorrelated_subset_reverses_the_rates() -> None:
    records = _table(200, 200, 200, 200)
    _, counts = anticorrelated_subset(records, Y, A, 0.9, 0.2)
    assert _rates(counts) == (Fraction(1, 10), Fraction(4, 5))
    # y=1: blocks of 10 with 9 a=0 rows -> 200 // 9 = 22 blocks; y=0: blocks of 5 with 4 a=1
    assert counts == {
        "y=1,a=1": 22,
        "y=1,a=0": 198,
        "y=0,a=1": 200,
        "y=0,a=0": 50,
        "excluded": 0,
    }
