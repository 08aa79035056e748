"""One call of the UNet with classifier-free guidance, shared by inversion and editing.

Latent and text batches are built once per step by the caller; this module owns only the
arithmetic of guidance, so every inversion and the editor guide identically.
"""

from __future__ import annotations

import contextlib

import torch
from diffusers import UNet2DConditionModel

from prism_aug.precision import fast_autocast


class GuidedDenoiser:
    """``eps or v = uncond + w * (cond - uncond)`` from one batched UNet call.

    Args:
        unet: the model's UNet (its processors may be P2P's).
        autocast_dtype: run the UNet under autocast in this dtype (bf16 on CPU or GPU,
            fp16 on GPU) where the device has kernels for it (``precision.fast_autocast``:
            a CPU without them runs float32); None runs in the weights' dtype.
    """

    def __init__(self, unet: UNet2DConditionModel, autocast_dtype: torch.dtype | None = None):
        self.unet = unet
        self.autocast_dtype = autocast_dtype

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        device_type = self.unet.device.type  # where the UNet is now, not where it was built
        if self.autocast_dtype is None or not fast_autocast(device_type, self.autocast_dtype):
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.autocast_dtype)

    def __call__(
        self,
        latents: torch.Tensor,
        t: int | torch.Tensor,
        cond: torch.Tensor,
        uncond: torch.Tensor | None = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """The guided prediction ``(N, 4, h, w)`` in float32.

        Args:
            latents: ``(N, 4, h, w)``.
            t: the timestep.
            cond: text embeddings ``(N, L, D)``.
            uncond: unconditional embeddings ``(N, L, D)``; None or guidance 1 skips them.
            guidance: w.
        """
        if uncond is None or guidance == 1.0:
            with self._autocast():
                return self.unet(latents, t, encoder_hidden_states=cond).sample.float()
        with self._autocast():
            out = self.unet(
                torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([uncond, cond])
            ).sample.float()
        out_uncond, out_cond = out.chunk(2)
        return out_uncond + guidance * (out_cond - out_uncond)
