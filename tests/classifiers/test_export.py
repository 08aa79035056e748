"""A multi-label checkpoint exported as an attribute classifier judges as the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from classifiers.data import to_input
from classifiers.export import export_attribute_classifier
from classifiers.module import ERM
from prism_aug.evaluation.oracle import load_oracle

FINDINGS = ["Pleural Effusion", "Support Devices"]


def test_the_export_predicts_what_the_classifier_predicts(tmp_path):
    model = ERM(findings=FINDINGS, target="Pleural Effusion").eval()
    checkpoint = tmp_path / "best.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)},
               checkpoint)  # fmt: skip
    oracle = load_oracle(export_attribute_classifier(checkpoint, tmp_path / "judge", 32))
    assert oracle.attributes == tuple(FINDINGS) and oracle.image_size == 32
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.stack([to_input(i, 32) for i in images])))
    torch.testing.assert_close(oracle.predict_proba(images), expected, atol=1e-5, rtol=1e-4)


def test_a_binary_checkpoint_is_refused(tmp_path):
    model = ERM()
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)},
               tmp_path / "binary.ckpt")  # fmt: skip
    with pytest.raises(ValueError, match="binary-task checkpoint"):
        export_attribute_classifier(tmp_path / "binary.ckpt", tmp_path / "judge", 32)
