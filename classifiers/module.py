"""The classifier: a timm network of one target finding, trained by ERM or a subclass.

With ``findings`` the head predicts those findings at once (the multi-label task: the 14
CheXpert findings, masked codes left out of the loss); the study's ``target`` column still
feeds the group metrics, and the validation and test metrics add each finding's AUROC
(``auroc_<finding>``) and their mean (``mean_auroc``).

``ERM.objective`` turns per-sample losses into the training loss; a method that changes
only the loss (GroupDRO, JTT's upweighting) overrides that one hook, so the diff between
two methods is the method. Validation and test compute ``GroupMetrics`` once per epoch and
log them as ``val/<metric>`` and ``test/<metric>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import timm
import torch
import torch.nn.functional as F
from torchmetrics.classification import MultilabelAUROC, MultilabelStatScores

from classifiers.metrics import GroupMetrics
from prism_aug.data.vocabulary import FINDINGS, check_finding


def checkpoint_network(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The network weights (without the ``network.`` prefix) and the hyperparameters of a
    Lightning checkpoint of one of these modules, loaded with ``weights_only``."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    weights = {
        key.removeprefix("network."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("network.")
    }
    return weights, checkpoint.get("hyper_parameters", {})


class ERM(L.LightningModule):
    """Empirical risk minimisation of a binary target with a timm network.

    Args:
        model_name: any timm model (resnet18 here; densenet121 or resnet50 on CheXpert).
        pretrained: a local ImageNet weights file (offline): safetensors or a torch state
            dict, in timm's or torchvision's names.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        findings: the multi-label task's findings (e.g. all 14); None: the binary target.
        target: the finding whose column feeds the group metrics in the multi-label task.
        channels_last: run the network in NHWC memory format, as timm's ``--channels-last``
            does (oneDNN's faster layout for bf16 convolutions; the weights are the same).
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        pretrained: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        findings: list[str] | None = None,
        target: str = "Pleural Effusion",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        columns = [FINDINGS.index(check_finding(f)) for f in findings or []]
        if findings and target not in findings:
            raise ValueError(f"target {target!r} is not among the findings {findings}")
        self.findings = list(findings or [])
        self.target_column = self.findings.index(target) if findings else 0
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        # timm's own loading of a local file: the model's key filter (torchvision's
        # DenseNet names), the RGB stem summed to one channel, a new head of our size.
        self.network = timm.create_model(
            model_name,
            pretrained=pretrained is not None,
            pretrained_cfg_overlay=None if pretrained is None else {"file": str(pretrained)},
            in_chans=1,
            num_classes=max(len(columns), 1),
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        self.val_metrics, self.test_metrics = GroupMetrics(), GroupMetrics()
        if findings:
            labels = {"num_labels": len(findings), "average": None, "ignore_index": -1}
            self.val_auroc, self.test_auroc = MultilabelAUROC(**labels), MultilabelAUROC(**labels)
            # Which findings had both classes: torchmetrics scores a one-class finding 0.
            self.val_counts = MultilabelStatScores(**labels)
            self.test_counts = MultilabelStatScores(**labels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` of images ``(B, 1, S, S)``; C = 1 for the binary target."""
        return self.network(images.contiguous(memory_format=self.memory_format))

    def objective(self, losses: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss from per-sample losses ``(B,)`` of ``batch`` (its ``index``,
        ``y`` and ``group`` say which samples they are)."""
        return losses.mean()

    def sample_losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-sample BCE ``(B,)``: of the target, or the mean over unmasked findings."""
        if not self.findings:
            return F.binary_cross_entropy_with_logits(
                logits[:, 0].float(), batch["y"].float(), reduction="none"
            )
        codes = batch["findings"][:, self.columns]
        known = (codes >= 0).float()
        each = F.binary_cross_entropy_with_logits(
            logits.float(), codes.clamp(min=0).float(), reduction="none"
        )
        return (each * known).sum(dim=1) / known.sum(dim=1).clamp(min=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.sample_losses(self(batch["image"]), batch)
        loss = self.objective(losses, batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str) -> None:
        logits = self(batch["image"]).float()
        probs = torch.sigmoid(logits[:, self.target_column])
        probs_cf = None
        if "image_cf" in batch:
            probs_cf = torch.sigmoid(self(batch["image_cf"]).float()[:, self.target_column])
        metrics = getattr(self, f"{split}_metrics")
        metrics.update(batch["index"], probs, batch["y"], batch["group"], probs_cf)
        if self.findings:
            codes = batch["findings"][:, self.columns]
            getattr(self, f"{split}_auroc").update(torch.sigmoid(logits), codes)
            getattr(self, f"{split}_counts").update(torch.sigmoid(logits), codes)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _log_metrics(self, split: str) -> None:
        metrics = getattr(self, f"{split}_metrics")
        values = metrics.compute()
        metrics.reset()
        if self.findings:
            auroc, counts = getattr(self, f"{split}_auroc"), getattr(self, f"{split}_counts")
            tp, fp, tn, fn, _ = counts.compute().T  # (findings,) each
            both_classes = (tp + fn > 0) & (fp + tn > 0)
            per_finding = auroc.compute().masked_fill(~both_classes, float("nan"))
            auroc.reset()
            counts.reset()
            named = zip(self.findings, per_finding.tolist(), strict=True)
            values.update({f"auroc_{finding}": value for finding, value in named})
            values["mean_auroc"] = per_finding.nanmean().item()
        self.log_dict({f"{split}/{k}": v for k, v in values.items()}, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            [p for p in self.parameters() if p.requires_grad],  # DFR's: the head alone
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),  # one kernel for all the parameters
        )
