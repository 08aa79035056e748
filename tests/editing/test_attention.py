"""P2P attention control checked against its definitions (Hertz et al. 2022)."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor

from prism_aug.editing.attention import (
    SELF_INJECTION_MAX_TOKENS,
    AttentionController,
    BranchControl,
    ControlledAttnProcessor,
    control_attention,
    edit_branches,
)
from prism_aug.editing.token_maps import TokenMap

L = 6  # tokens in these hand-made examples


def _branches(cross_steps: int, self_steps: int, blend: torch.Tensor | None = None):
    """One source (branch 0) and one target (branch 1) whose token 4 is new, token 3 dropped."""
    matrix = torch.eye(L)
    matrix[3, 3] = 0.0
    matrix[4, 4] = 0.0
    own = torch.zeros(L)
    own[4] = 1.0
    added = torch.zeros(L)
    added[4] = 1.0
    removed = torch.zeros(L)
    removed[3] = 1.0
    tmap = TokenMap(matrix, own, removed, added)
    b = edit_branches(
        tmap, steps=10, cross_replace=cross_steps / 10, self_replace=[self_steps / 10], reweight=2.0
    )
    if blend is not None:
        b.blend_tokens = blend
    return b, tmap


def _probs(n: int, q: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2 * n, 2, q, k, generator=g).softmax(-1)  # [uncond(n), cond(n)]


def test_cross_attention_replacement_refinement_and_reweighting() -> None:
    branches, tmap = _branches(cross_steps=4, self_steps=0)
    controller = AttentionController(branches, (4, 4), record_blend=False)
    probs = _probs(2, 16, L)
    controller.step = 3
    out = controller.cross(probs.clone(), query_size=16)
    src, own = probs[2], probs[3]
    replaced = torch.einsum("hqi,ij->hqj", src, tmap.matrix)
    expected = (replaced * (1 - tmap.own) + own * tmap.own) * (1 + tmap.target_edited)
    assert torch.allclose(out[3], expected)
    assert torch.equal(out[:3], probs[:3])  # unconditional half and the source: untouched
    assert out[3, ..., 3].abs().max() == 0  # the dropped token gets no attention
    controller.step = 4  # past cross_replace: the target's own maps, not re-weighted
    assert torch.equal(controller.cross(probs.clone(), query_size=16), probs)


def _self_attention(attn: Attention, x: torch.Tensor, probs_from: torch.Tensor) -> torch.Tensor:
    """Attention of ``x`` ``(L, D)`` with the maps of ``probs_from`` ``(L, D)``, by definition."""

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], attn.heads, -1).transpose(0, 1)  # (heads, L, d)

    q, k = heads(attn.to_q(probs_from)), heads(attn.to_k(probs_from))
    probs = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)
    out = (probs @ heads(attn.to_v(x))).transpose(0, 1).reshape(x.shape[0], -1)
    return attn.to_out[0](out)


@pytest.mark.parametrize("tokens", [16, SELF_INJECTION_MAX_TOKENS + 1])
def test_self_attention_injection_uses_the_source_maps_for_its_steps(tokens) -> None:
    # P2P: an injected target attends with its source's maps over its own values, in
    # layers of at most 32 x 32 queries.
    branches, _ = _branches(cross_steps=0, self_steps=5)
    controller = AttentionController(branches, (4, 4), record_blend=False)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    processor = ControlledAttnProcessor(controller, is_cross=False)
    x = torch.randn(4, tokens, 8, generator=torch.Generator().manual_seed(0))  # [uncond, cond]
    with torch.no_grad():
        controller.step = 4
        injected = processor(attn, x)
        controller.step = 5
        own = processor(attn, x)
        plain = AttnProcessor()(attn, x)
        expected = _self_attention(attn, x[3], probs_from=x[2])
    torch.testing.assert_close(own, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(injected[:3], plain[:3], atol=1e-5, rtol=1e-5)  # uncond, source
    if tokens <= SELF_INJECTION_MAX_TOKENS:
        torch.testing.assert_close(injected[3], expected, atol=1e-5, rtol=1e-5)
    else:  # too large a layer: the target keeps its own maps
        torch.testing.assert_close(injected[3], plain[3], atol=1e-5, rtol=1e-5)


def test_local_blend_mask_is_where_the_edited_words_attend() -> None:
    blend = torch.zeros(2, L)
    blend[0, 3] = 1.0  # the source's removed word
    branches, _ = _branches(cross_steps=10, self_steps=0, blend=blend)
    controller = AttentionController(branches, (8, 8), record_blend=True)
    probs = torch.full((4, 2, 16, L), 1.0 / L)
    region = torch.zeros(4, 4)
    region[:2, :2] = 1.0  # the word attends to the top-left quarter of a 4 x 4 map
    probs[..., 3] = region.flatten() * 0.9
    controller.cross(probs, query_size=16)
    mask = controller.blend_mask(threshold=0.5, dilation=0)
    assert mask.shape == (2, 1, 8, 8)
    assert mask[0].sum() == 0  # a source is never blended
    assert (
        mask[1, 0, :3, :3].min() == 1
        and mask[1, 0, 5:, :].max() == 0
        and mask[1, 0, :, 5:].max() == 0
    )


def _word_maps(n: int, side: int, cells: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """Cross-attention ``(2n, 2 heads, side^2, L)`` whose token 3 has ``cells`` ``(side, side)``
    on a floor; the other tokens share the rest."""
    word = (floor + (1 - floor) * cells).flatten() * 0.9
    probs = ((1 - word) / (L - 1)).view(1, 1, -1, 1).expand(2 * n, 2, side * side, L).clone()
    probs[..., 3] = word
    return probs


def test_local_blend_reads_the_quarter_resolution_maps_dilated_there_and_divided_by_the_max():
    # P2P: the 16 x 16 maps of SD's 64 x 64 latents, max-pooled (k = 1) at 16 x 16, upsampled,
    # divided by their maximum and thresholded; other layers do not count.
    blend = torch.zeros(2, L)
    blend[0, 3] = 1.0
    branches, _ = _branches(cross_steps=10, self_steps=0, blend=blend)
    controller = AttentionController(branches, (16, 16), record_blend=True)
    corner = torch.zeros(4, 4)
    corner[0, 0] = 1.0
    controller.cross(_word_maps(2, 4, corner), query_size=16)  # 4 x 4: a quarter of 16
    elsewhere = torch.zeros(8, 8)
    elsewhere[7, 7] = 1.0
    controller.cross(_word_maps(2, 8, elsewhere), query_size=64)  # 8 x 8: not read
    mask = controller.blend_mask(threshold=0.3, dilation=1)[1, 0]
    expected = torch.zeros(16, 16)
    expected[:8, :8] = 1.0  # cell (0, 0) dilated to 2 x 2 cells of 4 x 4 latent pixels
    assert torch.equal(mask, expected)

    floor = AttentionController(branches, (16, 16), record_blend=True)
    floor.cross(_word_maps(2, 4, corner, floor=0.4), query_size=16)
    assert floor.blend_mask(threshold=0.3, dilation=0)[1].min() == 1  # 0.4 of the max passes


def test_processors_without_control_equal_diffusers_attention(small_model) -> None:
    unet = small_model.unet
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 16, 16, generator=g)
    text = torch.randn(2, 77, 32, generator=g)
    unet.set_attn_processor(AttnProcessor())
    with torch.no_grad():
        reference = unet(x, 500, encoder_hidden_states=text).sample
    branches = BranchControl.cat([_branches(cross_steps=0, self_steps=0)[0]])
    branches.token_map = torch.eye(77).expand(2, 77, 77)
    branches.own_tokens = torch.zeros(2, 77)
    branches.token_weights = torch.ones(2, 77)
    branches.blend_tokens = torch.zeros(2, 77)
    for record in (False, True):  # SDPA path, then the explicit-probabilities path
        controller = AttentionController(branches, (16, 16), record_blend=record)
        old = control_attention(unet, controller)
        with torch.no_grad():
            controlled = unet(x, 500, encoder_hidden_states=text).sample
        unet.set_attn_processor(old)
        assert torch.allclose(controlled, reference, atol=1e-5)
    assert all(isinstance(p, AttnProcessor) for p in unet.attn_processors.values())


def test_cat_shifts_source_indices() -> None:
    one, _ = _branches(cross_steps=2, self_steps=2)
    both = BranchControl.cat([one, one])
    assert both.source.tolist() == [0, 0, 2, 2]
    assert len(both) == 4


def test_candidates_run_as_one_branch_until_their_injection_ends() -> None:
    _, tmap = _branches(cross_steps=0, self_steps=0)
    edit = edit_branches(
        tmap, steps=10, cross_replace=0.8, self_replace=[0.4, 0.6, 0.8], reweight=2
    )
    both = BranchControl.cat([edit, edit])  # two images, the same prompts: never shared
    text = [0, 1, 1, 1] * 2
    plan = both.distinct_rows(10, text)
    ran = [p.rows.tolist() for p in plan]
    assert ran[:4] == [[0, 1, 4, 5]] * 4  # one target per image while all inject
    assert ran[4:6] == [[0, 1, 2, 4, 5, 6]] * 2  # 0.4 stopped injecting at step 4
    assert ran[6:] == [[0, 1, 2, 3, 4, 5, 6, 7]] * 4
    first = plan[0]
    assert first.rows[first.expand].tolist() == [0, 1, 1, 1, 4, 5, 5, 5]
    assert first.branches.source.tolist() == [0, 0, 2, 2]  # sources indexed into the rows
    assert first.branches.self_steps.tolist() == [0, 4, 0, 4]
    other_text = both.distinct_rows(10, [0, 1, 2, 3] * 2)  # different prompts: no twins
    assert all(len(p.rows) == 8 for p in other_text)


def test_a_null_edit_runs_only_its_source_at_every_step() -> None:
    zeros = torch.zeros(L)
    same = TokenMap(torch.eye(L), zeros, zeros, zeros)  # the target prompt is the source's
    assert same.is_identity and not _branches(0, 0)[1].is_identity
    edit = edit_branches(same, steps=10, cross_replace=0.8, self_replace=[0.4, 0.8], reweight=2)
    plan = BranchControl.cat([edit, edit]).distinct_rows(10, [0, 0, 0, 1, 1, 1])
    assert all(p.rows.tolist() == [0, 3] for p in plan)
    assert plan[0].rows[plan[0].expand].tolist() == [0, 0, 0, 3, 3, 3]


def test_twins_record_their_representatives_blend_maps() -> None:
    _, tmap = _branches(cross_steps=0, self_steps=0)
    edit = edit_branches(tmap, steps=10, cross_replace=0.8, self_replace=[0.4, 0.8], reweight=2)
    run = edit.distinct_rows(10, [0, 1, 1])[0]
    controller = AttentionController(edit, (4, 4), record_blend=True)
    controller.active = run
    probs = _probs(len(run.rows), 16, L)
    controller.cross(probs, query_size=16)
    assert torch.equal(controller.blend_maps[1], controller.blend_maps[2])
    assert controller.blend_maps[1].abs().sum() > 0
