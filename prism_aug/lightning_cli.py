"""The LightningCLI every prism-aug program builds on."""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from prism_aug.precision import native_precision


class PrismCLI(LightningCLI):
    """LightningCLI whose Trainer runs a precision this machine computes natively
    (``bf16-mixed`` in a config becomes ``32-true`` on a CPU without bf16 kernels)."""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config["trainer"]
        trainer["precision"] = native_precision(trainer["precision"], trainer["accelerator"])
