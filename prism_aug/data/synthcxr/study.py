"""The shortcut study a SynthCXR folder is written for: which labels each patient gets.

Train and valid correlate the attribute with the target (p(a | y)); test is group-balanced,
each (y, a) group a quarter. Labels are dealt by a seeded permutation, not coin flips, so the
realised group counts match the rates exactly up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism_aug.data.splits import SPLITS
from prism_aug.data.synthcxr.findings import SUPPORTED_FINDINGS
from prism_aug.data.synthcxr.render import SUPPORT_DEVICES
from prism_aug.data.vocabulary import DEVICES

STUDY_ATTRIBUTES: tuple[str, ...] = (*SUPPORTED_FINDINGS, *DEVICES, SUPPORT_DEVICES)


@dataclass(frozen=True)
class Study:
    """Label rates of a SynthCXR data set.

    Attributes:
        target: the finding a classifier predicts.
        attribute: the spurious cue: "Support Devices" (the patient's device kit), one device
            type, or another finding.
        p_attribute_given_target: p(a = 1 | y = 1) in train and valid.
        p_attribute_given_no_target: p(a = 1 | y = 0) in train and valid.
        target_prevalence: p(y = 1) in train and valid (test: 0.5).
        other_prevalence: share of patients with each other modelled finding, and with their
            device kit when the attribute is a finding.
    """

    target: str = "Pleural Effusion"
    attribute: str = SUPPORT_DEVICES
    p_attribute_given_target: float = 0.9
    p_attribute_given_no_target: float = 0.1
    target_prevalence: float = 0.5
    other_prevalence: float = 0.1

    def __post_init__(self) -> None:
        if self.target not in SUPPORTED_FINDINGS:
            raise ValueError(
                f"study target {self.target!r} is not drawn by SynthCXR; "
                f"choose one of: {', '.join(SUPPORTED_FINDINGS)}"
            )
        if self.attribute not in STUDY_ATTRIBUTES or self.attribute == self.target:
            valid = [a for a in STUDY_ATTRIBUTES if a != self.target]
            raise ValueError(
                f"study attribute {self.attribute!r} is invalid; choose one of: {', '.join(valid)}"
            )
        for name in (
            "p_attribute_given_target",
            "p_attribute_given_no_target",
            "target_prevalence",
            "other_prevalence",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"study {name} must be in [0, 1], got {getattr(self, name)}")


def _round(x: float) -> int:
    """Round half up (Python's round() goes to even)."""
    return int(np.floor(x + 0.5))


def group_counts(n: int, split: str, study: Study) -> dict[tuple[int, int], int]:
    """Patients per (y, a) group in a split of ``n``: the study's rates, rounded, summing to n."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "test":
        cuts = [_round(n * q) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
        sizes = np.diff(cuts)
        return {(1, 1): sizes[0], (1, 0): sizes[1], (0, 1): sizes[2], (0, 0): sizes[3]}
    n_y = _round(n * study.target_prevalence)
    a_y = _round(n_y * study.p_attribute_given_target)
    a_not_y = _round((n - n_y) * study.p_attribute_given_no_target)
    return {(1, 1): a_y, (1, 0): n_y - a_y, (0, 1): a_not_y, (0, 0): n - n_y - a_not_y}


def study_labels(n: int, split: str, study: Study, seed: int) -> dict[str, np.ndarray]:
    """Deal the study's labels to the ``n`` patients of a split (in patient order).

    Returns:
        ``{name: (n,) bool}`` for the target, the attribute, every other supported finding and,
        when the attribute is a finding, "Support Devices" (the patient's kit).
    """
    split_index = SPLITS.index(split) if split in SPLITS else -1
    rng = np.random.default_rng([seed, split_index, 0])
    groups = np.concatenate(
        [np.full(c, 2 * y + a) for (y, a), c in group_counts(n, split, study).items()]
    ).astype(np.int64)
    groups = groups[rng.permutation(n)]
    labels = {study.target: groups >= 2, study.attribute: groups % 2 == 1}
    others = [f for f in SUPPORTED_FINDINGS if f not in labels]
    if study.attribute in SUPPORTED_FINDINGS:
        others.append(SUPPORT_DEVICES)
    for k, name in enumerate(others, start=1):
        order = np.random.default_rng([seed, split_index, k]).permutation(n)
        labels[name] = order < _round(n * study.other_prevalence)
    return labels
