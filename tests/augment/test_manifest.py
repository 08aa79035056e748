"""The manifest is rebuilt from the shards and refuses a key written twice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prism_aug.augment.manifest import build_manifest, format_summary
from prism_aug.augment.shards import ShardSink

GROUPS = {"y=1,a=1": 5, "y=1,a=0": 1, "y=0,a=1": 1, "y=0,a=0": 5, "excluded": 0}


def _meta(key: str, status: str, group_after: str, seen: bool | None) -> dict:
    return {
        "key": key,
        "status": status,
        "reason": "",
        "group_after": group_after,
        "oracle_sees_edit": seen,
    }


def _write(folder, attempt: int, metas: list[dict]) -> None:
    sink = ShardSink(str(folder / "shards"), attempt, rank=0, samples_per_shard=10)
    for meta in metas:
        sample = {"__key__": meta["key"], "json": meta}
        if meta["status"] != "failed":
            sample["png"] = np.zeros((4, 4), np.uint8)
        sink.write(sample)
    sink.close()


def test_counts_groups_failures_and_effectiveness(tmp_path):
    plan = pd.DataFrame({"key": ["a", "b", "c", "d"]})
    _write(
        tmp_path,
        0,
        [_meta("a", "accepted", "y=1,a=0", True), _meta("b", "rejected", "y=1,a=0", False)],
    )
    _write(tmp_path, 1, [_meta("c", "failed", "y=0,a=1", None)])  # a resumed attempt
    manifest = build_manifest(str(tmp_path), plan, GROUPS, {"data": {}}, "tiny")
    assert not manifest["complete"] and manifest["missing"] == ["d"]
    assert manifest["status"] == {"accepted": 1, "rejected": 1, "unverified": 0, "failed": 1}
    assert manifest["groups_after"]["y=1,a=0"] == 2 and manifest["groups_after"]["y=0,a=1"] == 1
    assert manifest["oracle_effectiveness"] == 0.5
    assert manifest["failures"] == [{"key": "c", "reason": ""}]
    assert list(manifest["shards"]) == ["aug-000-000-000000.tar", "aug-001-000-000000.tar"]
    assert json.loads((tmp_path / "manifest.json").read_text())["planned"] == 4
    summary = format_summary(manifest, images=3, seconds=1.5)
    assert "2.000 images/s" in summary and "INCOMPLETE: 1 planned" in summary


def test_a_key_in_two_shards_is_an_error(tmp_path):
    _write(tmp_path, 0, [_meta("a", "accepted", "y=1,a=0", True)])
    _write(tmp_path, 1, [_meta("a", "accepted", "y=1,a=0", True)])
    with pytest.raises(RuntimeError, match="written more than once: \\['a'\\]"):
        build_manifest(str(tmp_path), pd.DataFrame({"key": ["a"]}), GROUPS, {}, "tiny")
