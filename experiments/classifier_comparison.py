"""Table 2: every robustness method on one shortcut study, several seeds.

    make train-classifier
    python experiments/classifier_comparison.py --config configs/classifiers/synthcxr.yaml \
        --counterfactuals outputs/augment/synthcxr_tiny_256 \
        --null_edits outputs/augment/synthcxr_tiny_null_edit_256 --seeds 0 1 2 --epochs 6 \
        --out experiments/results/table2

Each (method, seed) is one ``prism-classify fit`` with the same backbone, optimizer steps
and selection (the config's: validation worst-group accuracy), then a test of the selected
checkpoint. Every sampler draws the real training set's size an epoch, so neither
subsampling nor added counterfactuals change the steps. Rows go to ``results.csv`` as they
finish, each with a fingerprint of its inputs (the config, the epochs, the shards of both
augmentation runs, and the code: this script and the ``classifiers`` package); a rerun
skips the rows made from the same inputs and runs the others again. ``table2.md`` gives
the mean and s.d. over seeds, ``table2.png`` the worst-group accuracy per method.

Methods: ERM; SUBY, RWY, SUBG, RWG (samplers); GroupDRO; JTT (1 epoch of ERM, then the error
set upweighted 20x); DFR (the ERM run's checkpoint, last layer refit for 12 epochs on
half of the validation split, group-balanced); CF + ERM and CF + GroupDRO (real plus the accepted
counterfactuals); oracle CF + ERM (SynthCXR's true counterfactuals of the same jobs); the
null-edit control + ERM (the same sources through the generator with the null edit
``keep:<attribute>``, accepted by the same verifier).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

import classifiers
from classifiers.cli import main as classify
from classifiers.report import append_result, load_results, summarise, test_metrics

DRO = ["--model=classifiers.GroupDRO", "--model.step_size=0.01"]
CODE = [Path(__file__), *sorted(Path(classifiers.__file__).parent.glob("*.py"))]


def method_arguments(
    config: str, cf: str, null_edits: str, runs: Path, seed: int
) -> dict[str, Callable[[], list[str]]]:
    """Each method's extra arguments, computed when its turn comes (DFR needs ERM's run)."""
    cfs = [f"--data.counterfactuals=[{cf}]"]

    def jtt() -> list[str]:
        stage1 = runs / f"JTT-stage1-seed{seed}"
        errors = stage1 / "errors.json"
        shutil.rmtree(stage1, ignore_errors=True)  # made with this row's inputs, or not at all
        fit(config, stage1, seed, 1, [
            "--trainer.callbacks+=classifiers.jtt.ErrorSetWriter",
            f"--trainer.callbacks.path={errors}",
        ])  # fmt: skip
        return ["--model=classifiers.JTT", f"--model.error_set={errors}", "--model.upweight=20"]

    def dfr() -> list[str]:
        base = sorted((runs / f"ERM-seed{seed}").glob("**/checkpoints/*.ckpt"))
        if not base:
            raise FileNotFoundError(f"DFR needs ERM's checkpoint under {runs}/ERM-seed{seed}")
        # A linear head on about 60 balanced samples, which the sampler cycles to the held-out
        # half's size (about 300) an epoch: 12 epochs of 5 steps at a higher rate.
        return ["--model=classifiers.DFR", f"--model.base={base[0]}", "--model.lr=0.01",
                "--data.held_out_training=true", "--data.sampling=subg",
                "--trainer.max_epochs=12"]  # fmt: skip

    return {
        "ERM": list,
        "SUBY": lambda: ["--data.sampling=suby"],
        "RWY": lambda: ["--data.sampling=rwy"],
        "SUBG": lambda: ["--data.sampling=subg"],
        "RWG": lambda: ["--data.sampling=rwg"],
        "GroupDRO": lambda: DRO,
        "JTT": jtt,
        "DFR": dfr,
        "CF + ERM": lambda: cfs,
        "CF + GroupDRO": lambda: [*cfs, *DRO],
        "oracle CF + ERM": lambda: [*cfs, "--data.counterfactual_images=ground_truth"],
        "null edit + ERM": lambda: [f"--data.counterfactuals=[{null_edits}]"],
    }


def inputs_fingerprint(
    config: str, epochs: int, augment_runs: Sequence[str], code: Sequence[Path] = CODE
) -> str:
    """What the rows of one invocation are computed from: the config file, the epochs, the
    shards (their checksums in each run's manifest; an absent run counts as absent) and the
    code that trains and scores the methods (a changed sampler or method argument)."""
    digest = hashlib.sha256(Path(config).read_bytes() + str(epochs).encode())
    for source in code:
        digest.update(Path(source).read_bytes())
    for run in augment_runs:
        manifest = Path(run) / "manifest.json"
        shards = json.loads(manifest.read_text())["shards"] if manifest.is_file() else None
        digest.update(json.dumps(shards, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def fit(config: str, folder: Path, seed: int, epochs: int, extra: list[str]) -> dict[str, float]:
    """One ``prism-classify fit`` (then test); returns its test metrics without the prefix."""
    cli = classify([
        "fit", "--config", config, f"--seed_everything={seed}", f"--data.seed={seed}",
        f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={folder}",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false", *extra,
    ])  # fmt: skip
    return test_metrics(cli.trainer.callback_metrics)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/classifiers/synthcxr.yaml")
    parser.add_argument("--counterfactuals", default="outputs/augment/synthcxr_tiny_256")
    parser.add_argument(
        "--null_edits", default="outputs/augment/synthcxr_tiny_null_edit_256", help="the control"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=None, help="a subset, by name")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/table2"))
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / "results.csv"
    inputs = inputs_fingerprint(
        options.config, options.epochs, [options.counterfactuals, options.null_edits]
    )
    results = load_results(path)
    stale = results.get("inputs", pd.Series(None, index=results.index, dtype=object)) != inputs
    if stale.any():
        print(f"{path}: {int(stale.sum())} rows were made from other inputs; they run again")
        results = results[~stale]
    runs = options.out / "runs"
    for seed in options.seeds:
        methods = method_arguments(
            options.config, options.counterfactuals, options.null_edits, runs, seed
        )
        for name in options.methods or list(methods):
            if ((results["method"] == name) & (results["seed"] == seed)).any():
                continue
            folder = runs / f"{name.replace(' ', '').replace('+', '_')}-seed{seed}"
            shutil.rmtree(folder, ignore_errors=True)  # a stale or interrupted run's files
            metrics = fit(options.config, folder, seed, options.epochs, methods[name]())
            row = {"method": name, "seed": seed, "inputs": inputs, **metrics}
            results = append_result(results, row, path)
            print(f"{name} seed {seed}: worst-group {row['worst_group_acc']:.3f}, "
                  f"mean {row['mean_acc']:.3f}", flush=True)  # fmt: skip
    table = summarise(results, options.out / "table2.png")
    (options.out / "table2.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    run()
