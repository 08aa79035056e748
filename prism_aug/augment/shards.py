"""Shard files of an augmentation run: names, atomic completion and what is already done.

Each rank writes its own series with webdataset's ShardWriter. A shard is written under a
``.partial`` name and renamed to ``.tar`` only once closed, so a ``.tar`` is always complete:
a killed run leaves partial files, which the next run deletes before redoing their jobs.
Names carry the attempt (one per run of the same command), the rank and the shard index,
``aug-{attempt:03d}-{rank:03d}-{index:06d}.tar``, so a resumed run never overwrites a
complete shard. Files go through fsspec, so the folder may be any URL it opens (s3://...).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from typing import Any

import fsspec
import webdataset as wds
from fsspec.core import url_to_fs

SHARD_FOLDER = "shards"  # inside a run folder
SHARD_RE = re.compile(r"aug-(\d{3})-(\d{3})-(\d{6})\.tar$")
PARTIAL_SUFFIX = ".partial"
# A fixed modification time makes a shard's bytes a function of its samples only.
SHARD_MTIME = 0.0


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path inside it."""
    return url_to_fs(url)


def complete_shards(url: str) -> list[str]:
    """The complete shards in folder ``url``, in name order: paths, or URLs with the
    folder's protocol (fsspec lists ``bucket/run/...`` for ``s3://bucket/run``)."""
    fs, folder = filesystem(url)
    if not fs.exists(folder):
        return []
    shards = sorted(p for p in fs.ls(folder, detail=False) if SHARD_RE.search(p))
    return [fs.unstrip_protocol(p) for p in shards] if "://" in url else shards


def discard_partial_shards(url: str) -> list[str]:
    """Delete what a killed run left half written in folder ``url``; returns the paths."""
    fs, folder = filesystem(url)
    if not fs.exists(folder):
        return []
    partial = sorted(p for p in fs.ls(folder, detail=False) if p.endswith(PARTIAL_SUFFIX))
    for path in partial:
        fs.rm(path)
    return partial


def next_attempt(url: str) -> int:
    """One more than the highest attempt among the complete shards (0 for a new folder)."""
    attempts = [int(SHARD_RE.search(p).group(1)) for p in complete_shards(url)]
    return max(attempts, default=-1) + 1


def read_metadata(
    fs: fsspec.AbstractFileSystem, path: str, digest: Any = None
) -> Iterator[dict[str, Any]]:
    """The JSON metadata of every sample of one shard, in order.

    Args:
        fs: the shard's filesystem.
        path: the shard.
        digest: a ``hashlib`` hash, updated with every byte of the file in the same pass
            (the manifest's checksum without reading the shard twice).

    Raises:
        ValueError: the shard is not a readable tar of samples (named, with what to do).
    """
    try:
        with fs.open(path, "rb") as raw:
            f = raw if digest is None else _Hashing(raw, digest)
            with tarfile.open(fileobj=f, mode="r|") as tar:
                for member in tar:
                    if member.name.endswith(".json"):
                        yield json.loads(tar.extractfile(member).read())
            if digest is not None:  # the archive's end padding, which tar does not read
                while f.read(1 << 20):
                    pass
    except (tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"shard {path} is unreadable ({type(err).__name__}: {err}); delete it, and the "
            "next run redoes its jobs"
        ) from err


class _Hashing:
    """A binary file read through, feeding a hash with what is read."""

    def __init__(self, file: Any, digest: Any) -> None:
        self.file, self.digest = file, digest

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.digest.update(data)
        return data


def read_shards(
    url: str, checksum: bool = False
) -> Iterator[tuple[str, list[dict[str, Any]], str | None]]:
    """Each complete shard of folder ``url``, in name order: its path, its samples' metadata
    and, with ``checksum``, the SHA-256 of its bytes (from the same single read)."""
    fs, _ = filesystem(url)
    for path in complete_shards(url):
        digest = hashlib.sha256() if checksum else None
        metas = list(read_metadata(fs, path, digest))
        yield path, metas, None if digest is None else digest.hexdigest()


class ShardSink:
    """One rank's series of shards under folder ``url``, each complete or absent.

    Args:
        url: the shard folder (local path or fsspec URL).
        attempt: this run's attempt number (:func:`next_attempt`).
        rank: the global rank writing.
        samples_per_shard: samples per shard before the next one starts.
    """

    def __init__(self, url: str, attempt: int, rank: int, samples_per_shard: int) -> None:
        self.fs, self.folder = filesystem(url)
        self.attempt, self.rank, self.samples_per_shard = attempt, rank, samples_per_shard
        self._writer: wds.ShardWriter | None = None
        self._file: Any = None

    def write(self, sample: dict[str, Any]) -> None:
        """Write one webdataset sample (``__key__`` plus encoded or encodable fields)."""
        if self._writer is None:  # a rank with nothing to write leaves no empty shard
            self.fs.makedirs(self.folder, exist_ok=True)
            pattern = f"{self.folder}/aug-{self.attempt:03d}-{self.rank:03d}-%06d.tar"
            self._writer = wds.ShardWriter(
                pattern + PARTIAL_SUFFIX,
                maxcount=self.samples_per_shard,
                verbose=0,
                opener=self._open,
                post=self._complete,
                mtime=SHARD_MTIME,
            )
        self._writer.write(sample)

    def close(self) -> None:
        """Complete the last shard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self, partial: str) -> Any:
        self._file = self.fs.open(partial, "wb")
        return self._file

    def _complete(self, partial: str) -> None:
        self._file.close()  # TarWriter leaves a stream it did not open to its owner
        self.fs.mv(partial, partial.removesuffix(PARTIAL_SUFFIX))
