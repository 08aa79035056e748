"""Which source token each target token's cross-attention comes from (Prompt-to-Prompt).

Two ways to relate an edited prompt to its source, as in Hertz et al. 2022:

- ``replace``: the prompts have the same words except some swapped ("Cardiomegaly" for
  "Edema"); a swapped word's tokens take the mean of the source word's tokens' maps.
- ``refine``: words are inserted or deleted, as our edits do ("..., Support Devices" added or
  dropped); tokens are aligned by the longest matching blocks of the two token sequences
  (``difflib``), and target tokens without a counterpart keep their own maps.

Both return a ``TokenMap``: the ``(L, L)`` matrix and the edited tokens on each side, which the
local blend and the re-weighting use.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from transformers import CLIPTokenizer

from prism_aug.diffusion.tokenizer import prompt_ids

MODES: tuple[str, ...] = ("replace", "refine")


@dataclass(frozen=True)
class TokenMap:
    """How a target prompt's tokens relate to its source prompt's (all ``L`` = 77 long).

    Attributes:
        matrix: ``(L, L)`` entry (i, j): weight of source token i in target token j's map.
        own: ``(L,)`` 1 for target tokens with no source counterpart (they keep their maps).
        source_edited: ``(L,)`` 1 for source word tokens that the edit removes or swaps.
        target_edited: ``(L,)`` 1 for target word tokens that the edit adds or swaps in.
    """

    matrix: torch.Tensor
    own: torch.Tensor
    source_edited: torch.Tensor
    target_edited: torch.Tensor

    @property
    def is_identity(self) -> bool:
        """Whether the target is the source token for token (a null edit), so that giving
        it the source's attention changes nothing."""
        edited = self.own.any() or self.source_edited.any() or self.target_edited.any()
        return not edited and torch.equal(self.matrix, torch.eye(len(self.own)))


def _ids(tokenizer: CLIPTokenizer, prompt: str) -> list[int]:
    """Token ids padded to the model length (BOS, words, EOS, padding), as the encoder sees."""
    return prompt_ids(tokenizer, [prompt])[0].tolist()


def _is_word(tokenizer: CLIPTokenizer, token_id: int) -> bool:
    """Whether a token carries letters (not punctuation, BOS, EOS or padding)."""
    if token_id in tokenizer.all_special_ids:
        return False
    return any(
        ch.isalpha() for ch in tokenizer.convert_ids_to_tokens(token_id).removesuffix("</w>")
    )


def _word_mask(tokenizer: CLIPTokenizer, ids: list[int], positions: set[int]) -> torch.Tensor:
    mask = torch.zeros(len(ids))
    for i in positions:
        mask[i] = float(_is_word(tokenizer, ids[i]))
    return mask


def refine_map(tokenizer: CLIPTokenizer, source: str, target: str) -> TokenMap:
    """Align tokens by the longest matching blocks; unmatched target tokens keep their own."""
    src, tgt = _ids(tokenizer, source), _ids(tokenizer, target)
    length = len(src)
    matrix = torch.zeros(length, length)
    own = torch.ones(length)
    matched_src: set[int] = set()
    matcher = difflib.SequenceMatcher(a=src, b=tgt, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            matrix[block.a + k, block.b + k] = 1.0
            own[block.b + k] = 0.0
            matched_src.add(block.a + k)
    unmatched_tgt = {j for j in range(length) if own[j]}
    return TokenMap(
        matrix,
        own,
        _word_mask(tokenizer, src, set(range(length)) - matched_src),
        _word_mask(tokenizer, tgt, unmatched_tgt),
    )


def replace_map(tokenizer: CLIPTokenizer, source: str, target: str) -> TokenMap:
    """Word-for-word: tokens map one to one where a word keeps its token count (an unchanged
    word, or a swap of equal length); otherwise a swapped word's target tokens each take the
    mean of its source tokens (P2P's word swap).

    Raises:
        ValueError: the prompts differ in their number of words.
    """
    src_words, tgt_words = source.split(), target.split()
    if len(src_words) != len(tgt_words):
        raise ValueError(
            f"replace needs prompts with the same number of words, got {len(src_words)} "
            f"({source!r}) and {len(tgt_words)} ({target!r}); use refine for insertions"
        )
    length = tokenizer.model_max_length
    matrix, own = torch.zeros(length, length), torch.zeros(length)
    src_edited, tgt_edited = torch.zeros(length), torch.zeros(length)
    i = j = 1  # after BOS
    for sw, tw in zip(src_words, tgt_words, strict=True):
        ns = len(tokenizer(sw, add_special_tokens=False).input_ids)
        nt = len(tokenizer(tw, add_special_tokens=False).input_ids)
        if i + ns >= length or j + nt >= length:
            break  # the rest is truncated away by the encoder too
        if ns == nt:
            matrix[i : i + ns, j : j + nt] = torch.eye(ns)
        else:
            matrix[i : i + ns, j : j + nt] = 1.0 / ns
        if sw != tw:
            src_edited[i : i + ns], tgt_edited[j : j + nt] = 1.0, 1.0
        i, j = i + ns, j + nt
    matrix[0, 0] = 1.0  # BOS
    for k in range(length - max(i, j)):  # EOS and padding, in order
        matrix[i + k, j + k] = 1.0
    own[j + length - max(i, j) :] = 1.0  # target padding left without a source counterpart
    return TokenMap(matrix, own, src_edited, tgt_edited)


def token_map(tokenizer: CLIPTokenizer, source: str, target: str, mode: str) -> TokenMap:
    """``replace_map`` or ``refine_map`` by name."""
    if mode == "replace":
        return replace_map(tokenizer, source, target)
    if mode == "refine":
        return refine_map(tokenizer, source, target)
    raise ValueError(f"unknown token map mode {mode!r}; expected one of {MODES}")
