"""Just Train Twice (Liu et al., ICML 2021): upweight what a short ERM run got wrong.

Stage 1 trains ERM for a few epochs; ``ErrorSetWriter`` then writes the indices of the
training samples that model misclassifies (the error set). Stage 2, ``JTT``, trains a new
model with the error set upweighted by lambda_up: the weighted mean of per-sample losses,
which equals the mean loss over the training set with each error repeated lambda_up times.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from classifiers.module import ERM


@torch.no_grad()
def misclassified(model: ERM, loader: DataLoader) -> list[int]:
    """Indices of the samples ``model`` gets wrong, in index order."""
    model.eval()
    wrong = []
    for batch in loader:
        logits = model(batch["image"].to(model.device))[:, model.target_column]
        miss = (logits >= 0).long().cpu() != batch["y"]
        wrong.extend(batch["index"][miss].tolist())
    return sorted(wrong)


class ErrorSetWriter(L.Callback):
    """At the end of stage 1, write the misclassified training indices to ``path`` (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_fit_end(self, trainer: L.Trainer, pl_module: ERM) -> None:
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        loader = DataLoader(data.datasets["train"], batch_size=data.batch_size)
        errors = misclassified(pl_module, loader)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"errors": errors, "train_size": len(loader.dataset)}))


class JTT(ERM):
    """Stage 2 of JTT: ERM with the stage-1 error set upweighted.

    Args:
        error_set: the JSON ``ErrorSetWriter`` wrote.
        upweight: lambda_up, the weight of an error-set sample (the paper tunes 20..100).
        **kwargs: ERM's.
    """

    def __init__(self, error_set: Path, upweight: float = 20.0, **kwargs) -> None:
        super().__init__(**kwargs)
        saved = json.loads(Path(error_set).read_text())
        weights = torch.ones(saved["train_size"])
        weights[torch.tensor(saved["errors"], dtype=torch.long)] = upweight
        self.register_buffer("sample_weights", weights, persistent=False)

    def objective(self, losses: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.sample_weights[batch["index"]]
        return (weights * losses).sum() / weights.sum()
