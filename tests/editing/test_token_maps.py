"""Token maps of Prompt-to-Prompt: refinement alignment and word replacement."""

from __future__ import annotations

import pytest
import torch

from prism_aug.data.prompts import EditSpec, edit_prompts
from prism_aug.diffusion.tokenizer import build_clip_tokenizer, prompt_ids
from prism_aug.editing.token_maps import refine_map, replace_map, token_map

# ("Chest X-ray showing Pleural Effusion, Support Devices", "Chest X-ray showing Pleural Effusion")
REMOVE_DEVICES = edit_prompts(
    {"Pleural Effusion": 1.0, "Support Devices": 1.0}, EditSpec.parse("remove:Support Devices")
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def _tokens(tokenizer, prompt: str, mask: torch.Tensor) -> list[str]:
    ids = prompt_ids(tokenizer, [prompt])[0]
    return tokenizer.convert_ids_to_tokens(ids[mask.bool()].tolist())


def test_refine_aligns_only_equal_tokens(tokenizer) -> None:
    source, target = REMOVE_DEVICES
    tmap = refine_map(tokenizer, source, target)
    src, tgt = prompt_ids(tokenizer, [source])[0], prompt_ids(tokenizer, [target])[0]
    pairs = tmap.matrix.nonzero().tolist()
    assert pairs and all(src[i] == tgt[j] for i, j in pairs)
    # Every target token is aligned to exactly one source token or keeps its own map.
    assert torch.equal(tmap.matrix.sum(0) + tmap.own, torch.ones(77))


def test_refine_marks_removed_and_added_words(tokenizer) -> None:
    source, target = REMOVE_DEVICES
    removal = refine_map(tokenizer, source, target)
    assert _tokens(tokenizer, source, removal.source_edited) == ["support</w>", "devices</w>"]
    assert removal.target_edited.sum() == 0
    addition = refine_map(tokenizer, target, source)
    assert _tokens(tokenizer, source, addition.target_edited) == ["support</w>", "devices</w>"]
    assert addition.source_edited.sum() == 0
    assert bool((addition.own[addition.target_edited.bool()] == 1).all())


def test_replace_maps_a_swapped_word_to_the_mean_of_its_tokens(tokenizer) -> None:
    source, target = "Chest X-ray showing Edema", "Chest X-ray showing Cardiomegaly"
    tmap = replace_map(tokenizer, source, target)
    swapped = tmap.target_edited.bool()
    assert _tokens(tokenizer, target, tmap.target_edited) == tokenizer.convert_ids_to_tokens(
        tokenizer("Cardiomegaly", add_special_tokens=False).input_ids
    )
    columns = tmap.matrix[:, swapped]
    assert torch.allclose(columns.sum(0), torch.ones(int(swapped.sum())))
    assert bool((columns[tmap.source_edited.bool()] > 0).all())
    # Unchanged words map one to one, also "X-ray"'s three tokens (x, -, ray).
    assert tmap.matrix[1, 1] == 1 and tmap.matrix[5, 5] == 1
    assert torch.equal(tmap.matrix[2:5, 2:5], torch.eye(3))


def test_replace_refuses_prompts_of_different_lengths(tokenizer) -> None:
    with pytest.raises(ValueError, match=r"same number of words.*use refine"):
        replace_map(tokenizer, *REMOVE_DEVICES)
    with pytest.raises(ValueError, match="unknown token map mode 'swap'"):
        token_map(tokenizer, *REMOVE_DEVICES, mode="swap")
