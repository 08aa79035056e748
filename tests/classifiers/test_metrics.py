"""Group metrics against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from classifiers.metrics import GroupMetrics, group_metrics

# Two samples per group g = 2y + a; the threshold is 0.5.
PROBS = torch.tensor([0.1, 0.2, 0.7, 0.4, 0.9, 0.3, 0.6, 0.8])
Y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
GROUPS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def test_metrics_match_hand_computed_values():
    m = group_metrics(PROBS, Y, GROUPS)
    # correct: g0 both, g1 one of two (0.4), g2 one of two (0.9), g3 both
    assert m["mean_acc"] == pytest.approx(6 / 8)
    assert [m[f"acc_g{g}"] for g in range(4)] == pytest.approx([1.0, 0.5, 0.5, 1.0])
    assert m["worst_group_acc"] == pytest.approx(0.5)
    assert m["mean_group_acc"] == pytest.approx(0.75)
    assert m["balanced_acc"] == pytest.approx(0.75) and m["worst_class_acc"] == 0.75
    # a=0: negatives 0.1, 0.2 vs positives 0.9, 0.3 -> pairs won 2 + 1 of 4
    # a=1: negatives 0.7, 0.4 vs positives 0.6, 0.8 -> pairs won 1 + 2 of 4
    assert m["min_auroc_within_a"] == pytest.approx(0.75)
    # overall: 4 negatives x 4 positives; positive 0.9 beats 4, 0.3 beats 2, 0.6 beats 3,
    # 0.8 beats 4: 13 / 16
    assert m["auroc"] == pytest.approx(13 / 16)
    assert m["tpr_a0"] == 0.5 and m["tpr_a1"] == 1.0
    assert m["fpr_a0"] == 0.0 and m["fpr_a1"] == 0.5
    # ECE with 15 bins: each sample in its own bin, |confidence - correct| averaged
    confidence = torch.where(PROBS >= 0.5, PROBS, 1 - PROBS)
    correct = torch.tensor([1, 1, 0, 1, 1, 0, 1, 1]).float()
    assert m["ece"] == pytest.approx((confidence - correct).abs().mean().item(), abs=1e-6)


def test_ece_is_the_predicted_class_confidence_against_accuracy():
    # Guo et al.: both predictions have confidence 0.7, one right: one bin, |0.7 - 0.5|. The
    # positive-class reading (0.3 and 0.7 against y = 1) would give 0.5.
    m = group_metrics(torch.tensor([0.3, 0.7]), torch.tensor([1, 1]), torch.tensor([2, 3]))
    assert m["ece"] == pytest.approx(0.2, abs=1e-6)


def test_an_empty_group_is_left_out():
    keep = GROUPS != 1
    m = group_metrics(PROBS[keep], Y[keep], GROUPS[keep])
    assert "acc_g1" not in m and m["worst_group_acc"] == 0.5 and m["mean_group_acc"] == 2.5 / 3


def test_padded_repeats_are_counted_once():
    metric = GroupMetrics()
    index = torch.arange(8)
    metric.update(index[:5], PROBS[:5], Y[:5], GROUPS[:5])
    metric.update(index[4:], PROBS[4:], Y[4:], GROUPS[4:])  # sample 4 again, as DDP pads
    assert metric.compute() == group_metrics(PROBS, Y, GROUPS)
