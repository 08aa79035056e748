"""The oracle's LightningModule: multi-label BCE over ORACLE_ATTRIBUTES, accuracy per stage."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import MultilabelAccuracy

from prism_aug.evaluation.oracle_data import ORACLE_ATTRIBUTES
from prism_aug.evaluation.oracle_network import OracleNetwork


class OracleModule(L.LightningModule):
    """Trains an :class:`OracleNetwork` to recognise every SynthCXR finding and device.

    Logs ``{stage}/loss`` and ``{stage}/acc`` (mean over attributes; per batch in training),
    and for val and test ``{stage}/acc/{name}`` for each ORACLE_ATTRIBUTES name.

    Args:
        network: maps ``(B, 1, H, W)`` in [0, 1] to ``(B, 11)`` logits.
        optimizer: builds the optimizer from the parameters (LightningCLI: ``optimizer:``
            with a class_path, e.g. torch.optim.AdamW).
        scheduler: optionally builds an LR scheduler from the optimizer, stepped every step.
        channels_last: train in NHWC memory format, as timm's ``--channels-last`` does
            (oneDNN's faster convolution layout on CPU; the export is the same weights).
    """

    def __init__(
        self,
        network: OracleNetwork,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network = network.to(memory_format=self.memory_format)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.loss = nn.BCEWithLogitsLoss()
        # One accuracy per stage, per attribute (a ModuleDict cannot hold a key named "train").
        k = len(ORACLE_ATTRIBUTES)
        self.train_acc = MultilabelAccuracy(num_labels=k, average=None)
        self.val_acc = MultilabelAccuracy(num_labels=k, average=None)
        self.test_acc = MultilabelAccuracy(num_labels=k, average=None)

    def _accuracy(self, stage: str) -> MultilabelAccuracy:
        return getattr(self, f"{stage}_acc")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in [0, 1] -> ``(B, 11)`` logits."""
        return self.network(images.contiguous(memory_format=self.memory_format))

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch  # (B, 1, H, W) in [0, 1], (B, 11) in {0, 1}
        logits = self(images)
        loss = self.loss(logits, labels)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train")
        if stage == "train":  # the batch's accuracy: a training epoch can be very long
            self.log("train/acc", self._accuracy(stage)(logits, labels.int()).mean())
        else:
            self._accuracy(stage).update(logits, labels.int())
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        return self.model_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.model_step(batch, "test")

    def _log_accuracy(self, stage: str) -> None:
        per_attribute = self._accuracy(stage).compute()  # (11,)
        self.log(f"{stage}/acc", per_attribute.mean(), prog_bar=True)
        for name, value in zip(ORACLE_ATTRIBUTES, per_attribute, strict=True):
            self.log(f"{stage}/acc/{name}", value)
        self._accuracy(stage).reset()

    def on_train_epoch_end(self) -> None:
        self._accuracy("train").reset()

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test")

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
