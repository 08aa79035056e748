"""Fixtures of the editing tests: a small random SD model and a few SynthCXR images."""

from __future__ import annotations

import numpy as np
import pytest
from small_models import small_preset

from prism_aug.data.synthcxr.patient import sample_patient
from prism_aug.data.synthcxr.render import render
from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.components import SDComponents

EDIT_PRESET = small_preset()


@pytest.fixture(scope="session")
def small_model() -> SDComponents:
    """A random-weight model of the tiny preset's shape (zero-terminal-SNR, v-prediction)."""
    return build_components("tiny", seed=0, **EDIT_PRESET)


@pytest.fixture(scope="session")
def epsilon_model() -> SDComponents:
    """The same shape on SD v1's schedule (epsilon prediction, leading timesteps)."""
    return build_components("tiny", seed=0, zero_terminal_snr=False, **EDIT_PRESET)


@pytest.fixture(scope="session")
def radiographs() -> np.ndarray:
    """Three 32 px SynthCXR images with effusion and a central line ``(3, 32, 32)`` uint8."""
    return np.stack(
        [
            render(sample_patient(seed), ["Pleural Effusion"], ["Central Line"], size=32).image
            for seed in (11, 12, 13)
        ]
    )
