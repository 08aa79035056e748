"""Deep Feature Reweighting (Kirichenko et al., ICLR 2023): refit only the last layer.

A trained ERM model's features are kept; its final linear layer is retrained on held-out
data sampled group-balanced (the data module's ``held_out_training`` with ``sampling:
subg``: half of the validation split trains the head, the other half selects it).
"""

from __future__ import annotations

from pathlib import Path

from classifiers.module import ERM, checkpoint_network


class DFR(ERM):
    """ERM's network from ``base`` with everything but the classifier head frozen.

    Args:
        base: the ERM checkpoint (a Lightning ``.ckpt``) whose features are kept.
        **kwargs: ERM's (the same ``model_name``).
    """

    def __init__(self, base: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        weights, _ = checkpoint_network(base)
        self.network.load_state_dict(weights)
        self.head = self.network.get_classifier()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        for parameter in self.head.parameters():
            parameter.requires_grad_(True)

    def train(self, mode: bool = True) -> DFR:
        """The frozen features stay in eval mode (batch-norm statistics are not refit)."""
        super().train(mode)
        self.network.eval()
        return self
