"""``prism-classify``: train and test a robustness method (LightningCLI).

    prism-classify fit --config configs/classifiers/synthcxr.yaml \
        [--model classifiers.GroupDRO --model.step_size 0.01] [--data.sampling rwg]
    prism-classify test --config configs/classifiers/synthcxr.yaml --ckpt_path BEST.ckpt

The method is the model class (ERM, GroupDRO) and the data module's sampler (SUBY, RWY,
SUBG, RWG). After ``fit`` the checkpoint chosen by the config's ModelCheckpoint (validation
worst-group accuracy by default) is tested, so the reported test metrics are that epoch's.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from classifiers.data import ClassifierDataModule
from classifiers.module import ERM
from prism_aug.lightning_cli import PrismCLI


class ClassifierCLI(PrismCLI):
    """LightningCLI whose ``fit`` ends by testing the selected checkpoint."""

    def after_fit(self) -> None:
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best")


def main(args: Sequence[str] | None = None) -> ClassifierCLI:
    """Run ``prism-classify`` on ``args`` (or the command line); returns the CLI, whose
    trainer holds the run's metrics."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return ClassifierCLI(
            ERM,
            ClassifierDataModule,
            subclass_mode_model=True,
            args=None if args is None else list(args),
            save_config_kwargs={"overwrite": True},
        )


if __name__ == "__main__":
    main()
