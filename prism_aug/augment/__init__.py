"""Counterfactuals at scale: plan, a Lightning predict run, webdataset shards, a manifest."""

from prism_aug.augment.data import AugmentDataModule
from prism_aug.augment.module import AugmentModule
from prism_aug.augment.plan import PlanSettings, make_plan
from prism_aug.augment.reader import read_augmented
from prism_aug.augment.writer import ShardPredictionWriter

__all__ = [
    "AugmentDataModule",
    "AugmentModule",
    "PlanSettings",
    "ShardPredictionWriter",
    "make_plan",
    "read_augmented",
]
