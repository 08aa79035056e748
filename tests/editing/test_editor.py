"""The editor: inversions' reconstruction, masks, determinism, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from prism_aug.data.prompts import EditSpec, edit_prompts
from prism_aug.diffusion.codec import decode_latents, encode_images, encode_prompts
from prism_aug.editing.denoiser import GuidedDenoiser
from prism_aug.editing.editor import EditedBatch, Editor, EditorSettings
from prism_aug.editing.inversion import NullTextSettings, invert, null_text_optimisation

FAST = {"steps": 6, "self_replace": (0.4, 0.8)}

# ("Chest X-ray showing Pleural Effusion, Support Devices", "Chest X-ray showing Pleural Effusion")
REMOVE_DEVICES = edit_prompts(
    {"Pleural Effusion": 1.0, "Support Devices": 1.0}, EditSpec.parse("remove:Support Devices")
)


def _edit(model, images, prompts=REMOVE_DEVICES, **settings):
    editor = Editor(model, EditorSettings(**{**FAST, **settings}))
    b = len(images)
    return editor.edit(images, [prompts[0]] * b, [prompts[1]] * b)


def _edit_counting_unet_rows(model, images, **edit) -> tuple[EditedBatch, list[int]]:
    """An edit, and the batch size of each of its UNet calls."""
    rows = []
    forward = model.unet.forward

    def counting(latents, *args, **kwargs):
        rows.append(len(latents))
        return forward(latents, *args, **kwargs)

    model.unet.forward = counting
    try:
        return _edit(model, images, **edit), rows
    finally:
        model.unet.forward = forward


@torch.no_grad()
def _reconstruction_error(model, images, method: str, guidance: float) -> float:
    """Mean squared error of the source branch's x_0 after a guided run from the inversion."""
    denoiser = GuidedDenoiser(model.unet)
    z0 = encode_images(model, images)
    cond = encode_prompts(model, [REMOVE_DEVICES[0]] * len(images))
    null = encode_prompts(model, [""] * len(images))
    with torch.enable_grad():
        inverted = invert(
            method,
            denoiser,
            model.scheduler,
            z0,
            cond,
            null,
            6,
            guidance,
            NullTextSettings(inner_steps=10),
        )
    x = inverted.trajectory[0]
    for i, t in enumerate(model.scheduler.timesteps.tolist()):
        x = model.scheduler.step(
            denoiser(x, t, cond, inverted.uncond[i], guidance), t, x
        ).prev_sample
    return float((x - z0).pow(2).mean())


def test_null_text_and_negative_prompt_undo_the_guidance_drift(small_model, radiographs):
    model, radiographs = small_model, radiographs[:2]
    ddim = _reconstruction_error(model, radiographs, "ddim", guidance=7.5)
    null_text = _reconstruction_error(model, radiographs, "null_text", guidance=7.5)
    negative = _reconstruction_error(model, radiographs, "negative_prompt", guidance=7.5)
    unguided = _reconstruction_error(model, radiographs, "ddim", guidance=1.0)
    assert null_text < 0.5 * ddim
    assert all(p.grad is None for p in model.unet.parameters())  # only the embeddings learn
    assert negative == pytest.approx(unguided, rel=1e-4)  # guidance cancels on the source


def _mean_embedding_denoiser(x, t, cond, uncond=None, guidance=1.0):
    """A prediction that is the embedding's mean: each image's loss depends on it alone."""
    c = cond.mean((1, 2)).view(-1, 1, 1, 1)
    if uncond is None:
        return c.expand_as(x)
    u = uncond.mean((1, 2)).view(-1, 1, 1, 1)
    return (u + guidance * (c - u)).expand_as(x)


def test_a_null_text_image_that_stops_keeps_its_embedding_whatever_its_batch():
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(2)  # the first step, from t = 500, is the one checked
    t = scheduler.timesteps[0].item()
    zeros = torch.zeros(2, 4, 2, 2)

    def x_next(u: float) -> torch.Tensor:  # guided prediction -u at guidance 2
        return scheduler.step(torch.full((4, 2, 2), -u), t, zeros[0]).prev_sample

    # Image 0 needs an embedding mean of 0.015: its loss is over the threshold at 0 and under
    # it after one Adam step (lr 0.01) to 0.01; image 1's target is out of reach.
    assert (x_next(0.015) - x_next(0.0)).pow(2).mean() > 1e-3
    assert (x_next(0.015) - x_next(0.01)).pow(2).mean() < 1e-3
    target = torch.stack([x_next(0.015), torch.full((4, 2, 2), 10.0)])
    settings = NullTextSettings(inner_steps=10, early_stop=1e-3)

    def embeddings(batch: slice) -> torch.Tensor:
        cond, null = torch.zeros(2, 3, 4)[batch], torch.zeros(2, 3, 4)[batch]
        trajectory = [zeros[batch], target[batch], target[batch]]
        args = (scheduler, trajectory, cond, null, 2.0, settings)
        return null_text_optimisation(_mean_embedding_denoiser, *args)[0]

    both, alone = embeddings(slice(0, 2)), embeddings(slice(0, 1))
    torch.testing.assert_close(both[0], torch.full((3, 4), 0.01))  # one step, then kept
    torch.testing.assert_close(both[0], alone[0])
    assert both[1].mean() > 0.05  # the other image went on optimising


def test_null_text_edits_under_inference_mode_as_lightning_predicts(small_model, radiographs):
    settings = {"inversion": "null_text", "null_text": NullTextSettings(inner_steps=2)}
    expected = _edit(small_model, radiographs[:1], **settings)
    with torch.inference_mode():
        edited = _edit(small_model, radiographs[:1], **settings)
    np.testing.assert_array_equal(edited.candidates, expected.candidates)


@pytest.mark.parametrize("model_name", ["small_model", "epsilon_model"])
def test_direct_inversion_null_edit_reconstructs_the_vae_image(model_name, request, radiographs):
    small_model = request.getfixturevalue(model_name)  # zero-SNR v-prediction, SD v1's epsilon
    out = _edit(small_model, radiographs, prompts=(REMOVE_DEVICES[0],) * 2, blend="none")
    vae_image = decode_latents(small_model, encode_images(small_model, radiographs))
    assert out.candidates.shape == (3, 2, 32, 32)
    gap = np.abs(out.candidates.astype(int) - vae_image[:, None].astype(int))
    assert gap.max() <= 1
    drifted = _edit(
        small_model,
        radiographs,
        prompts=(REMOVE_DEVICES[0],) * 2,
        blend="none",
        inversion="ddim",
    )
    assert np.abs(drifted.candidates.astype(int) - vae_image[:, None].astype(int)).mean() > 1


def test_decoder_steps_move_a_direct_null_edit_closer_to_the_source(small_model, radiographs):
    null_edit = {"prompts": (REMOVE_DEVICES[0],) * 2, "blend": "none", "self_replace": (0.4,)}
    plain = _edit(small_model, radiographs, **null_edit).candidates[:, 0].astype(int)
    fitted = _edit(small_model, radiographs, decoder_steps=10, **null_edit).candidates[:, 0]
    expected = decode_latents(small_model, encode_images(small_model, radiographs, 10))
    assert np.abs(fitted.astype(int) - expected.astype(int)).max() <= 1
    error = ((fitted.astype(int) - radiographs) ** 2).mean()
    assert error < 0.9 * ((plain - radiographs) ** 2).mean()


def test_outside_the_edit_mask_the_source_pixels_are_kept(small_model, radiographs):
    given = np.zeros((3, 32, 32), dtype=bool)
    given[:, 16:, :16] = True
    editor = Editor(small_model, EditorSettings(**FAST))
    out = editor.edit(
        radiographs, [REMOVE_DEVICES[0]] * 3, [REMOVE_DEVICES[1]] * 3, edit_masks=given
    )
    outside = out.masks == 0
    assert outside.any() and (out.masks[:, :, :14, :] == 0).all()
    source = np.broadcast_to(radiographs[:, None], out.candidates.shape)
    assert np.array_equal(out.candidates[outside], source[outside])
    assert not np.array_equal(out.candidates, source)  # the edit did change the masked part


def test_keep_mask_wins_over_the_edit_mask(small_model, radiographs):
    keep = np.ones((3, 32, 32), dtype=bool)
    editor = Editor(small_model, EditorSettings(**FAST, blend="none"))
    out = editor.edit(
        radiographs, [REMOVE_DEVICES[0]] * 3, [REMOVE_DEVICES[1]] * 3, keep_masks=keep
    )
    assert np.array_equal(
        out.candidates, np.broadcast_to(radiographs[:, None], out.candidates.shape)
    )


def test_composite_thresholds_add_tighter_composites_of_the_same_candidates(
    small_model, radiographs
):
    blend = {"blend": "prediction", "blend_threshold": 0.1}
    base = _edit(small_model, radiographs, **blend)
    out = _edit(small_model, radiographs, **blend, composite_thresholds=(0.4, 0.7))
    k = base.candidates.shape[1]
    assert out.candidates.shape[1] == 3 * k
    assert np.array_equal(out.candidates[:, :k], base.candidates)  # no UNet call changed
    blocks = [out.masks[:, i * k : (i + 1) * k] for i in range(3)]
    assert (blocks[1] <= blocks[0]).all() and (blocks[2] <= blocks[1]).all()
    assert blocks[2].sum() < blocks[0].sum()
    tight, candidates = blocks[2], out.candidates[:, 2 * k :]
    source = np.broadcast_to(radiographs[:, None], candidates.shape)
    assert np.array_equal(candidates[tight == 0], source[tight == 0])
    assert np.array_equal(candidates[tight == 1], base.candidates[tight == 1])


def test_candidates_are_listed_by_mask_then_fraction_with_the_middle_as_fallback():
    settings = EditorSettings(
        self_replace=(0.4, 0.6, 0.8), blend_threshold=0.2, composite_thresholds=(0.3,)
    )
    assert [tuple(c) for c in settings.candidates] == [
        (0.4, 0.2), (0.6, 0.2), (0.8, 0.2), (0.4, 0.3), (0.6, 0.3), (0.8, 0.3)
    ]  # fmt: skip
    assert settings.fallback == 1
    with pytest.raises(ValueError, match="blend is none"):
        EditorSettings(blend="none", composite_thresholds=(0.3,))


def test_same_inputs_give_the_same_bytes_and_batching_changes_nothing(small_model, radiographs):
    first = _edit(small_model, radiographs)
    again = _edit(small_model, radiographs)
    assert np.array_equal(first.candidates, again.candidates)
    one_by_one = _edit(small_model, radiographs, images_per_batch=1)
    assert np.abs(first.candidates.astype(int) - one_by_one.candidates.astype(int)).max() <= 1


def test_candidates_share_the_unet_until_they_part_and_come_out_the_same(small_model, radiographs):
    sweep = {"steps": 10, "self_replace": (0.4, 0.6, 0.8)}
    together, rows = _edit_counting_unet_rows(small_model, radiographs, **sweep)
    b = len(radiographs)
    # inversion: 10 x B; edit: 2 x B x (10 source + 4 x 1 + 2 x 2 + 4 x 3 targets), not 2 x 40
    assert sum(rows) == b * (10 + 2 * 30)
    apart = [
        _edit(small_model, radiographs, **{**sweep, "self_replace": (f,)}).candidates[:, 0]
        for f in sweep["self_replace"]
    ]
    difference = together.candidates.astype(int) - np.stack(apart, axis=1).astype(int)
    assert np.abs(difference).max() <= 1


def test_a_null_edit_runs_the_unet_for_its_source_alone(small_model, radiographs):
    same = (REMOVE_DEVICES[0],) * 2
    out, rows = _edit_counting_unet_rows(small_model, radiographs, prompts=same, steps=10)
    assert sum(rows) == len(radiographs) * (10 + 2 * 10)  # inversion, then the source's CFG
    assert (out.candidates == out.candidates[:, :1]).all()  # every candidate is the source's


def test_the_blend_follows_each_step_from_p2ps_start(small_model, radiographs, monkeypatch):
    # P2P's LocalBlend counts its calls and blends once the count exceeds
    # int(start_blend * steps): after steps 2..9 of 10 for start_blend 0.2, 8 blends.
    masks = []
    mask = Editor._mask
    monkeypatch.setattr(Editor, "_mask", lambda *a, **k: masks.append(1) or mask(*a, **k))
    _edit(small_model, radiographs[:1], steps=10, blend_start=0.2)
    assert len(masks) == 8


def test_mismatched_inputs_are_named(small_model, radiographs):
    with pytest.raises(ValueError, match="3 images, 2 source and 3 target prompts"):
        Editor(small_model).edit(radiographs, ["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown inversion 'exact'"):
        _edit(small_model, radiographs, inversion="exact")
    with pytest.raises(ValueError, match="decoder_steps must be >= 0, got -1"):
        EditorSettings(decoder_steps=-1)
