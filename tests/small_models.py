"""The small model shape the tests share: the tiny preset shrunk to seconds on a CPU.

32 px images, latents (4, 16, 16), cross-attention at 8 x 8. Imported by the test packages
(pytest puts this folder on sys.path for tests/conftest.py).
"""

from __future__ import annotations

from typing import Any


def small_preset(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``build_components("tiny", ...)`` for the small shape."""
    return {
        "image_size": 32,
        "vae_channels": [8, 16],
        "unet_channels": [8, 16],
        "norm_groups": 4,
        "text_hidden_size": 32,
        "text_layers": 1,
        **overrides,
    }
