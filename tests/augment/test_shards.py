"""Shards are complete or absent: partial names until closed, cleaned up on the next run."""

from __future__ import annotations

import numpy as np

from prism_aug.augment.reader import read_augmented
from prism_aug.augment.shards import (
    ShardSink,
    complete_shards,
    discard_partial_shards,
    filesystem,
    next_attempt,
    read_metadata,
)


def _sample(i: int) -> dict:
    return {"__key__": f"k{i}", "png": np.full((4, 4), i, np.uint8), "json": {"key": f"k{i}"}}


def _names(paths: list[str]) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in paths]


def test_a_shard_is_renamed_only_when_complete(tmp_path):
    url = str(tmp_path / "shards")
    sink = ShardSink(url, attempt=0, rank=1, samples_per_shard=2)
    assert not (tmp_path / "shards").exists()  # nothing written, no empty shard
    for i in range(3):
        sink.write(_sample(i))
    names = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert names == ["aug-000-001-000000.tar", "aug-000-001-000001.tar.partial"]
    assert _names(complete_shards(url)) == ["aug-000-001-000000.tar"]
    fs, _ = filesystem(url)
    assert [m["key"] for m in read_metadata(fs, complete_shards(url)[0])] == ["k0", "k1"]
    sink.close()
    assert _names(complete_shards(url)) == ["aug-000-001-000000.tar", "aug-000-001-000001.tar"]
    assert next_attempt(url) == 1


def test_partial_shards_are_discarded_and_do_not_count(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "aug-000-000-000000.tar").write_bytes(b"")
    (folder / "aug-001-000-000000.tar.partial").write_bytes(b"half a tar")
    assert _names(complete_shards(str(folder))) == ["aug-000-000-000000.tar"]
    assert next_attempt(str(folder)) == 1
    assert _names(discard_partial_shards(str(folder))) == ["aug-001-000-000000.tar.partial"]
    assert sorted(p.name for p in folder.iterdir()) == ["aug-000-000-000000.tar"]


def test_shard_bytes_depend_on_the_samples_only(tmp_path):
    for folder in ("a", "b"):
        sink = ShardSink(str(tmp_path / folder), attempt=2, rank=0, samples_per_shard=10)
        for i in range(3):
            sink.write(_sample(i))
        sink.close()
    a, b = (tmp_path / f / "aug-002-000-000000.tar" for f in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()  # fixed mtime, owner and mode


def test_shards_at_an_fsspec_url_are_listed_as_urls_and_read_back():
    url = "memory://augment-test/run/shards"  # as s3://bucket/run/shards: not a local path
    sink = ShardSink(url, attempt=0, rank=0, samples_per_shard=2)
    for i in range(3):
        meta = {"key": f"k{i}", "source_key": f"s{i}", "source_path": f"p{i}.png",
                "edit": "remove:Support Devices", "status": "accepted",
                "labels_after": {}, "group_after": "y=1,a=0"}  # fmt: skip
        sink.write({"__key__": f"k{i}", "png": np.full((4, 4), i, np.uint8), "json": meta})
    sink.close()
    shards = complete_shards(url)
    assert len(shards) == 2 and all(s.startswith("memory://") for s in shards)
    items = list(read_augmented(shards, originals=False))
    assert [item["key"] for item in items] == ["k0", "k1", "k2"]
    assert [int(item["image"][0, 0]) for item in items] == [0, 1, 2]
    filesystem(url)[0].rm("/augment-test", recursive=True)
