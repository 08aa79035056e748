"""Fixtures of the classifier tests: a small SynthCXR at 32 px."""

from __future__ import annotations

from pathlib import Path

import pytest

from prism_aug.data.synthcxr import write_synthcxr


@pytest.fixture(scope="session")
def synthcxr(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "synthcxr"
    write_synthcxr(folder, 80, size=32, seed=0)
    return folder
