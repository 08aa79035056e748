"""ImageNet weights from a local file, in torchvision's names, into a grayscale classifier."""

from __future__ import annotations

import re

import torch
import torchvision

from classifiers.module import ERM


def test_torchvision_densenet_weights_load_into_the_grayscale_network(tmp_path):
    imagenet = torchvision.models.densenet121(weights=None)
    # torchvision's published file names a dense layer's parts "norm.1", "conv.2", ...
    published = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): value
        for key, value in imagenet.state_dict().items()
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in published
    torch.save(published, tmp_path / "densenet121.pth")
    model = ERM(model_name="densenet121", pretrained=str(tmp_path / "densenet121.pth"))
    network, source = model.network, imagenet.features
    torch.testing.assert_close(
        network.features.denseblock1.denselayer1.conv1.weight,
        source.denseblock1.denselayer1.conv1.weight,
    )
    # The RGB stem summed to one channel; a new one-logit head.
    torch.testing.assert_close(
        network.features.conv0.weight, source.conv0.weight.sum(dim=1, keepdim=True)
    )
    assert network.get_classifier().out_features == 1
