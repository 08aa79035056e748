"""Table 2's runner reuses a finished row only when it was made from the same inputs and code."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from classifiers.pool import FitPool

SCRIPT = Path(__file__).parents[2] / "experiments/classifier_comparison.py"
CONFIG = Path(__file__).parents[2] / "configs/classifiers/synthcxr.yaml"
spec = importlib.util.spec_from_file_location("classifier_comparison", SCRIPT)
comparison = importlib.util.module_from_spec(spec)
spec.loader.exec_module(comparison)


def _run(folder: Path, sha: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shards = {"aug-000-000-000000.tar": {"keys": ["k0"], "sha256": sha}}
    (folder / "manifest.json").write_text(json.dumps({"shards": shards, "config": {}}))
    return str(folder)


def test_fingerprint_follows_config_epochs_and_shards(tmp_path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model: {}\n")
    cf, null = _run(tmp_path / "cf", "aa"), str(tmp_path / "absent")
    first = comparison.inputs_fingerprint(str(config), 6, [cf, null])
    assert comparison.inputs_fingerprint(str(config), 6, [cf, null]) == first
    assert comparison.inputs_fingerprint(str(config), 7, [cf, null]) != first
    _run(tmp_path / "cf", "bb")  # the same folder, other counterfactuals
    assert comparison.inputs_fingerprint(str(config), 6, [cf, null]) != first
    other = comparison.inputs_fingerprint(str(config), 6, [cf, null])
    config.write_text("model: {lr: 1}\n")
    assert comparison.inputs_fingerprint(str(config), 6, [cf, null]) != other
    # A CPU fit's thread count changes its sums, so its rows are other rows.
    prints = {comparison.inputs_fingerprint(str(config), 6, [cf, null], threads=t) for t in (1, 2)}
    assert len(prints | {comparison.inputs_fingerprint(str(config), 6, [cf, null])}) == 3


def test_fingerprint_follows_the_code(tmp_path) -> None:
    config, source = tmp_path / "config.yaml", tmp_path / "data.py"
    config.write_text("model: {}\n")
    source.write_text("SAMPLER = 'once'\n")
    first = comparison.inputs_fingerprint(str(config), 6, [], code=[source])
    source.write_text("SAMPLER = 'cycled'\n")
    assert comparison.inputs_fingerprint(str(config), 6, [], code=[source]) != first
    assert str(SCRIPT) in map(str, comparison.CODE)
    assert any(path.name == "data.py" for path in comparison.CODE)  # classifiers/data.py
    assert not any(path.name == "sweeps.py" for path in comparison.CODE)  # no fit imports it


def _small_config(tmp_path: Path, synthcxr: Path) -> Path:
    """The Table 2 config on the 32 px test SynthCXR."""
    config = yaml.safe_load(CONFIG.read_text())
    config["data"] |= {
        "train_csv": str(synthcxr / "train.csv"), "val_csv": str(synthcxr / "valid.csv"),
        "test_csv": str(synthcxr / "test.csv"), "image_size": 32, "batch_size": 16,
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_two_jobs_at_once_run_dfr_after_its_erm(synthcxr, tmp_path) -> None:
    out = tmp_path / "table2"
    comparison.run([
        "--config", str(_small_config(tmp_path, synthcxr)), "--seeds", "0", "--epochs", "1",
        "--methods", "DFR", "JTT", "ERM", "--jobs", "2", "--out", str(out),
        "--counterfactuals", str(tmp_path / "none"), "--null_edits", str(tmp_path / "none"),
    ])  # fmt: skip
    # DFR reads ERM's checkpoint when it is submitted: started beside ERM, it would have
    # raised FileNotFoundError.
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["method"]) == ["DFR", "ERM", "JTT"]
    assert results["worst_group_acc"].between(0, 1).all()
    assert list((out / "runs" / "DFR-seed0").glob("**/checkpoints/*.ckpt"))
    assert (out / "runs" / "JTT-stage1-seed0" / "errors.json").is_file()  # JTT's first stage
    rows = [line.split("|")[1].strip() for line in (out / "table2.md").read_text().splitlines()]
    assert rows[2:] == ["ERM", "JTT", "DFR"]  # the methods' order, not the finishing order
    assert results["method"].tolist() == ["ERM", "JTT", "DFR"]


def test_jobs_below_one_are_refused_by_name(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        comparison.run(["--jobs", "0", "--out", str(tmp_path)])
    assert "--jobs: must be at least 1, got 0" in capsys.readouterr().err


def test_a_gpu_pool_gives_each_job_its_own_device() -> None:
    with FitPool(2, gpus=True) as pool:
        assert pool.threads is None
        placed = pool.placed([["fit", "--config", "a.yaml"], ["fit"]], slot=1)
    assert placed == [["fit", "--config", "a.yaml", "--trainer.devices=[1]"],
                      ["fit", "--trainer.devices=[1]"]]  # fmt: skip
    with FitPool(2) as pool:
        assert pool.threads == max(1, len(os.sched_getaffinity(0)) // 2)
        assert pool.placed([["fit"]], slot=0) == [["fit"]]


def test_a_failed_fit_stops_the_pool_with_its_error(capfd) -> None:
    with FitPool(1) as pool:
        pool.submit("bad", [["fit", "--config", "missing.yaml"]])
        with pytest.raises(SystemExit):  # the CLI's own exit, raised in this process
            pool.next_finished()
        assert pool.free_slots == 1
    assert "missing.yaml" in capfd.readouterr().err  # the worker printed which file
