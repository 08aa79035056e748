"""Patient-level splits: proportions, determinism, stability, no leakage, bad fractions."""

from __future__ import annotations

import pandas as pd
import pytest

from prism_aug.data.splits import SPLITS, add_splits, split_patients


@pytest.fixture(scope="module")
def patients() -> pd.Series:
    """~20k patients with 1 to 4 rows each (several studies per patient)."""
    ids = [f"patient{i:05d}" for i in range(1, 20_001)]
    return pd.Series([p for i, p in enumerate(ids) for _ in range(1 + i % 4)], name="patient_id")


def test_proportions_roughly_hold(patients: pd.Series) -> None:
    split = split_patients(patients)
    per_patient = split.groupby(patients).first().value_counts(normalize=True)
    for name, share in zip(SPLITS, (0.70, 0.15, 0.15), strict=True):
        assert abs(per_patient[name] - share) < 0.015, per_patient


def test_deterministic_and_salted(patients: pd.Series) -> None:
    assert split_patients(patients).equals(split_patients(patients))
    assert not split_patients(patients, salt="other").equals(split_patients(patients))


def test_no_patient_in_two_splits(patients: pd.Series) -> None:
    split = split_patients(patients)
    assert (split.groupby(patients).nunique() == 1).all()


def test_adding_rows_never_moves_a_patient(patients: pd.Series) -> None:
    before = pd.DataFrame({"patient_id": patients, "split": split_patients(patients)})
    more = pd.concat([pd.Series(["patient99999", "patient00003"] * 3), patients[::-1]])
    after = pd.DataFrame({"patient_id": more.to_numpy(), "split": split_patients(more).to_numpy()})
    merged = before.drop_duplicates().merge(after.drop_duplicates(), on="patient_id")
    assert len(merged) == patients.nunique()
    assert (merged["split_x"] == merged["split_y"]).all()


def test_custom_fractions_and_add_splits() -> None:
    records = pd.DataFrame({"patient_id": [f"p{i}" for i in range(50)], "x": range(50)})
    assert set(add_splits(records, (1.0, 0.0, 0.0))["split"]) == {"train"}
    assert list(add_splits(records).columns) == ["patient_id", "x", "split"]
    with pytest.raises(KeyError, match="no 'patient_id' column"):
        add_splits(records.drop(columns="patient_id"))


@pytest.mark.parametrize(
    ("fractions", "message"),
    [((0.7, 0.3), "need 3 values"), ((0.7, 0.2, 0.2), "sum to 1"), ((1.2, -0.1, -0.1), ">= 0")],
)
def test_bad_fractions_raise(patients: pd.Series, fractions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_patients(patients.head(10), fractions)
