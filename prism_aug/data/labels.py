"""Label policies: what CheXpert's uncertain (-1) and blank codes mean for training.

CheXpert codes each finding 1.0 positive, 0.0 negative, -1.0 uncertain and blank for "not
mentioned". Models need 0/1 targets, and the right reading of an uncertain label differs per
finding (Irvin et al. 2019: U-Ones suits Atelectasis and Edema, U-Zeros Consolidation), so
the policy is chosen per finding. The result uses ``MASKED`` (-1) for "leave this label out
of losses and metrics".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prism_aug.data.vocabulary import FINDINGS, check_finding

MASKED = -1
UNCERTAIN_CHOICES: tuple[str, ...] = ("zeros", "ones", "ignore")
BLANK_CHOICES: tuple[str, ...] = ("zeros", "ignore")
# What each choice turns a code into; "ignore" masks the label.
_VALUE = {"zeros": 0, "ones": 1, "ignore": MASKED}


def _check_choice(what: str, choice: object, valid: tuple[str, ...]) -> str:
    if choice not in valid:
        raise ValueError(f"unknown {what} choice {choice!r}; expected one of {list(valid)}")
    return choice


@dataclass(frozen=True)
class LabelPolicy:
    """How uncertain and blank codes become training labels.

    Args:
        uncertain: "zeros", "ones" or "ignore" for every finding, or a mapping finding ->
            choice for a per-finding policy (``{"Atelectasis": "ones", "Edema": "ones"}``);
            findings left out of the mapping use "ignore". A mapping is stored as a tuple of
            (finding, choice) pairs in FINDINGS order, so policies compare and hash.
        blank: "zeros" (not mentioned means absent, CheXpert's convention) or "ignore".
    """

    uncertain: str | Mapping[str, str] | tuple[tuple[str, str], ...] = "ignore"
    blank: str = "zeros"

    def __post_init__(self) -> None:
        _check_choice("blank", self.blank, BLANK_CHOICES)
        if isinstance(self.uncertain, str):
            _check_choice("uncertain", self.uncertain, UNCERTAIN_CHOICES)
            return
        overrides = dict(self.uncertain)
        for finding, choice in overrides.items():
            check_finding(finding)
            _check_choice(f"uncertain ({finding})", choice, UNCERTAIN_CHOICES)
        pairs = tuple((f, overrides[f]) for f in FINDINGS if f in overrides)
        object.__setattr__(self, "uncertain", pairs)

    def uncertain_choice(self, finding: str) -> str:
        """The choice applied to ``finding``'s uncertain labels."""
        check_finding(finding)
        if isinstance(self.uncertain, str):
            return self.uncertain
        return dict(self.uncertain).get(finding, "ignore")

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly description (for summaries and run metadata)."""
        uncertain = self.uncertain if isinstance(self.uncertain, str) else dict(self.uncertain)
        return {"uncertain": uncertain, "blank": self.blank}


def apply_label_policy(records: pd.DataFrame, policy: LabelPolicy) -> pd.DataFrame:
    """Return a copy of ``records`` whose 14 finding columns are int8 in {1, 0, MASKED}.

    Raises:
        KeyError: a finding column is missing.
        ValueError: a code is not 1, 0, -1 or blank (names the row index and column).
    """
    missing = [f for f in FINDINGS if f not in records.columns]
    if missing:
        raise KeyError(f"records lack finding column(s) {missing}; columns are {list(records)}")
    codes = records[list(FINDINGS)].to_numpy(dtype=np.float64)  # (N, 14)
    valid = np.isin(codes, (1.0, 0.0, -1.0)) | np.isnan(codes)
    if not valid.all():
        row, col = np.argwhere(~valid)[0]
        raise ValueError(
            f"record index {records.index[row]!r} has {float(codes[row, col])} in "
            f"{FINDINGS[col]!r}; label codes are 1.0, 0.0, -1.0 or blank"
        )
    uncertain = np.array([_VALUE[policy.uncertain_choice(f)] for f in FINDINGS], np.int8)
    labels = np.where(codes == 1.0, 1, 0).astype(np.int8)
    labels = np.where(codes == -1.0, uncertain, labels)  # uncertain broadcast over rows
    labels = np.where(np.isnan(codes), np.int8(_VALUE[policy.blank]), labels).astype(np.int8)
    return records.assign(**{f: labels[:, i] for i, f in enumerate(FINDINGS)})
