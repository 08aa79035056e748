"""The classifier: a timm network of one target finding, trained by ERM or a subclass.

``ERM.objective`` turns per-sample losses into the training loss; a method that changes
only the loss (GroupDRO, JTT's upweighting) overrides that one hook, so the diff between
two methods is the method. Validation and test compute ``GroupMetrics`` once per epoch and
log them as ``val/<metric>`` and ``test/<metric>``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import timm
import torch
import torch.nn.functional as F

from classifiers.metrics import GroupMetrics


def load_weights(network: torch.nn.Module, path: str | Path) -> None:
    """Load a local checkpoint safely (safetensors, or torch.load with weights_only)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # A 3-channel stem is summed to one channel, as timm adapts pretrained weights.
    stem = next(k for k, v in network.state_dict().items() if v.ndim == 4)
    if stem in state and state[stem].shape[1] == 3:
        state[stem] = state[stem].sum(dim=1, keepdim=True)
    head = {k for k, v in network.state_dict().items() if k in state and v.shape != state[k].shape}
    missing, _ = network.load_state_dict(
        {k: v for k, v in state.items() if k not in head}, strict=False
    )
    unexpected_missing = [k for k in missing if k not in head and not k.startswith(("fc", "head"))]
    if unexpected_missing:
        raise KeyError(f"{path}: weights for {unexpected_missing[:5]} missing")


class ERM(L.LightningModule):
    """Empirical risk minimisation of a binary target with a timm network.

    Args:
        model_name: any timm model (resnet18 here; densenet121 or resnet50 on CheXpert).
        pretrained: a local weights file (offline): safetensors or a torch state dict.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        pretrained: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.network = timm.create_model(model_name, pretrained=False, in_chans=1, num_classes=1)
        if pretrained is not None:
            load_weights(self.network, pretrained)
        self.val_metrics, self.test_metrics = GroupMetrics(), GroupMetrics()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` of images ``(B, 1, S, S)``."""
        return self.network(images)[:, 0]

    def objective(self, losses: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss from per-sample losses ``(B,)`` of ``batch`` (its ``index``,
        ``y`` and ``group`` say which samples they are)."""
        return losses.mean()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        losses = F.binary_cross_entropy_with_logits(
            logits.float(), batch["y"].float(), reduction="none"
        )
        loss = self.objective(losses, batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: GroupMetrics) -> None:
        probs = torch.sigmoid(self(batch["image"]).float())
        probs_cf = None
        if "image_cf" in batch:
            probs_cf = torch.sigmoid(self(batch["image_cf"]).float())
        metrics.update(batch["index"], probs, batch["y"], batch["group"], probs_cf)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def _log_metrics(self, split: str, metrics: GroupMetrics) -> None:
        values = metrics.compute()
        self.log_dict({f"{split}/{k}": v for k, v in values.items()}, sync_dist=False)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
