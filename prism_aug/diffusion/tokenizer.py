"""The CLIP BPE tokenizer that Stable Diffusion v1.x uses, built offline from open_clip's merges.

Why this tokenizer: it is SD v1.5's own (49408 tokens, ids identical to the hub's
``tokenizer/`` folder), so a prompt gets the same ids in our tiny model and in a fine-tuned
real SD v1.5, and Prompt-to-Prompt's token alignment between a source and an edited prompt
works on the tokens the real model sees. A vocabulary built from our prompts would be smaller
but would tie every model to one prompt set and differ from SD's. The BPE merges ship inside
the ``open_clip_torch`` wheel (``open_clip/bpe_simple_vocab_16e6.txt.gz``), so building needs
no network and gives the same vocabulary everywhere.

    >>> tokenizer = build_clip_tokenizer()
    >>> tokenizer("a photo of a cat").input_ids
    [49406, 320, 1125, 539, 320, 2368, 49407]
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import CLIPTokenizer

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
MODEL_MAX_LENGTH = 77  # CLIP's context length: prompts are padded or truncated to 77 tokens
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# CLIP keeps the first 49152 - 256 - 2 merges: 256 byte tokens, 256 with "</w>", the merges
# and the two special tokens make 49408.
NUM_MERGES = 49152 - 256 - 2


def _bpe_path() -> Path:
    """Path of the BPE merges file inside the installed open_clip package (not imported)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the CLIP tokenizer is built from open_clip's BPE file: pip install open_clip_torch"
        )
    return Path(next(iter(spec.submodule_search_locations))) / BPE_FILE


def _bytes_to_unicode() -> list[str]:
    """CLIP's 256 base symbols: each byte mapped to a printable unicode character.

    Printable bytes map to themselves; the others (whitespace, control) to chr(256 + n), so
    BPE never sees a character it would split on. The order is CLIP's and fixes the ids 0..255.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    codes = printable + [256 + n for n in range(len(others))]
    return [chr(c) for c in codes]


def clip_vocab_and_merges(bpe_path: Path | None = None) -> tuple[dict[str, int], list[str]]:
    """Derive CLIP's vocabulary and merge list from the BPE merges file, as CLIP does.

    Args:
        bpe_path: the gzipped merges file; defaults to the one open_clip ships.

    Returns:
        ``(vocab, merges)``: token -> id for 49408 tokens (bytes, bytes + "</w>", one token
        per merge, then ``<|startoftext|>`` = 49406 and ``<|endoftext|>`` = 49407), and the
        49152 - 258 merges as "left right" lines.
    """
    lines = gzip.decompress((bpe_path or _bpe_path()).read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : NUM_MERGES + 1]  # line 0 is the "#version" header
    base = _bytes_to_unicode()
    tokens = [*base, *(b + "</w>" for b in base), *(m.replace(" ", "") for m in merges)]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_clip_vocab(folder: Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` into folder (created if missing); return folder."""
    vocab, merges = clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    return folder


def build_clip_tokenizer(cache_dir: Path | str | None = None) -> CLIPTokenizer:
    """SD v1.x's CLIP tokenizer, built from open_clip's BPE file without network.

    The vocabulary files are written in the standard ``vocab.json`` + ``merges.txt`` form and
    loaded through ``CLIPTokenizer.from_pretrained``, which reads that form in transformers
    4.x and 5.x alike (their constructors differ).

    Args:
        cache_dir: folder that keeps ``vocab.json`` and ``merges.txt`` for reuse; they are
            written there when missing. None builds them in a temporary folder.

    Returns:
        A CLIPTokenizer with 49408 tokens and ``model_max_length`` 77; padding uses
        ``<|endoftext|>`` (49407) as SD's does.
    """
    if cache_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return _load(write_clip_vocab(Path(tmp)))
    folder = Path(cache_dir)
    if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        write_clip_vocab(folder)
    return _load(folder)


def _load(folder: Path) -> CLIPTokenizer:
    """Load the tokenizer from a folder holding vocab.json and merges.txt."""
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=MODEL_MAX_LENGTH)
    if len(tokenizer) != VOCAB_SIZE:
        raise ValueError(
            f"CLIP tokenizer in {folder} has {len(tokenizer)} tokens, expected {VOCAB_SIZE}: "
            "delete vocab.json and merges.txt there to rebuild them"
        )
    return tokenizer


def prompt_ids(tokenizer: CLIPTokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """Token ids ``(B, 77)`` of prompts, padded and truncated to 77 as SD's encoder reads them."""
    return tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
