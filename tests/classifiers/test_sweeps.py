"""Sweep files: W&B's format expanded locally, and a local run writing the table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from classifiers.sweeps import command, expand, run

SWEEPS = Path(__file__).parents[2] / "configs" / "sweeps"


def test_grid_expands_to_every_combination():
    sweep = yaml.safe_load((SWEEPS / "synthcxr_groupdro.yaml").read_text())
    points = expand(sweep)
    assert len(points) == 6
    assert {(p["model.init_args.step_size"], p["model.init_args.lr"]) for p in points} == {
        (s, lr) for s in (0.001, 0.01, 0.1) for lr in (0.001, 0.0003)
    }
    line = command(sweep, points[0])
    assert line[:4] == ["fit", "--config", "configs/classifiers/synthcxr.yaml",
                        "--model=classifiers.GroupDRO"]  # fmt: skip
    assert line[4:] == ["--model.init_args.step_size=0.001", "--model.init_args.lr=0.001"]


def test_random_draws_are_seeded_and_in_range():
    sweep = yaml.safe_load((SWEEPS / "synthcxr_erm_random.yaml").read_text())
    points = expand(sweep, count=50, seed=3)
    assert points == expand(sweep, count=50, seed=3) and points != expand(sweep, 50, seed=4)
    lrs = [p["model.init_args.lr"] for p in points]
    assert min(lrs) >= 1e-4 and max(lrs) <= 3e-3
    assert sum(lr < 5.5e-4 for lr in lrs) > 15  # log-uniform: half below the geometric mean
    assert {p["data.sampling"] for p in points} == {"none", "rwg", "subg"}
    assert {p["trainer.max_epochs"] for p in points} <= set(range(4, 9))
    with pytest.raises(ValueError, match="give --count"):
        expand(sweep)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="'lr'"):
        expand({"method": "random", "parameters": {"lr": {"distribution": "normal"}}}, 1)
    with pytest.raises(ValueError, match="bayes"):
        expand({"method": "bayes", "parameters": {}})


@pytest.mark.slow  # two one-epoch fits: about 10 s
def test_a_local_run_writes_the_table(tmp_path, synthcxr):
    data = [f"--data.{s}_csv={synthcxr}/{f}.csv" for s, f in
            (("train", "train"), ("val", "valid"), ("test", "test"))]  # fmt: skip
    sweep = {
        "program": "prism-classify",
        "method": "grid",
        "parameters": {"data.sampling": {"values": ["none", "rwg"]}},
        "command": ["${env}", "${program}", "fit", "--config",
                    str(SWEEPS.parent / "classifiers" / "synthcxr.yaml"), *data,
                    "--data.image_size=32", "--trainer.max_epochs=1", "--trainer.logger=false",
                    "--trainer.enable_progress_bar=false", "${args}"],
    }  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    results = run([str(path), "--out", str(tmp_path / "out"), "--jobs", "2"])
    assert results["method"].tolist() == ["sampling=none", "sampling=rwg"]  # points' order
    assert (results["worst_group_acc"] <= results["mean_acc"]).all()
    table = (tmp_path / "out" / "sweep.md").read_text()
    assert "| sampling=rwg | 1 |" in table and (tmp_path / "out" / "sweep.png").is_file()
    assert len(run([str(path), "--out", str(tmp_path / "out")])) == 2  # a rerun adds nothing
