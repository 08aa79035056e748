"""A short oracle fit on CPU: it trains, exports, reloads and predicts like the module."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from prism_aug.data.records import read_chexpert
from prism_aug.data.synthcxr import write_synthcxr
from prism_aug.evaluation import (
    ORACLE_ATTRIBUTES,
    ExportOracle,
    OracleDataModule,
    OracleModule,
    OracleNetwork,
    load_oracle,
    run_oracle_cli,
)
from prism_aug.evaluation.oracle_data import OracleRecords

SIZE = 32
CONFIG = Path(__file__).parents[2] / "configs/oracle/synthcxr.yaml"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "synthcxr"
    write_synthcxr(out, n_patients=40, size=SIZE)
    return out


def _tiny_network() -> OracleNetwork:
    return OracleNetwork("test_resnet", {"num_classes": 11})


@pytest.mark.parametrize("channels_last", [False, True])
def test_fit_exports_an_oracle_that_predicts_like_the_module(
    data_dir, tmp_path, channels_last: bool
) -> None:
    torch.manual_seed(0)
    module = OracleModule(
        _tiny_network(),
        lambda params: torch.optim.AdamW(params, lr=1e-3),
        channels_last=channels_last,
    )
    data = OracleDataModule(
        data_dir, size=SIZE, batch_size=8, num_workers=0, train_size=64, val_size=8
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        val_check_interval=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[ExportOracle(tmp_path / "oracle")],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, data)
    assert {"val/acc", "val/acc/Pleural Effusion", "train/loss"} <= set(trainer.callback_metrics)

    oracle = load_oracle(tmp_path / "oracle")
    assert oracle.attributes == ORACLE_ATTRIBUTES and oracle.image_size == SIZE
    records = read_chexpert(data_dir / "test.csv")
    images = torch.stack([OracleRecords(records, SIZE)[i][0] for i in range(4)])  # (4, 1, S, S)
    module.eval()
    with torch.no_grad():
        expected = torch.sigmoid(module(images))
    torch.testing.assert_close(oracle.predict_proba(images), expected)
    uint8 = (images[:, 0] * 255).round().byte().numpy()  # the same pixels as uint8 (B, H, W)
    torch.testing.assert_close(oracle.predict_proba(uint8), expected)
    assert oracle.features(images).shape == (4, module.network.model.num_features)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        oracle.predict_proba(images[:, 0])


def test_load_oracle_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"oracle\.json"):
        load_oracle(tmp_path)


def test_cli_fits_tests_and_reports_the_shrunk_default_config(data_dir, tmp_path, capsys) -> None:
    shrink = [
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.callbacks.init_args.out_dir={tmp_path / 'oracle'}",
        "--model.network.init_args.model_name=test_resnet",
        "--model.scheduler.init_args.total_steps=2",
        f"--data.data_dir={data_dir}",
        f"--data.size={SIZE}",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--data.train_size=8",
        "--data.val_size=4",
    ]
    run_oracle_cli(["fit", f"--config={CONFIG}", *shrink])
    oracle = load_oracle(tmp_path / "oracle")
    assert oracle.network.model_name == "test_resnet"
    assert np.isfinite(oracle.predict_proba(np.zeros((1, 64, 64), np.uint8)).numpy()).all()
    run_oracle_cli(["test", f"--config={CONFIG}", *shrink])
    report = [f"--oracle={tmp_path / 'oracle'}", f"--csv={data_dir / 'test.csv'}"]
    run_oracle_cli(["report", *report, "--judge_check=2"])
    printed = capsys.readouterr().out
    assert "| Pleural Effusion (smallest 20%) |" in printed
    assert "| Central Line (piece) | Central Line | 2 |" in printed  # the judge check
    with pytest.raises(SystemExit, match="fit, validate, test, report"):
        run_oracle_cli(["predict"])
