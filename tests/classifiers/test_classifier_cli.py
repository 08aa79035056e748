"""``prism-classify fit`` on a small SynthCXR: a method, a sampler, counterfactual shards."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import classifiers.data
from classifiers.cli import main
from classifiers.data import ClassifierDataModule, PackedBytes
from prism_aug.augment.data import AugmentDataModule
from prism_aug.augment.reader import read_augmented
from prism_aug.augment.shards import ShardSink

CONFIG = Path(__file__).parents[2] / "configs" / "classifiers" / "synthcxr.yaml"


def _counterfactuals(folder: Path, synthcxr: Path, n: int, splits=("train",)) -> Path:
    """n accepted "remove:Support Devices" samples of each split's records with effusion and
    device, in split order."""
    records = [pd.read_csv(synthcxr / f"{split}.csv") for split in splits]
    sources = [r[(r["Pleural Effusion"] == 1) & (r["Support Devices"] == 1)] for r in records]
    paths = [path for split in sources for path in split["Path"][:n]]
    sink = ShardSink(str(folder / "shards"), attempt=0, rank=0, samples_per_shard=4)
    for i, path in enumerate(paths):
        meta = {"key": f"cf{i}", "source_key": f"s{i}", "source_path": path,
                "edit": "remove:Support Devices", "status": "accepted", "labels_after": {},
                "group_after": "y=1,a=0"}  # fmt: skip
        sink.write({"__key__": f"cf{i}", "png": np.full((32, 32), 9 * i, np.uint8), "json": meta})
    sink.close()
    return folder


def test_counterfactuals_join_the_training_set_with_their_groups(synthcxr, tmp_path):
    cf = _counterfactuals(tmp_path / "cf", synthcxr, 5)
    data = ClassifierDataModule(
        train_csv=synthcxr / "train.csv", val_csv=synthcxr / "valid.csv",
        test_csv=synthcxr / "test.csv", counterfactuals=[str(cf)], image_size=32,
    )  # fmt: skip
    data.setup("fit")
    train = data.datasets["train"]
    real = len(pd.read_csv(synthcxr / "train.csv"))
    assert len(train) == real + 5
    assert (train.groups[real:] == 2).all()  # y=1, a=0
    item = train[real + 1]
    assert item["image"].shape == (1, 32, 32) and item["group"] == 2 and item["y"] == 1
    assert item["image"].min() >= -1.0 and item["image"].max() <= 1.0
    assert data.group_sizes().sum() == len(train)
    # The counterfactuals add no steps: an epoch draws the real set's size, from all of it.
    sampler = data.train_dataloader().sampler
    epochs = [list(sampler) for _ in range(3)]
    assert all(len(e) == len(set(e)) == real for e in epochs)
    assert max(max(e) for e in epochs) >= real and epochs[0] != epochs[1]

    truth = ClassifierDataModule(
        train_csv=synthcxr / "train.csv", val_csv=synthcxr / "valid.csv",
        counterfactuals=[str(cf)], counterfactual_images="ground_truth", image_size=32,
    )  # fmt: skip
    truth.setup("fit")
    true_cf = truth.datasets["train"][real + 1]["image"]
    assert not torch.equal(true_cf, item["image"])  # a render, not the shard's image
    assert (truth.datasets["train"].groups[real:] == 2).all()


def test_only_counterfactuals_of_training_records_join(synthcxr, tmp_path):
    # An augment run over every split's images: the test patients' counterfactuals must not
    # train the classifier that is then tested on them.
    cf = _counterfactuals(tmp_path / "cf", synthcxr, 3, splits=("train", "test"))
    data = ClassifierDataModule(
        train_csv=synthcxr / "train.csv", val_csv=synthcxr / "valid.csv",
        counterfactuals=[str(cf)], counterfactual_images="ground_truth", image_size=32,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="3 of 6 counterfactuals have their source outside"):
        data.setup("fit")
    assert len(data.datasets["train"]) == len(pd.read_csv(synthcxr / "train.csv")) + 3

    only_test = _counterfactuals(tmp_path / "test_only", synthcxr, 3, splits=("test",))
    data.counterfactuals, data.datasets = [str(only_test)], {}
    with pytest.raises(ValueError, match="none is left to train on"):
        data.setup("fit")


def test_every_ddp_rank_holds_every_counterfactual_as_png_bytes(synthcxr, tmp_path, monkeypatch):
    cf = _counterfactuals(tmp_path / "cf", synthcxr, 6)  # 2 shards of up to 4
    shards = sorted(str(p) for p in (cf / "shards").glob("*.tar"))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert len(shards) == 2 and len(list(read_augmented(shards, originals=False))) == 2
    data = ClassifierDataModule(
        train_csv=synthcxr / "train.csv", val_csv=synthcxr / "valid.csv",
        counterfactuals=[str(cf)], image_size=32,
    )  # fmt: skip
    data.setup("fit")
    train = data.datasets["train"]
    real = len(train) - 6
    assert isinstance(train.extra, PackedBytes)  # the PNG bytes the shards hold, one buffer
    decoded = [train[real + i]["image"] for i in range(6)]  # 9 * i everywhere, in [-1, 1]
    expected = [torch.full((1, 32, 32), 9 * i / 255 * 2 - 1) for i in range(6)]
    assert all(torch.allclose(d, e) for d, e in zip(decoded, expected, strict=True))


def test_test_pairs_flip_only_the_attribute(synthcxr):
    data = ClassifierDataModule(test_csv=synthcxr / "test.csv", image_size=32, test_pairs=True)
    data.setup("test")
    item = data.datasets["test"][0]
    changed = (item["image"] != item["image_cf"]).float().mean().item()
    assert 0 < changed < 0.5  # a device appears or disappears; the rest stays

    # Real records have no seed to render a true counterfactual from: refused before a fit.
    real_csv = synthcxr / "real.csv"
    pd.read_csv(synthcxr / "test.csv").drop(columns="Seed").to_csv(real_csv, index=False)
    real = ClassifierDataModule(
        train_csv=synthcxr / "train.csv", val_csv=synthcxr / "valid.csv",
        test_csv=real_csv, image_size=32, test_pairs=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="test_pairs needs SynthCXR records"):
        real.setup("fit")


def test_cached_images_are_read_once_a_process_and_stay_the_same(synthcxr, tmp_path, monkeypatch):
    reads = []
    load = classifiers.data.load_image
    monkeypatch.setattr(classifiers.data, "load_image", lambda *a: reads.append(a) or load(*a))
    classifiers.data._kept_image.cache_clear()  # earlier tests of this process filled it

    def train_images(root: Path) -> list[torch.Tensor]:
        data = ClassifierDataModule(train_csv=root / "train.csv", val_csv=root / "valid.csv",
                                    image_size=32, cache_images=True)  # fmt: skip
        data.setup("fit")
        return [item["image"] for item in data.datasets["train"]]

    first = train_images(synthcxr)
    n = len(first)
    assert len(reads) == n == len({path for _, path in reads})
    # The next fit of this process (a new data module) reads nothing again.
    assert all(torch.equal(a, b) for a, b in zip(first, train_images(synthcxr), strict=True))
    assert len(reads) == n
    # A file rewritten since is read again, and only that one.
    copy = tmp_path / synthcxr.name  # record paths start with the data set's folder
    shutil.copytree(synthcxr, copy)
    train_images(copy)
    file = tmp_path / pd.read_csv(synthcxr / "train.csv")["Path"][0]
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(file)
    os.utime(file, ns=(0, file.stat().st_mtime_ns + 10**9))  # past the file system's clock step
    rewritten = train_images(copy)
    assert len(reads) == 2 * n + 1 and rewritten[0].eq(-1).all()


def test_cached_test_pairs_are_the_renders_themselves(synthcxr):
    def test_items(cache: bool) -> list[dict]:
        data = ClassifierDataModule(test_csv=synthcxr / "test.csv", image_size=32,
                                    test_pairs=True, cache_images=cache)  # fmt: skip
        data.setup("test")
        return [data.datasets["test"][i] for i in range(6)]

    for plain, kept in zip(test_items(False), test_items(True), strict=True):
        assert torch.equal(plain["image_cf"], kept["image_cf"])
    assert classifiers.data._kept_counterfactual.cache_info().currsize >= 6


def test_fit_then_test_the_selected_checkpoint(synthcxr, tmp_path, capsys):
    cf = _counterfactuals(tmp_path / "cf", synthcxr, 3)
    main([
        "fit", "--config", str(CONFIG),
        "--model", "classifiers.GroupDRO", "--model.step_size", "0.1",
        "--data.sampling", "rwg", "--data.image_size", "32", "--data.batch_size", "16",
        f"--data.train_csv={synthcxr}/train.csv", f"--data.val_csv={synthcxr}/valid.csv",
        f"--data.test_csv={synthcxr}/test.csv", f"--data.counterfactuals=[{cf}]",
        "--data.test_pairs", "true", "--trainer.max_epochs", "1", "--trainer.logger", "false",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "test/worst_group_acc" in printed and "test/min_auroc_within_a" in printed
    assert "test/shortcut_reliance" in printed
    assert list(tmp_path.glob("checkpoints/0-worst*.ckpt"))


def test_a_study_is_cut_from_one_csv_by_patient_with_exact_rates(synthcxr):
    # One CSV of every patient, as CheXpert's train.csv (SynthCXR's own files are split
    # by the same patient hash already).
    every = pd.concat([pd.read_csv(synthcxr / f"{s}.csv") for s in ("train", "valid", "test")])
    every.to_csv(synthcxr / "all.csv", index=False)
    data = ClassifierDataModule(
        train_csv=synthcxr / "all.csv", split_by_patient=True, correlation=(0.5, 0.5),
        image_size=32,
    )  # fmt: skip
    data.setup("fit")
    data.setup("test")
    paths = {split: set(data.datasets[split].paths) for split in ("train", "val", "test")}
    assert not paths["train"] & paths["val"] and not paths["train"] & paths["test"]
    train = data.datasets["train"]
    for y in (0, 1):  # P(a=1 | y) = 1/2 exactly
        a = train.labels[train.y == y, 1]
        assert len(a) and a.mean() == 0.5
    counts = np.bincount(data.datasets["test"].groups, minlength=4)
    assert len(set(counts.tolist())) == 1  # a group-balanced test


def test_augment_plans_on_the_records_the_classifier_trains_on(synthcxr, tmp_path):
    every = pd.concat([pd.read_csv(synthcxr / f"{s}.csv") for s in ("train", "valid", "test")])
    every.to_csv(tmp_path / "all.csv", index=False)
    study = {"split_by_patient": True, "correlation": (0.75, 0.25), "study_seed": 1}
    augment = AugmentDataModule(tmp_path / "all.csv", str(tmp_path / "run"), **study)
    planned = set(augment.load_records()["path"])
    plan = augment.make_plan()
    assert len(plan) and set(plan["path"]) <= planned
    trains = []
    for seed in (0, 1):  # a classifier's training seed does not change its study
        data = ClassifierDataModule(
            train_csv=tmp_path / "all.csv", image_size=32, seed=seed, **study
        )  # fmt: skip
        data.setup("fit")
        trains.append(set(data.datasets["train"].paths))
    assert planned == trains[0] == trains[1]
    assert len(planned) < len(every) // 2  # one split's patients, cut to the study's rates


@pytest.mark.parametrize("config", ["synthcxr.yaml", "chexpert_densenet121.yaml"])
def test_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(CONFIG.parent / config), "--model.lr=0.0042",
              "--print_config"])  # fmt: skip
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["lr"] == 0.0042


def test_the_multilabel_task_logs_each_findings_auroc(synthcxr, tmp_path, capsys):
    main([
        "fit", "--config", str(CONFIG), "--model.findings=[Cardiomegaly, Pleural Effusion, Edema]",
        "--data.image_size", "32", "--data.batch_size", "16",
        f"--data.train_csv={synthcxr}/train.csv", f"--data.val_csv={synthcxr}/valid.csv",
        f"--data.test_csv={synthcxr}/test.csv", "--trainer.max_epochs", "1",
        "--trainer.logger", "false", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "test/auroc_Cardiomegaly" in printed and "test/mean_auroc" in printed
    assert "test/worst_group_acc" in printed  # the study's target column still judged


def test_packed_bytes_return_each_item_from_one_buffer() -> None:
    items = [b"\x89PNG one", b"", bytes(range(256)), b"last"]
    packed = PackedBytes(items)
    assert len(packed) == 4 and list(packed) == items  # iteration stops at the end
    assert packed[-1] == b"last"
    assert packed.buffer.nbytes == sum(map(len, items))  # one allocation, no per-item objects
    with pytest.raises(IndexError, match="index 4 out of range for 4 items"):
        packed[4]
