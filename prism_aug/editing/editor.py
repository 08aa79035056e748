"""The batched counterfactual editor: inversion + Prompt-to-Prompt + local blend + keep mask.

One ``Editor.edit`` call takes B images with their source and target prompts and returns K
candidates per image, one per self-attention injection fraction (PRISM sweeps 0.4..0.8).
Per chunk of images everything runs batched: the prompts are encoded once per distinct
prompt, the inversion runs once per image, and each denoising step is one UNet call over
every source and candidate branch (times two for guidance), each candidate joining the call
only once it has departed from the others (until its self-attention injection ends it is
their exact twin: ``BranchControl.distinct_rows``).

Masks keep anatomy outside the edit: after each step a target follows its source outside the
edit mask (P2P's local blend from the edited words' cross-attention, or a given mask, minus a
keep mask), so with the ``direct`` inversion the latents there stay on the source's exact
inversion; the decoded candidate is composited onto the source pixels through the same mask,
so that the VAE's own reconstruction error is not added outside the edit either. With
``composite_thresholds`` each decoded candidate is composited again through tighter masks from
the same evidence: more candidates at no UNet cost, among which the verifier keeps the
smallest change that passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from prism_aug.data.records import square_image
from prism_aug.diffusion.codec import decode_latents, encode_images, encode_prompts
from prism_aug.diffusion.components import SDComponents
from prism_aug.editing.attention import (
    AttentionController,
    BranchControl,
    control_attention,
    edit_branches,
)
from prism_aug.editing.denoiser import GuidedDenoiser
from prism_aug.editing.inversion import NullTextSettings, invert
from prism_aug.editing.masks import BLENDS, PredictionDifference, latent_mask, threshold_maps
from prism_aug.editing.token_maps import token_map

AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Candidate(NamedTuple):
    """How one candidate of an edit was made."""

    self_replace: float  # fraction of steps with self-attention injected
    mask_threshold: float  # threshold of the mask it was composited through


@dataclass(frozen=True)
class EditorSettings:
    """How an edit is made; the defaults are PRISM's, with the direct inversion.

    Attributes:
        inversion: "direct" (default), "null_text" (PRISM), "negative_prompt" or "ddim".
        decoder_steps: Adam steps that fit each source's latents to the decoder before the
            inversion (``codec.invert_decoder``), so that an exact inversion starts from the
            latent that decodes closest to the source, not the encoder's; 0 (PRISM) keeps
            the encoder's.
        steps: DDIM steps (PRISM: 50).
        guidance: classifier-free guidance scale (PRISM: 7.5).
        token_map: "refine" (words inserted or deleted, our edits) or "replace".
        cross_replace: fraction of steps whose cross-attention comes from the source (0.8).
        self_replace: self-attention injection fractions, one candidate each (0.4..0.8).
        reweight: factor on the cross-attention of the words the edit adds (2).
        blend: where the local-blend mask comes from (``masks``): "attention" (P2P: the
            edited words' cross-attention), "prediction" (where the target's prediction
            departs from the source's), or "none" (only a given edit mask constrains).
        blend_threshold: threshold on the evidence rescaled to [0, 1] (P2P: 0.3).
        composite_thresholds: higher thresholds on the same evidence; each candidate is also
            composited onto the source through each of these tighter masks (see the module
            docstring). Empty: one composite per candidate, as in PRISM.
        blend_dilation: pixels the evidence is dilated by before thresholding: of the
            blend layers' maps for "attention" (P2P: 1 of 16 x 16), latent pixels for
            "prediction".
        blend_start: fraction of the steps run before the first blend (P2P: 0.2, so the
            blend follows steps 10 to 49 of 50).
        null_text: null-text optimisation settings.
        images_per_batch: images edited together (their branches share UNet calls).
        autocast: "bf16" or "fp16" runs the UNet under autocast where the device has
            kernels for it (float32 on a CPU without); None in its own dtype.
    """

    inversion: str = "direct"
    decoder_steps: int = 0
    steps: int = 50
    guidance: float = 7.5
    token_map: str = "refine"
    cross_replace: float = 0.8
    self_replace: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8)
    reweight: float = 2.0
    blend: str = "attention"
    blend_threshold: float = 0.3
    composite_thresholds: tuple[float, ...] = ()
    blend_dilation: int = 1
    blend_start: float = 0.2
    null_text: NullTextSettings = field(default_factory=NullTextSettings)
    images_per_batch: int = 8
    autocast: str | None = None

    def __post_init__(self) -> None:
        if not self.self_replace:
            raise ValueError("self_replace needs at least one fraction (one candidate each)")
        if self.decoder_steps < 0:
            raise ValueError(f"decoder_steps must be >= 0, got {self.decoder_steps}")
        if self.blend not in BLENDS:
            raise ValueError(f"unknown blend {self.blend!r}; expected one of {BLENDS}")
        if self.composite_thresholds and self.blend == "none":
            raise ValueError("composite_thresholds threshold a blend's evidence: blend is none")
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(
                f"autocast {self.autocast!r}: expected None or {list(AUTOCAST_DTYPES)}"
            )

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Each candidate of an edit, in the editor's order: by mask, then by fraction."""
        thresholds = (self.blend_threshold, *self.composite_thresholds)
        return tuple(Candidate(f, t) for t in thresholds for f in self.self_replace)

    @property
    def fallback(self) -> int:
        """The candidate an edit keeps when no verifier passes one: the middle fraction
        through the blend's own mask."""
        fractions = np.asarray(self.self_replace)
        return int(np.argmin(np.abs(fractions - np.median(fractions))))


@dataclass
class EditedBatch:
    """Candidates of B images, K per image.

    Attributes:
        candidates: uint8 ``(B, K, H, W)``.
        masks: float ``(B, K, H, W)`` in [0, 1], where each candidate may differ from its
            source (all ones when no mask constrained the edit).
        fallback: the candidate an edit keeps when no verifier passes one.
    """

    candidates: np.ndarray
    masks: np.ndarray
    fallback: int = 0


class Editor:
    """Counterfactual edits of radiographs with an SD model (see the module docstring).

    Args:
        components: the fine-tuned model; its scheduler sets the noise schedule.
        settings: how edits are made.
    """

    def __init__(self, components: SDComponents, settings: EditorSettings | None = None) -> None:
        self.components = components
        self.settings = settings or EditorSettings()
        dtype = AUTOCAST_DTYPES.get(self.settings.autocast or "")
        self.denoiser = GuidedDenoiser(components.unet, dtype)

    def edit(
        self,
        images: np.ndarray,
        source_prompts: Sequence[str],
        target_prompts: Sequence[str],
        edit_masks: np.ndarray | None = None,
        keep_masks: np.ndarray | None = None,
    ) -> EditedBatch:
        """Edit uint8 images ``(B, H, W)`` from their source prompts to their targets.

        Args:
            images: the radiographs, at the model's resolution or resized to it.
            source_prompts: each image's own caption.
            target_prompts: each image's edited caption (the same caption: a null edit).
            edit_masks: optional ``(B, H, W)`` regions the edit may change, replacing the
                local blend's (a lung mask, SynthCXR's masks).
            keep_masks: optional ``(B, H, W)`` regions that must not change.
        """
        n = len(images)
        if not n == len(source_prompts) == len(target_prompts):
            raise ValueError(
                f"{n} images, {len(source_prompts)} source and {len(target_prompts)} target "
                "prompts: give one of each per image"
            )
        chunks = []
        step = self.settings.images_per_batch
        for start in range(0, n, step):
            part = slice(start, start + step)
            chunks.append(
                self._edit_chunk(
                    images[part],
                    source_prompts[part],
                    target_prompts[part],
                    None if edit_masks is None else edit_masks[part],
                    None if keep_masks is None else keep_masks[part],
                )
            )
        return EditedBatch(
            np.concatenate([c.candidates for c in chunks]),
            np.concatenate([c.masks for c in chunks]),
            self.settings.fallback,
        )

    @torch.no_grad()
    def _edit_chunk(
        self,
        images: np.ndarray,
        source_prompts: Sequence[str],
        target_prompts: Sequence[str],
        edit_masks: np.ndarray | None,
        keep_masks: np.ndarray | None,
    ) -> EditedBatch:
        s, c = self.settings, self.components
        device = c.unet.device
        b, k = len(images), len(self.settings.self_replace)
        distinct = sorted({"", *source_prompts, *target_prompts})
        table = encode_prompts(c, distinct)
        row = {prompt: i for i, prompt in enumerate(distinct)}

        def embed(prompts: Sequence[str]) -> torch.Tensor:
            return table[torch.tensor([row[p] for p in prompts], device=table.device)]

        z0 = encode_images(c, images, s.decoder_steps).to(device)
        cond_src, null = embed(source_prompts), embed([""] * b)
        # Null-text optimisation differentiates through the UNet, also where the caller
        # runs under inference mode (Lightning's predict loop), which enable_grad alone
        # does not leave; tensors made there are copied out of it first.
        with torch.inference_mode(False), torch.enable_grad():
            inverted = invert(
                s.inversion,
                self.denoiser,
                c.scheduler,
                z0.clone(),
                cond_src.clone(),
                null.clone(),
                s.steps,
                s.guidance,
                s.null_text,
            )

        branches = BranchControl.cat(
            [
                edit_branches(
                    token_map(c.tokenizer, src, tgt, s.token_map),
                    s.steps,
                    s.cross_replace,
                    s.self_replace,
                    s.reweight,
                )
                for src, tgt in zip(source_prompts, target_prompts, strict=True)
            ]
        ).to(device)
        image_of = torch.arange(b, device=device).repeat_interleave(k + 1)  # (N,)
        is_source = branches.source == torch.arange(len(branches), device=device)
        prompts_of = [
            p
            for src, tgt in zip(source_prompts, target_prompts, strict=True)
            for p in [src] + [tgt] * k
        ]
        cond = embed(prompts_of)
        plan = branches.distinct_rows(s.steps, [row[p] for p in prompts_of])
        distinct = {id(rows): rows for rows in plan}  # steps that share rows share the object
        on_device = {key: rows.to(device) for key, rows in distinct.items()}

        latent_size = tuple(z0.shape[-2:])
        given = latent_mask(edit_masks, latent_size, device)
        keep = latent_mask(keep_masks, latent_size, device)
        controller = AttentionController(
            branches, latent_size, record_blend=s.blend == "attention" and given is None
        )
        difference = PredictionDifference(branches.source)
        old_processors = control_attention(c.unet, controller)
        blend_from = round(s.blend_start * s.steps)
        mask = torch.ones(len(branches), 1, *z0.shape[-2:], device=device)
        try:
            x = inverted.trajectory[0][image_of]
            for i, t in enumerate(c.scheduler.timesteps.tolist()):
                run = on_device[id(plan[i])]  # twins get their representative's prediction
                controller.step, controller.active = i, run
                prediction = self.denoiser(
                    x[run.rows],
                    t,
                    cond[run.rows],
                    inverted.uncond[i][image_of[run.rows]],
                    s.guidance,
                )[run.expand]
                if s.blend == "prediction" and given is None:
                    difference.add(prediction)
                x = c.scheduler.step(prediction, t, x).prev_sample
                if inverted.pin_source:  # every branch takes its source's correction
                    x = x + (inverted.trajectory[i + 1][image_of] - x[branches.source])
                if i >= blend_from:  # P2P: after step int(0.2 * 50) = 10 and each later one
                    mask = self._mask(controller, difference, given, keep, image_of)
                    x_src = x[branches.source]
                    x = torch.where(is_source.view(-1, 1, 1, 1), x, x_src + mask * (x - x_src))
        finally:
            c.unet.set_attn_processor(old_processors)

        masks = [mask] + [
            self._mask(controller, difference, given, keep, image_of, threshold)
            for threshold in s.composite_thresholds
        ]
        decoded = decode_latents(c, x[~is_source]).astype(np.float32)  # (B * K, H, W)
        size = decoded.shape[-2:]
        source_pixels = np.repeat(_at_size(images, size), k, axis=0).astype(np.float32)
        candidates, pixel_masks = [], []
        for m in masks:
            pixel_mask = F.interpolate(m[~is_source], size=size, mode="bilinear").clamp(0, 1)
            pixel_mask = pixel_mask[:, 0].cpu().numpy()
            composed = source_pixels * (1 - pixel_mask) + decoded * pixel_mask
            candidates.append(np.rint(composed).clip(0, 255).astype(np.uint8).reshape(b, k, *size))
            pixel_masks.append(pixel_mask.reshape(b, k, *size))
        return EditedBatch(
            np.concatenate(candidates, axis=1), np.concatenate(pixel_masks, axis=1), s.fallback
        )

    def _mask(
        self,
        controller: AttentionController,
        difference: PredictionDifference,
        given: torch.Tensor | None,
        keep: torch.Tensor | None,
        image_of: torch.Tensor,
        threshold: float | None = None,
    ) -> torch.Tensor:
        """Where each branch may differ from its source ``(N, 1, h, w)`` in [0, 1], with the
        blend's evidence at ``threshold`` (default: the blend threshold)."""
        s = self.settings
        threshold = s.blend_threshold if threshold is None else threshold
        if given is not None:
            mask = given[image_of]
        elif s.blend == "attention":
            mask = controller.blend_mask(threshold, s.blend_dilation)
        elif s.blend == "prediction":
            mask = threshold_maps(difference.maps, threshold, s.blend_dilation)
        else:
            mask = torch.ones(len(image_of), 1, *controller.latent_size, device=image_of.device)
        if keep is not None:
            mask = mask * (1 - keep[image_of])
        return mask


def _at_size(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 images ``(B, H, W)`` at ``size``, resized as the model's inputs are."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return np.stack([square_image(image, size[0]) for image in images])
