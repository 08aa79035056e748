"""Robustness classifiers trained on real plus counterfactual data (the classifiers issue)."""

from classifiers.data import ClassifierDataModule
from classifiers.dfr import DFR
from classifiers.group_dro import GroupDRO
from classifiers.jtt import JTT
from classifiers.metrics import GroupMetrics, group_metrics
from classifiers.module import ERM

__all__ = [
    "DFR",
    "ERM",
    "JTT",
    "ClassifierDataModule",
    "GroupDRO",
    "GroupMetrics",
    "group_metrics",
]
