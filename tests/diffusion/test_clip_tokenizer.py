"""The offline CLIP tokenizer gives SD v1.5's token ids, deterministically, without network."""

from __future__ import annotations

from pathlib import Path

import pytest

from prism_aug.diffusion.tokenizer import VOCAB_SIZE, build_clip_tokenizer

CAPTIONS = [
    "Chest X-ray showing Pleural Effusion, Support Devices",
    "Normal chest X-ray with no significant findings",
    "Chest X-ray showing Cardiomegaly, Enlarged Cardiomediastinum",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def test_ids_match_stable_diffusion(tokenizer) -> None:
    # What runwayml/stable-diffusion-v1-5's tokenizer gives.
    ids = tokenizer("a photo of a cat").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a photo of a cat"
    assert len(tokenizer) == VOCAB_SIZE
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        49406,
        49407,
        49407,
    )


def test_ids_match_open_clip_reference(tokenizer) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    reference = SimpleTokenizer()
    for text in CAPTIONS:
        ids = tokenizer(text).input_ids
        assert ids == reference(text)[0][: len(ids)].tolist()


def test_pads_and_truncates_to_77(tokenizer) -> None:
    batch = tokenizer(
        [CAPTIONS[0], "word " * 100],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    assert tokenizer.model_max_length == 77
    assert batch.shape == (2, 77)
    assert batch[0, 14:].eq(49407).all()  # 12 tokens + bos + eos, then <|endoftext|> padding
    assert batch[1, -1].item() == 49407


def test_deterministic_and_cached_offline(tmp_path: Path, no_network, tokenizer) -> None:
    cached = build_clip_tokenizer(tmp_path)
    written = {name: (tmp_path / name).stat().st_mtime_ns for name in ("vocab.json", "merges.txt")}
    again = build_clip_tokenizer(tmp_path)
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in written} == written
    assert cached.get_vocab() == again.get_vocab() == tokenizer.get_vocab()
    for text in CAPTIONS:
        assert cached(text).input_ids == again(text).input_ids == tokenizer(text).input_ids
