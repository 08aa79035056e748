"""``prism-classify fit`` on a small SynthCXR: a method, a sampler, counterfactual shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifiers.cli import main
from classifiers.data import ClassifierDataModule
from prism_aug.augment.shards import ShardSink
from prism_aug.data.synthcxr import write_synthcxr

CONFIG = Path(__file__).parents[2] / "configs" / "classifiers" / "synthcxr.yaml"


@pytest.fixture(scope="module")
def synthcxr(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "synthcxr"
    write_synthcxr(folder, 80, size=32, seed=0)
    return folder


def _counterfactuals(folder: Path, n: int) -> Path:
    sink = ShardSink(str(folder / "shards"), attempt=0, rank=0, samples_per_shard=4)
    for i in range(n):
        meta = {"key": f"cf{i}", "source_key": f"s{i}", "edit": "remove:Support Devices",
                "status": "accepted", "labels_after": {}, "group_after": "y=1,a=0"}  # fmt: skip
        sink.write({"__key__": f"cf{i}", "png": np.full((32, 32), 9 * i, np.uint8), "json": meta})
    sink.close()
    return folder


def test_counterfactuals_join_the_training_set_with_their_groups(synthcxr, tmp_path):
    cf = _counterfactuals(tmp_path / "cf", 5)
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


def test_fit_then_test_the_selected_checkpoint(synthcxr, tmp_path, capsys):
    cf = _counterfactuals(tmp_path / "cf", 3)
    main([
        "fit", "--config", str(CONFIG),
        "--model", "classifiers.GroupDRO", "--model.step_size", "0.1",
        "--data.sampling", "rwg", "--data.image_size", "32", "--data.batch_size", "16",
        f"--data.train_csv={synthcxr}/train.csv", f"--data.val_csv={synthcxr}/valid.csv",
        f"--data.test_csv={synthcxr}/test.csv", f"--data.counterfactuals=[{cf}]",
        "--trainer.max_epochs", "1", "--trainer.logger", "false",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "test/worst_group_acc" in printed and "test/min_auroc_within_a" in printed
    assert list(tmp_path.glob("checkpoints/0-worst*.ckpt"))
