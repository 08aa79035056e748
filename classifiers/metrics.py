"""Group metrics of a binary classifier under a shortcut study, computed once per epoch.

Groups are (y, a) with index g = 2y + a: 0 = (y=0, a=0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1).
``GroupMetrics`` gathers (sample index, probability, y, g) across ranks, drops the samples
a distributed sampler padded in twice (same index), and computes everything from the one
de-duplicated set with torchmetrics' functional metrics:

- ``mean_acc`` (sample-weighted), ``acc_g{g}``, ``worst_group_acc``, ``mean_group_acc``,
  ``balanced_acc`` (mean of the per-class recalls), ``worst_class_acc``;
- ``auroc`` overall and ``min_auroc_within_a``: the smaller of the AUROCs among a = 0 and
  among a = 1 (within one (y, a) group AUROC is undefined: it holds one class);
- ``ece`` (15 bins), ``tpr_a{a}`` and ``fpr_a{a}`` per attribute value;
- ``shortcut_reliance``: mean |p(x) - p(x_cf)| over pairs of an image and its
  counterfactual with only the attribute flipped (when the batches carry pairs).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    multiclass_calibration_error,
)

N_GROUPS = 4
T = TypeVar("T", np.ndarray, torch.Tensor)


def group_index(y: T, a: T) -> T:
    """g = 2y + a for integer 0/1 arrays or tensors y and a."""
    return 2 * y + a


def group_metrics(probs: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> dict[str, float]:
    """Every metric of the module docstring for ``(N,)`` probabilities, labels and groups.

    A group with no sample has no accuracy and is left out of the worst and mean group
    accuracy; a subset with one class has no AUROC and is left out of the minimum.
    """
    y, groups = y.long(), groups.long()
    a = groups % 2
    correct = (probs >= 0.5).long() == y
    out = {
        "mean_acc": binary_accuracy(probs, y).item(),
        # Guo et al.'s ECE: the confidence of the predicted class against its accuracy.
        "ece": multiclass_calibration_error(
            torch.stack([1 - probs, probs], dim=1), y, num_classes=2, n_bins=15
        ).item(),
    }
    group_acc = {}
    for g in range(N_GROUPS):
        members = groups == g
        if members.any():
            group_acc[g] = correct[members].float().mean().item()
            out[f"acc_g{g}"] = group_acc[g]
    out["worst_group_acc"] = min(group_acc.values())
    out["mean_group_acc"] = sum(group_acc.values()) / len(group_acc)
    class_acc = [correct[y == c].float().mean().item() for c in (0, 1) if (y == c).any()]
    out["balanced_acc"] = sum(class_acc) / len(class_acc)
    out["worst_class_acc"] = min(class_acc)
    if y.unique().numel() == 2:
        out["auroc"] = binary_auroc(probs, y).item()
    within = []
    for value in (0, 1):
        subset = a == value
        if y[subset].unique().numel() == 2:
            within.append(binary_auroc(probs[subset], y[subset]).item())
        positives, negatives = subset & (y == 1), subset & (y == 0)
        if positives.any():
            out[f"tpr_a{value}"] = correct[positives].float().mean().item()
        if negatives.any():
            out[f"fpr_a{value}"] = 1.0 - correct[negatives].float().mean().item()
    if within:
        out["min_auroc_within_a"] = min(within)
    return out


class GroupMetrics(Metric):
    """Accumulates predictions of one epoch; ``compute`` returns ``group_metrics``."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("index", "probs", "y", "groups", "probs_cf"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        index: torch.Tensor,
        probs: torch.Tensor,
        y: torch.Tensor,
        groups: torch.Tensor,
        probs_cf: torch.Tensor | None = None,
    ) -> None:
        """One batch: sample indices, probabilities in [0, 1], labels and groups, ``(B,)``;
        with ``probs_cf``, the probabilities of the samples' counterfactuals."""
        self.index.append(index.long())
        self.probs.append(probs.float())
        self.y.append(y.long())
        self.groups.append(groups.long())
        if probs_cf is not None:
            self.probs_cf.append(probs_cf.float())

    def compute(self) -> dict[str, float]:
        def cat(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
            return torch.cat(state) if isinstance(state, list) else state

        index = cat(self.index)
        order = torch.argsort(index, stable=True)
        first = torch.ones_like(order, dtype=torch.bool)
        first[1:] = index[order][1:] != index[order][:-1]  # a padded repeat is dropped
        keep = order[first]
        probs = cat(self.probs)[keep]
        out = group_metrics(probs, cat(self.y)[keep], cat(self.groups)[keep])
        if len(self.probs_cf):
            out["shortcut_reliance"] = (probs - cat(self.probs_cf)[keep]).abs().mean().item()
        return out
