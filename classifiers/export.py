"""Export a multi-label ``prism-classify`` checkpoint as an attribute-classifier folder.

    python -m classifiers.export outputs/classifiers/chexpert/.../best.ckpt \
        outputs/models/chexpert_attributes --image_size 224

The folder has the oracle's format (``oracle.json`` + ``model.safetensors``), so
``prism-aug augment`` and ``prism-aug edit`` take it as ``--model.oracle`` / ``--oracle``:
on real data the verifier's judge is a classifier trained here on the findings and devices
the edits change. The classifier's input normalisation ([0, 1] pixels, mean 0.5, std 0.5)
goes into the exported network, so it sees exactly what it saw in training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from classifiers.data import INPUT_MEAN, INPUT_STD
from classifiers.module import checkpoint_network
from prism_aug.evaluation.oracle import save_oracle
from prism_aug.evaluation.oracle_network import OracleNetwork


def export_attribute_classifier(checkpoint: Path, out_dir: Path, image_size: int) -> Path:
    """Write the checkpoint's network and its findings as an oracle-format folder.

    Raises:
        ValueError: the checkpoint is of the binary task (its one output has no name).
    """
    weights, hparams = checkpoint_network(checkpoint)
    findings = hparams.get("findings")
    if not findings:
        raise ValueError(
            f"{checkpoint}: a binary-task checkpoint; export one trained with --model.findings"
        )
    network = OracleNetwork(
        hparams["model_name"],
        {"in_chans": 1, "num_classes": len(findings)},
        mean=INPUT_MEAN,
        std=INPUT_STD,
    )
    network.model.load_state_dict(weights)
    return save_oracle(network, image_size, out_dir, attributes=tuple(findings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--image_size", type=int, required=True, help="the training side")
    options = parser.parse_args(argv)
    folder = export_attribute_classifier(options.checkpoint, options.out_dir, options.image_size)
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
