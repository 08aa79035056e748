"""The whole pipeline through its commands and the real configs, shrunk to seconds.

data synthcxr -> finetune-vae fit -> finetune fit -> oracle fit -> augment -> read_augmented,
each stage reading the previous one's output folder, as `make augment` chains them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prism_aug.augment.reader import read_augmented
from prism_aug.cli import main

CONFIGS = Path(__file__).parents[1] / "configs"
QUICK = ["--trainer.max_steps=2", "--trainer.logger=false"]


@pytest.mark.slow  # four stages with the real configs' models: about 40 s
def test_data_finetune_oracle_augment(tmp_path: Path) -> None:
    data, runs, models = tmp_path / "synthcxr", tmp_path / "runs", tmp_path / "models"
    main(["data", "synthcxr", "--config", str(CONFIGS / "data/synthcxr.yaml"), "--out",
          str(data), "--n", "60", "--workers", "1", "--contact_sheet", "null"])  # fmt: skip
    csvs = [f"--data.train_csv={data}/train.csv", f"--data.val_csv={data}/valid.csv"]
    main(["finetune-vae", "fit", "--config", str(CONFIGS / "finetune/synthcxr_tiny_vae.yaml"),
          *QUICK, *csvs, f"--data.test_csv={data}/test.csv", "--data.batch_size=4",
          "--model.scale_batches=1", f"--model.export_dir={models}/vae",
          f"--trainer.default_root_dir={runs}"])  # fmt: skip
    main(["finetune", "fit", "--config", str(CONFIGS / "finetune/synthcxr_tiny.yaml"),
          *QUICK, *csvs, "--data.batch_size=4", f"--data.latent_cache={tmp_path}/cache",
          f"--model.vae={models}/vae", f"--model.export_dir={models}/sd",
          "--model.sample_every_n_steps=0", f"--trainer.default_root_dir={runs}",
          f"--trainer.callbacks.init_args.dirpath={runs}/checkpoints",
          "--ckpt_path=last"])  # fmt: skip
    main(["oracle", "fit", "--config", str(CONFIGS / "oracle/synthcxr.yaml"), *QUICK,
          f"--data.data_dir={data}", "--data.batch_size=8", "--data.num_workers=0",
          "--data.train_size=16", "--data.val_size=8", "--model.scheduler.init_args.total_steps=2",
          f"--trainer.callbacks.init_args.out_dir={models}/oracle",
          f"--trainer.default_root_dir={runs}"])  # fmt: skip
    out = tmp_path / "augment"
    main(["augment", "--config", str(CONFIGS / "augment/synthcxr_tiny.yaml"),
          f"--model.model={models}/sd", f"--model.oracle={models}/oracle",
          "--model.settings.steps=3", "--model.settings.self_replace=[0.4, 0.8]",
          f"--data.records={data}/train.csv", f"--data.out={out}",
          "--data.plan.max_per_group=2", "--trainer.enable_progress_bar=false"])  # fmt: skip

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["planned"] == 4
    usable = manifest["status"]["accepted"] + manifest["status"]["unverified"]
    shards = [str(out / "shards" / name) for name in manifest["shards"]]
    assert len(list(read_augmented(shards))) == 2 * usable
