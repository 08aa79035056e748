"""The one geometry every model input has: short side resized, centre cropped."""

from __future__ import annotations

import numpy as np
import torch

from classifiers.data import INPUT_MEAN, INPUT_STD, to_input
from prism_aug.data.records import square_image
from prism_aug.diffusion.data import to_model_pixels
from prism_aug.editing.editor import _at_size


def portrait(height: int = 48, width: int = 32, band: int = 8) -> np.ndarray:
    """Black, with white bands at the top and bottom that a centre crop cuts off."""
    image = np.zeros((height, width), np.uint8)
    image[:band], image[-band:] = 255, 255
    return image


def test_a_portrait_image_is_centre_cropped_not_squashed() -> None:
    image = portrait()
    assert np.array_equal(square_image(image, 32), image[8:40])  # no resampling at 32 px wide
    small = square_image(image, 16)
    assert small.shape == (16, 16) and small.dtype == np.uint8
    assert small[1:-1].max() == 0 and small.max() < 64  # a squash keeps 255 in both bands
    assert square_image(small, 16) is small  # already the model's size


def test_vae_pixels_editor_composite_and_classifier_input_share_the_geometry() -> None:
    image = portrait(40, 24, band=8)
    expected = square_image(image, 16)
    pixels = torch.from_numpy(expected).float() / 255  # [0, 1]
    assert torch.equal(to_model_pixels(image, 16)[0], torch.from_numpy(expected) / 127.5 - 1)
    assert np.array_equal(_at_size(image[None], (16, 16))[0], expected)
    assert torch.allclose(to_input(image, 16)[0], (pixels - INPUT_MEAN) / INPUT_STD)
