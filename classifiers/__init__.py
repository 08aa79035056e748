"""Robustness classifiers trained on real plus counterfactual data (the classifiers issue)."""

from classifiers.data import ClassifierDataModule
from classifiers.group_dro import GroupDRO
from classifiers.metrics import GroupMetrics, group_metrics
from classifiers.module import ERM

__all__ = ["ERM", "ClassifierDataModule", "GroupDRO", "GroupMetrics", "group_metrics"]
