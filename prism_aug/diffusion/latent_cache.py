"""Encode each image once with the frozen VAE and keep its posterior on disk.

A frozen VAE maps an image to the same posterior N(mean, std^2) at every epoch, so encoding
it at every step is wasted work (the VAE encoder costs about as much as the tiny UNet). The
cache holds the posterior mean and std, unscaled and in fp16, and the trainer draws a fresh
latent ``mean + std * noise`` from them at each step, exactly as encoding would.

Layout, one folder per (VAE weights, resolution, records), so a change of any of them makes
a new cache and never reads a stale one::

    root/<key>/index.json                  what the cache holds (human-readable)
    root/<key>/records.csv                 row -> image path, in dataset order
    root/<key>/shard-000000000.safetensors "mean", "std": (n, 4, h, w) fp16, rows start..

It scales to CheXpert: 223k images at 512 px are (4, 64, 64) latents, 7 GB per tensor in
fp16 (14 GB with the std), in shards of ``SHARD_SIZE`` rows read by memory map. Ranks
encode alternate shards, a finished shard is never re-encoded (an interrupted build resumes),
and the index is written last: a folder without index.json is incomplete.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

SHARD_SIZE = 4096  # rows per shard: 4096 SD latents (4, 64, 64) are 268 MB with the std
FORMAT_VERSION = 1


class ImageDataset(Protocol):
    """What the cache encodes: items with ``pixel_values`` ``(C, S, S)``, and their paths."""

    paths: Sequence[str]
    image_size: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, object]: ...


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """SHA-256 of a VAE's config and weights: equal for the same model, and only then.

    Config keys starting with "_" are bookkeeping (``_use_default_values`` is built from a
    set, so its order changes from one process to the next) and are left out.
    """
    config = {key: value for key, value in vae.config.items() if not key.startswith("_")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_key(fingerprint: str, image_size: int, paths: Sequence[str]) -> str:
    """The cache folder's name: a hash of the VAE, the resolution and the image paths."""
    content = json.dumps({"vae": fingerprint, "image_size": image_size, "paths": list(paths)})
    return hashlib.sha256(content.encode()).hexdigest()[:20]


def _shard_name(start: int) -> str:
    return f"shard-{start:09d}.safetensors"


class LatentCache:
    """Read-only view of a finished cache folder: ``cache[i] -> (mean, std)``, each
    ``(4, h, w)`` float32.

    Raises:
        FileNotFoundError: the folder has no index.json (the cache was never finished).
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        index = self.folder / "index.json"
        if not index.is_file():
            raise FileNotFoundError(f"{index} is missing: {self.folder} is not a finished cache")
        self.index = json.loads(index.read_text())
        self.starts = [shard["start"] for shard in self.index["shards"]]
        self._handles: dict[int, object] = {}  # opened lazily, in each DataLoader worker

    def __len__(self) -> int:
        return self.index["count"]

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range for a cache of {len(self)}")
        shard = bisect_right(self.starts, row) - 1
        if shard not in self._handles:
            path = self.folder / self.index["shards"][shard]["file"]
            self._handles[shard] = safe_open(str(path), framework="pt")
        handle, offset = self._handles[shard], row - self.starts[shard]
        mean = handle.get_slice("mean")[offset : offset + 1][0].float()
        std = handle.get_slice("std")[offset : offset + 1][0].float()
        return mean, std

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_handles": {}}  # file handles do not cross processes


def _encode_shard(
    dataset: ImageDataset,
    start: int,
    stop: int,
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
    num_workers: int,
) -> dict[str, torch.Tensor]:
    # A generator of its own: a DataLoader draws its workers' base seed from the global RNG,
    # which also shuffles the training data, so a run that builds the cache would otherwise
    # see other batches than one that finds it.
    loader = DataLoader(
        Subset(dataset, range(start, stop)),
        batch_size=batch_size,
        num_workers=num_workers,
        generator=torch.Generator(),
    )
    means, stds = [], []
    with torch.no_grad():
        for batch in loader:
            mean, std = encode(batch["pixel_values"])  # (B, 4, h, w) each
            means.append(mean.to("cpu", torch.float16))
            stds.append(std.to("cpu", torch.float16))
    return {"mean": torch.cat(means).contiguous(), "std": torch.cat(stds).contiguous()}


def build_latent_cache(
    root: Path,
    dataset: ImageDataset,
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    fingerprint: str,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] = lambda: None,
    batch_size: int = 64,
    num_workers: int = 0,
) -> LatentCache:
    """Encode the images not cached yet, and return the finished cache.

    Called on every rank: rank r encodes shards r, r + world_size, ...; after a barrier rank 0
    writes the index, and after another every rank opens the cache. A finished cache is
    opened without encoding anything.

    Args:
        root: folder holding the caches; this one goes to ``root / cache_key(...)``.
        dataset: the images, items with ``pixel_values`` ``(C, S, S)`` in [-1, 1].
        encode: pixels ``(B, C, S, S)`` -> posterior mean and std ``(B, 4, S/f, S/f)``.
        fingerprint: ``vae_fingerprint`` of the encoding VAE.
        rank, world_size, barrier: the distributed set-up (defaults: one process).
        batch_size: images per ``encode`` call.
        num_workers: DataLoader workers reading the images.
    """
    folder = root / cache_key(fingerprint, dataset.image_size, dataset.paths)
    if (folder / "index.json").is_file():
        return LatentCache(folder)
    folder.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(dataset), SHARD_SIZE))
    mine = [s for k, s in enumerate(starts) if k % world_size == rank]
    for start in tqdm(mine, desc=f"caching latents in {folder}", disable=rank != 0):
        path = folder / _shard_name(start)
        if path.is_file():
            continue  # finished by an earlier, interrupted build
        stop = min(start + SHARD_SIZE, len(dataset))
        tensors = _encode_shard(dataset, start, stop, encode, batch_size, num_workers)
        # A name of this process's own: two jobs of a sweep on the same data build the same
        # cache at once, and must not write into one file.
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            save_file(tensors, str(partial))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    barrier()
    if rank == 0:
        _write_index(folder, dataset, fingerprint, starts)
    barrier()
    return LatentCache(folder)


def _write_index(
    folder: Path, dataset: ImageDataset, fingerprint: str, starts: Sequence[int]
) -> None:
    """Write records.csv, then index.json (last, atomically: it marks the cache finished)."""
    pd.DataFrame({"row": range(len(dataset)), "path": list(dataset.paths)}).to_csv(
        folder / "records.csv", index=False
    )
    with safe_open(str(folder / _shard_name(starts[0])), framework="pt") as first:
        latent_shape = list(first.get_slice("mean").get_shape()[1:])
    shards = [
        {"file": _shard_name(s), "start": s, "stop": min(s + SHARD_SIZE, len(dataset))}
        for s in starts
    ]
    index = {
        "format": FORMAT_VERSION,
        "count": len(dataset),
        "image_size": dataset.image_size,
        "latent_shape": latent_shape,
        "dtype": "float16",
        "tensors": {"mean": "posterior mean, unscaled", "std": "posterior std, unscaled"},
        "vae_fingerprint": fingerprint,
        "records": "records.csv",
        "shards": shards,
    }
    partial = folder / f"index.json.{uuid.uuid4().hex}.partial"
    partial.write_text(json.dumps(index, indent=2))
    partial.replace(folder / "index.json")
