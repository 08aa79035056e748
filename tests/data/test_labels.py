"""Label policies: every code under every choice, per-finding overrides, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prism_aug.data.labels import MASKED, LabelPolicy, apply_label_policy
from prism_aug.data.vocabulary import FINDINGS

NAN = float("nan")


def _records(codes: list[float]) -> pd.DataFrame:
    """One record per code, the same code in every finding, plus an unrelated column."""
    return pd.DataFrame(
        {"path": [f"r{i}" for i in range(len(codes))]} | dict.fromkeys(FINDINGS, codes)
    )


# (code, uncertain choice, blank choice) -> label
EXPECTED = {
    **{(1.0, u, b): 1 for u in ("zeros", "ones", "ignore") for b in ("zeros", "ignore")},
    **{(0.0, u, b): 0 for u in ("zeros", "ones", "ignore") for b in ("zeros", "ignore")},
    **{(-1.0, "zeros", b): 0 for b in ("zeros", "ignore")},
    **{(-1.0, "ones", b): 1 for b in ("zeros", "ignore")},
    **{(-1.0, "ignore", b): MASKED for b in ("zeros", "ignore")},
    **{(NAN, u, "zeros"): 0 for u in ("zeros", "ones", "ignore")},
    **{(NAN, u, "ignore"): MASKED for u in ("zeros", "ones", "ignore")},
}


@pytest.mark.parametrize(("code", "uncertain", "blank"), list(EXPECTED))
def test_every_code_under_every_choice(code: float, uncertain: str, blank: str) -> None:
    labels = apply_label_policy(_records([code]), LabelPolicy(uncertain, blank))
    expected = EXPECTED[(code, uncertain, blank)]
    assert all(labels[f].dtype == np.int8 for f in FINDINGS)
    assert labels[list(FINDINGS)].to_numpy().tolist() == [[expected] * len(FINDINGS)]


def test_default_policy_ignores_uncertain_and_reads_blank_as_negative() -> None:
    assert LabelPolicy() == LabelPolicy("ignore", "zeros")
    labels = apply_label_policy(_records([1.0, 0.0, -1.0, NAN]), LabelPolicy())
    assert labels["Edema"].tolist() == [1, 0, MASKED, 0]


def test_per_finding_override_others_ignore() -> None:
    policy = LabelPolicy(uncertain={"Edema": "ones", "Consolidation": "zeros"})
    assert policy.uncertain == (("Edema", "ones"), ("Consolidation", "zeros"))  # FINDINGS order
    assert policy == LabelPolicy(uncertain={"Consolidation": "zeros", "Edema": "ones"})
    assert hash(policy) == hash(LabelPolicy(uncertain={"Consolidation": "zeros", "Edema": "ones"}))
    assert policy.to_dict() == {
        "uncertain": {"Edema": "ones", "Consolidation": "zeros"},
        "blank": "zeros",
    }
    labels = apply_label_policy(_records([-1.0]), policy)
    assert labels["Edema"].tolist() == [1]
    assert labels["Consolidation"].tolist() == [0]
    assert labels["Atelectasis"].tolist() == [MASKED]


def test_input_is_not_modified_and_other_columns_pass_through() -> None:
    records = _records([-1.0, NAN])
    before = records.copy()
    labels = apply_label_policy(records, LabelPolicy("ones"))
    pd.testing.assert_frame_equal(records, before)
    assert labels["path"].tolist() == ["r0", "r1"]
    assert list(labels.columns) == list(records.columns)


def test_bad_policies_list_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown uncertain choice 'maybe'.*'zeros', 'ones'"):
        LabelPolicy("maybe")
    with pytest.raises(ValueError, match=r"unknown blank choice 'ones'.*\['zeros', 'ignore'\]"):
        LabelPolicy(blank="ones")
    with pytest.raises(ValueError, match=r"unknown finding 'Effusion'.*Pleural Effusion"):
        LabelPolicy(uncertain={"Effusion": "ones"})
    with pytest.raises(ValueError, match=r"uncertain \(Edema\) choice 'one'"):
        LabelPolicy(uncertain={"Edema": "one"})


def test_bad_records_are_named() -> None:
    records = _records([1.0, 0.5])
    with pytest.raises(ValueError, match=r"record index 1 has 0\.5 in 'No Finding'"):
        apply_label_policy(records, LabelPolicy())
    with pytest.raises(KeyError, match=r"lack finding column\(s\) \['Edema'\]"):
        apply_label_policy(records.drop(columns="Edema"), LabelPolicy())
