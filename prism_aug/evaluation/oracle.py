"""The trained oracle as a judge: export to a folder, load it back, score images.

A folder holds ``model.safetensors`` (the OracleNetwork's weights) and ``oracle.json``::

    {"network": {"model_name": ..., "model_kwargs": ..., "mean": ..., "std": ...},
     "attributes": [...11 names...], "image_size": 64}

    oracle = load_oracle("outputs/models/oracle")
    p = oracle.predict_proba(images)   # (B, 11) in [0, 1], columns oracle.attributes
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from prism_aug.evaluation.oracle_data import ORACLE_ATTRIBUTES, images_to_tensor
from prism_aug.evaluation.oracle_network import OracleNetwork

WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "oracle.json"


def save_oracle(
    network: OracleNetwork,
    image_size: int,
    out_dir: str | Path,
    attributes: tuple[str, ...] = ORACLE_ATTRIBUTES,
) -> Path:
    """Write ``network`` (weights as safetensors, config as JSON) into ``out_dir``.

    Args:
        attributes: the names of the network's outputs, in order (the SynthCXR oracle's by
            default; an exported classifier's findings otherwise).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, out_dir / WEIGHTS_NAME)
    config = {
        "network": network.config,
        "attributes": list(attributes),
        "image_size": int(image_size),
    }
    (out_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return out_dir


class Oracle:
    """A trained oracle in eval mode; thread it through any code that judges images.

    Attributes:
        network: the OracleNetwork.
        attributes: the names of the 11 outputs, in order.
        image_size: the side images are resized to.
    """

    def __init__(self, network: OracleNetwork, attributes: tuple[str, ...], image_size: int):
        self.network = network.eval()
        self.attributes, self.image_size = tuple(attributes), int(image_size)

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, 11)`` float probabilities in [0, 1], one column per ``attributes`` name.

        Args:
            images: uint8 numpy ``(B, H, W)`` or float tensor ``(B, 1, H, W)`` in [0, 1], any
                side (resized to ``image_size``).
        """
        x = self._input(images)
        return torch.sigmoid(self.network(x)).cpu()

    @torch.no_grad()
    def features(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, D)`` pooled pre-logit features (for Frechet distances); inputs as above."""
        return self.network.features(self._input(images)).cpu()

    def _input(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        device = next(self.network.parameters()).device
        return images_to_tensor(images, self.image_size).to(device)

    def to(self, device: str | torch.device) -> Oracle:
        """Move the network to ``device``; outputs always come back on the CPU."""
        self.network.to(device)
        return self


def load_oracle(folder: str | Path) -> Oracle:
    """Load an oracle folder written by :func:`save_oracle` (safetensors, never pickle)."""
    folder = Path(folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not an oracle folder: {missing} missing; train one with "
            "`prism-aug oracle fit --config configs/oracle/synthcxr.yaml`"
        )
    config = json.loads((folder / CONFIG_NAME).read_text())
    network = OracleNetwork(**config["network"])
    network.load_state_dict(load_file(folder / WEIGHTS_NAME))
    return Oracle(network, tuple(config["attributes"]), config["image_size"])


class ExportOracle(L.Callback):
    """At the end of fit, save the module's network as an oracle folder (:func:`save_oracle`).

    Args:
        out_dir: the folder written; :func:`load_oracle` reads it.
    """

    def __init__(self, out_dir: Path = Path("outputs/models/oracle")) -> None:
        self.out_dir = Path(out_dir)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            save_oracle(pl_module.network, trainer.datamodule.size, self.out_dir)
