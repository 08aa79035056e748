"""The manifest of an augmentation run, read from its complete shards, and its summary.

The shards are the truth: the manifest is rebuilt from them after every run (first or
resumed), so it always describes exactly what the folder holds. Its ``config`` is the run
that wrote it; each sample's JSON keeps the settings and precision it was made with.
Building it also checks the exactly-once promise: every planned key in one complete shard,
none twice.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from prism_aug.augment.module import FAILED
from prism_aug.augment.shards import SHARD_FOLDER, filesystem, read_shards
from prism_aug.editing.verifier import ACCEPTED, REJECTED, UNVERIFIED

MANIFEST_NAME = "manifest.json"
PACKAGES: tuple[str, ...] = (
    "prism-aug",
    "torch",
    "diffusers",
    "transformers",
    "lightning",
    "webdataset",
    "timm",
)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def build_manifest(
    out: str,
    plan: pd.DataFrame,
    groups_before: dict[str, int],
    config: dict[str, Any],
    model: str,
) -> dict[str, Any]:
    """Describe the run folder ``out`` and write it to ``{out}/manifest.json``.

    Raises:
        RuntimeError: a key is in two complete shards (the exactly-once promise broken).
    """
    fs, folder = filesystem(out)
    shards, samples = {}, []
    for path, metas, sha256 in read_shards(f"{out}/{SHARD_FOLDER}", checksum=True):
        shards[PurePosixPath(path).name] = {"keys": [m["key"] for m in metas], "sha256": sha256}
        samples.extend(metas)
    keys = Counter(m["key"] for m in samples)
    twice = sorted(k for k, n in keys.items() if n > 1)
    if twice:
        raise RuntimeError(f"{out}: keys written more than once: {twice[:5]}")
    missing = sorted(set(plan["key"]) - set(keys))
    status = Counter(m["status"] for m in samples)
    usable = [m for m in samples if m["status"] in (ACCEPTED, UNVERIFIED)]
    added = Counter(m["group_after"] for m in usable)
    judged = [m for m in samples if m.get("oracle_sees_edit") is not None]
    manifest = {
        "complete": not missing,
        "planned": len(plan),
        "written": len(samples),
        "missing": missing,
        "status": {s: status.get(s, 0) for s in (ACCEPTED, REJECTED, UNVERIFIED, FAILED)},
        "oracle_effectiveness": (
            sum(m["oracle_sees_edit"] for m in judged) / len(judged) if judged else None
        ),
        "groups_before": groups_before,
        "groups_after": {g: n + added.get(g, 0) for g, n in groups_before.items()},
        "failures": [
            {"key": m["key"], "reason": m["reason"]} for m in samples if m["status"] == FAILED
        ],
        "rejections": [
            {"key": m["key"], "reason": m["reason"]} for m in samples if m["status"] == REJECTED
        ],
        "shards": shards,
        "model": model,
        "config": config,
        "versions": _versions(),
    }
    with fs.open(f"{folder}/{MANIFEST_NAME}", "w") as f:
        json.dump(manifest, f, indent=1, default=str)
    return manifest


def format_summary(manifest: dict[str, Any], images: int, seconds: float) -> str:
    """What a run did, in a few lines: groups, verdicts, oracle effectiveness, speed."""
    before, after = manifest["groups_before"], manifest["groups_after"]
    lines = ["group        before   after"]
    lines += [f"{g:<11} {before[g]:>7,} {after[g]:>7,}" for g in before]
    counts = ", ".join(f"{n} {s}" for s, n in manifest["status"].items() if n)
    lines.append(f"jobs: {manifest['planned']} planned, {manifest['written']} written ({counts})")
    if manifest["oracle_effectiveness"] is not None:
        lines.append(f"the oracle sees the edit in {manifest['oracle_effectiveness']:.1%}")
    if images:
        lines.append(
            f"this run: {images} images in {seconds:.1f} s, {images / seconds:.3f} images/s"
        )
    else:
        lines.append("this run: nothing left to do")
    if manifest["missing"]:
        lines.append(f"INCOMPLETE: {len(manifest['missing'])} planned jobs are not in the shards")
    return "\n".join(lines)
