"""Encoding radiographs: the decoder inversion against its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_models import small_preset

from prism_aug.data.synthcxr.patient import sample_patient
from prism_aug.data.synthcxr.render import render
from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.codec import decode_latents, encode_images


@pytest.fixture(scope="module")
def model():
    return build_components("tiny", seed=0, **small_preset())


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([render(sample_patient(s), [], ["Chest Tube"], size=32).image for s in (1, 2)])


def _squared_error(model, images: np.ndarray, latents: torch.Tensor) -> np.ndarray:
    """Per image, the mean squared error (grey levels) of the decoded latents."""
    decoded = decode_latents(model, latents).astype(np.float64)
    return ((decoded - images) ** 2).mean(axis=(1, 2))


def test_decoder_inversion_decodes_closer_to_each_image_than_the_encoder(model, images):
    encoded = encode_images(model, images)
    fitted = encode_images(model, images, decoder_steps=20)
    before, after = _squared_error(model, images, encoded), _squared_error(model, images, fitted)
    assert (after < 0.8 * before).all(), (before, after)


def test_no_decoder_steps_keep_the_posterior_mean(model, images):
    torch.testing.assert_close(
        encode_images(model, images, decoder_steps=0), encode_images(model, images)
    )


def test_an_images_fit_does_not_depend_on_its_batch(model, images):
    together = encode_images(model, images, decoder_steps=5)
    alone = encode_images(model, images[1:], decoder_steps=5)
    torch.testing.assert_close(together[1:], alone, rtol=1e-4, atol=1e-5)


def test_decoder_inversion_runs_under_inference_mode_as_lightning_predicts(model, images):
    with torch.inference_mode():
        fitted = encode_images(model, images, decoder_steps=3)
    torch.testing.assert_close(fitted, encode_images(model, images, decoder_steps=3))


def test_negative_decoder_steps_are_refused(model, images):
    with pytest.raises(ValueError, match="decoder inversion steps"):
        encode_images(model, images, decoder_steps=-1)
