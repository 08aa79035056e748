"""``prism-classify fit`` on a small SynthCXR: a method, a sampler, counterfactual shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from classifiers.cli import main
from classifiers.data import ClassifierDataModule
from prism_aug.augment.shards import ShardSink

CONFIG = Path(__file__).parents[2] / "configs" / "classifiers" / "synthcxr.yaml"


def _counterfactuals(folder: Path, synthcxr: Path, n: int) -> Path:
    """n accepted "remove:Support Devices" samples of train records with effusion and device."""
    records = pd.read_csv(synthcxr / "train.csv")
    sources = records[(records["Pleural Effusion"] == 1) & (records["Support Devices"] == 1)]
    sink = ShardSink(str(folder / "shards"), attempt=0, rank=0, samples_per_shard=4)
    for i, path in enumerate(sources["Path"][:n]):
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

    truth = ClassifierDataModule(
        train_csv=synthcxr / "train.csv", val_csv=synthcxr / "valid.csv",
        counterfactuals=[str(cf)], counterfactual_images="ground_truth", image_size=32,
    )  # fmt: skip
    truth.setup("fit")
    true_cf = truth.datasets["train"][real + 1]["image"]
    assert not torch.equal(true_cf, item["image"])  # a render, not the shard's image
    assert (truth.datasets["train"].groups[real:] == 2).all()


def test_test_pairs_flip_only_the_attribute(synthcxr):
    data = ClassifierDataModule(test_csv=synthcxr / "test.csv", image_size=32, test_pairs=True)
    data.setup("test")
    item = data.datasets["test"][0]
    changed = (item["image"] != item["image_cf"]).float().mean().item()
    assert 0 < changed < 0.5  # a device appears or disappears; the rest stays


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
