"""``prism-aug augment`` in one process: shards, manifest, reader, rerun, failures."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from prism_aug.augment.data import AugmentDataModule, done_keys
from prism_aug.augment.reader import read_augmented
from prism_aug.cli import main
from prism_aug.data.records import load_image, square_image
from prism_aug.editing.editor import Editor

META_FIELDS = {
    "key",
    "source_key",
    "source_path",
    "edit",
    "status",
    "reason",
    "labels_before",
    "labels_after",
    "group_before",
    "group_after",
    "source_prompt",
    "target_prompt",
    "seed",
    "settings",
    "precision",
    "model",
}


def shard_members(out: Path) -> dict[str, dict[str, bytes]]:
    """Every complete shard's members: key -> {extension: bytes}."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


@pytest.fixture(scope="module")
def run(assets, write_config, tmp_path_factory) -> tuple[Path, Path]:
    # Unverified: a random-weight oracle sees nearly the same thing in every image, so it
    # could accept an edit only vacuously (tests/editing/test_verifier.py judges verdicts).
    tmp = tmp_path_factory.mktemp("run")
    config = write_config(tmp / "augment.yaml", assets, tmp / "out", model={"oracle": None})
    main(["augment", "--config", str(config)])
    return config, tmp / "out"


def test_every_planned_job_is_written_once(run):
    _, out = run
    plan = pd.read_csv(out / "plan.csv")
    samples = shard_members(out)
    assert len(plan) == 22 and set(samples) == set(plan["key"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["written"] == manifest["planned"] == len(plan)
    assert sum(manifest["status"].values()) == len(plan)
    in_shards = [k for shard in manifest["shards"].values() for k in shard["keys"]]
    assert sorted(in_shards) == sorted(plan["key"])  # once each
    for name, shard in manifest["shards"].items():
        digest = hashlib.sha256((out / "shards" / name).read_bytes()).hexdigest()
        assert shard["sha256"] == digest
    assert manifest["groups_before"]["y=1,a=0"] == 1
    usable = {"y=1,a=0": 0, "y=0,a=1": 0}
    for key, members in samples.items():
        meta = json.loads(members["json"])
        assert set(meta) >= META_FIELDS and meta["key"] == key
        assert {"png", "source.png"} <= set(members)
        assert meta["status"] == "unverified"
        usable[meta["group_after"]] += 1
    assert manifest["groups_after"]["y=1,a=0"] == 1 + usable["y=1,a=0"]
    assert manifest["groups_after"]["y=0,a=1"] == 1 + usable["y=0,a=1"]
    assert manifest["config"]["data"]["out"] == str(out)
    assert manifest["versions"]["torch"]
    assert (out / "examples.png").is_file()


def test_the_reader_yields_originals_and_counterfactuals(run):
    _, out = run
    items = list(read_augmented(sorted(str(p) for p in (out / "shards").glob("*.tar"))))
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(items) == 2 * manifest["status"]["unverified"]
    originals, edited = items[0::2], items[1::2]
    assert {i["kind"] for i in originals} == {"original"}
    assert {i["kind"] for i in edited} == {"counterfactual"}
    for source, cf in zip(originals, edited, strict=True):
        assert source["key"] == cf["key"] and source["image"].shape == cf["image"].shape == (32, 32)
        assert source["group"][:4] == cf["group"][:4] and source["group"] != cf["group"]
        assert source["labels"]["Support Devices"] != cf["labels"]["Support Devices"]


def test_a_rerun_has_nothing_to_do_and_keeps_the_shards(run, capsys):
    config, out = run
    before = {p.name: p.read_bytes() for p in (out / "shards").glob("*.tar")}
    main(["augment", "--config", str(config)])
    assert "nothing left to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "shards").glob("*.tar")} == before


def test_another_plan_in_the_same_folder_is_refused(run):
    config, _ = run
    with pytest.raises(SystemExit, match="holds another plan"):
        main(["augment", "--config", str(config), "--data.plan.max_per_group", "2"])


def test_a_resume_with_other_settings_is_refused(run):
    config, out = run
    with pytest.raises(SystemExit, match=r"run.json: .*batch_size: 3 then, 2 now"):
        main(["augment", "--config", str(config), "--data.batch_size", "2"])
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["batch_size"] == 3 and recorded["settings"]["self_replace"] == [0.4, 0.8]


def test_a_run_from_before_a_setting_existed_resumes_at_its_default(run, capsys):
    # As recorded by prism-aug before decoder_steps: the run had its default behaviour.
    config, out = run
    written = (out / "run.json").read_text()
    recorded = json.loads(written)
    del recorded["settings"]["decoder_steps"]
    (out / "run.json").write_text(json.dumps(recorded))
    try:
        main(["augment", "--config", str(config)])
        assert "nothing left to do" in capsys.readouterr().out
        with pytest.raises(SystemExit, match=r"run.json: .*'decoder_steps': 0.* then"):
            main(["augment", "--config", str(config), "--model.settings.decoder_steps", "2"])
    finally:
        (out / "run.json").write_text(written)


def test_every_rank_checks_its_plan_against_the_written_one(run, assets, tmp_path):
    # Another node's copy of the CSV, with one record fewer: its rank would deal other jobs.
    _, out = run
    records = pd.read_csv(assets["data"] / "train.csv")
    records.iloc[1:].to_csv(tmp_path / "other_copy.csv", index=False)
    rank = AugmentDataModule(tmp_path / "other_copy.csv", str(out))
    with pytest.raises(ValueError, match="holds another plan"):
        rank.setup("predict")


def test_an_unreadable_shard_is_named(tmp_path):
    shards = tmp_path / "out" / "shards"
    shards.mkdir(parents=True)
    (shards / "aug-000-000-000000.tar").write_bytes(b"truncated by a crash")
    with pytest.raises(ValueError, match=r"shard .*aug-000-000-000000\.tar is unreadable"):
        done_keys(str(tmp_path / "out"))


def test_failures_are_recorded_and_counted_in_the_exit_status(assets, write_config, tmp_path):
    data = shutil.copytree(assets["data"], tmp_path / "synthcxr")
    records = pd.read_csv(data / "train.csv")
    with_devices = records[records["Support Devices"] == 1.0]["Path"].tolist()
    good, broken = with_devices[:2]
    (data.parent / broken).write_bytes(b"not a png")
    jobs = tmp_path / "jobs.csv"
    pd.DataFrame(
        {
            "path": [good, broken, good],
            "edit": ["remove:Support Devices", "remove:Support Devices", "remove:Cardiomegaly"],
        }
    ).to_csv(jobs, index=False)
    out = tmp_path / "out"
    config = write_config(
        tmp_path / "augment.yaml",
        assets,
        out,
        data={
            "records": str(data / "train.csv"),
            "out": str(out),
            "plan": {"policy": "jobs", "jobs": str(jobs)},
        },
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["augment", "--config", str(config)])
    assert exit_info.value.code == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["status"]["failed"] == 2
    reasons = {f["key"].split("__")[1]: f["reason"] for f in manifest["failures"]}
    assert "cannot read image" in reasons["remove-support-devices"]
    assert "nothing to remove" in reasons["remove-cardiomegaly"]
    samples = shard_members(out)
    failed = {f["key"] for f in manifest["failures"]}
    assert all(set(samples[k]) == {"json"} for k in failed)  # no image for a failed job
    assert {"png", "json", "source.png"} == set(samples[(set(samples) - failed).pop()])


def test_an_out_of_memory_error_stops_the_run_and_the_rerun_redoes_its_jobs(
    assets, write_config, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    config = write_config(tmp_path / "augment.yaml", assets, out)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr(Editor, "edit", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            main(["augment", "--config", str(config)])
    assert not shard_members(out)  # no job was written off as failed
    main(["augment", "--config", str(config)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["status"].get("failed", 0) == 0


def test_a_run_stopped_by_an_error_keeps_the_samples_it_finished(
    assets, write_config, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    config = write_config(tmp_path / "augment.yaml", assets, out)  # chunks of 3, shards of 4
    edit = Editor.edit

    def fail_the_second_chunk(self, *args, **kwargs):
        fail_the_second_chunk.calls += 1
        if fail_the_second_chunk.calls == 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return edit(self, *args, **kwargs)

    fail_the_second_chunk.calls = 0
    with monkeypatch.context() as patch:
        patch.setattr(Editor, "edit", fail_the_second_chunk)
        with pytest.raises(torch.OutOfMemoryError):
            main(["augment", "--config", str(config)])
    first = shard_members(out)
    assert len(first) == 3  # the first chunk, in a complete shard of 3
    main(["augment", "--config", str(config)])
    plan = pd.read_csv(out / "plan.csv")
    every = shard_members(out)
    assert sorted(every) == sorted(plan["key"]) and all(every[k] == first[k] for k in first)


def test_a_non_square_source_is_edited_and_stored_as_the_model_sees_it(
    assets, write_config, tmp_path
):
    data = shutil.copytree(assets["data"], tmp_path / "synthcxr")
    records = pd.read_csv(data / "train.csv")
    path = records[records["Support Devices"] == 1.0]["Path"].iloc[0]
    square = load_image(data.parent, path)  # 32 x 32
    tall = np.concatenate(
        [np.full((8, 32), 255, np.uint8), square, np.full((8, 32), 255, np.uint8)]
    )
    Image.fromarray(tall).save(data.parent / path)
    jobs = tmp_path / "jobs.csv"
    pd.DataFrame({"path": [path], "edit": ["remove:Support Devices"]}).to_csv(jobs, index=False)
    out = tmp_path / "out"
    data_section = {"records": str(data / "train.csv"), "out": str(out)}
    plan = {"plan": {"policy": "jobs", "jobs": str(jobs)}}
    config = write_config(tmp_path / "augment.yaml", assets, out, data=data_section | plan)
    main(["augment", "--config", str(config)])
    (sample,) = shard_members(out).values()
    source = np.asarray(Image.open(io.BytesIO(sample["source.png"])))
    assert np.array_equal(source, square_image(tall, 32)) and np.array_equal(source, square)
