"""Table 2: every robustness method on one shortcut study, several seeds.

    make train-classifier
    python experiments/classifier_comparison.py --config configs/classifiers/synthcxr.yaml \
        --counterfactuals outputs/augment/synthcxr_tiny_256 \
        --null_edits outputs/augment/synthcxr_tiny_null_edit_256 --seeds 0 1 2 --epochs 6 \
        --out experiments/results/table2 [--jobs 2]

Each (method, seed) is one ``prism-classify fit`` with the same backbone, optimizer steps
and selection (the config's: validation worst-group accuracy), then a test of the selected
checkpoint. Every sampler draws the real training set's size an epoch, so neither
subsampling nor added counterfactuals change the steps. Rows go to ``results.csv`` as they
finish, each with a fingerprint of its inputs (the config, the epochs, the shards of both
augmentation runs, this script and the ``classifiers`` modules a fit runs, and a CPU fit's
threads); a rerun skips the rows made from the same inputs and runs the others again.
``table2.md`` gives the mean and s.d. over seeds, ``table2.png`` the worst-group accuracy
per method. With ``--jobs N``, N fits run at once (``classifiers.pool``): each on its own
GPU where the config trains on one, else each on 1/N of the CPU's cores; DFR starts once
its seed's ERM is done.

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
import yaml

import classifiers
from classifiers.pool import FitPool, cpu_share, job_count
from classifiers.report import append_result, in_method_order, load_results, summarise

DRO = ["--model=classifiers.GroupDRO", "--model.step_size=0.01"]
# This script and every module a fit runs: all of the package but the sweep runner and the
# exporter, which no fit imports (an edit there leaves the rows standing).
CODE = [
    Path(__file__),
    *sorted(
        path
        for path in Path(classifiers.__file__).parent.glob("*.py")
        if path.stem not in ("sweeps", "export")
    ),
]
NEEDS = {"DFR": "ERM"}  # DFR refits the head of the same seed's ERM run


def fit_arguments(config: str, folder: Path, seed: int, epochs: int, extra: list[str]) -> list[str]:
    """One ``prism-classify fit`` (which then tests the selected checkpoint)."""
    return [
        "fit", "--config", config, f"--seed_everything={seed}", f"--data.seed={seed}",
        f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={folder}",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false", *extra,
    ]  # fmt: skip


def method_fits(
    config: str, cf: str, null_edits: str, runs: Path, seed: int, epochs: int
) -> dict[str, Callable[[], list[list[str]]]]:
    """Each method's fits, computed when its turn comes (DFR needs ERM's run)."""
    cfs = [f"--data.counterfactuals=[{cf}]"]

    def fits(name: str, extra: list[str], epochs: int = epochs) -> list[list[str]]:
        folder = runs / f"{name.replace(' ', '').replace('+', '_')}-seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)  # a stale or interrupted run's files
        return [fit_arguments(config, folder, seed, epochs, extra)]

    def jtt() -> list[list[str]]:
        errors = runs / f"JTT-stage1-seed{seed}" / "errors.json"
        stage1 = fits("JTT-stage1", [
            "--trainer.callbacks+=classifiers.jtt.ErrorSetWriter",
            f"--trainer.callbacks.path={errors}",
        ], epochs=1)  # fmt: skip
        upweighted = [
            "--model=classifiers.JTT", f"--model.error_set={errors}", "--model.upweight=20"
        ]  # fmt: skip
        return stage1 + fits("JTT", upweighted)  # stage 1 first, in the same worker

    def dfr() -> list[list[str]]:
        base = sorted((runs / f"ERM-seed{seed}").glob("**/checkpoints/*.ckpt"))
        if not base:
            raise FileNotFoundError(f"DFR needs ERM's checkpoint under {runs}/ERM-seed{seed}")
        # A linear head on about 60 balanced samples, which the sampler cycles to the held-out
        # half's size (about 300) an epoch: 12 epochs of 5 steps at a higher rate.
        return fits("DFR", [
            "--model=classifiers.DFR", f"--model.base={base[0]}", "--model.lr=0.01",
            "--data.held_out_training=true", "--data.sampling=subg", "--trainer.max_epochs=12",
        ])  # fmt: skip

    return {
        "ERM": lambda: fits("ERM", []),
        "SUBY": lambda: fits("SUBY", ["--data.sampling=suby"]),
        "RWY": lambda: fits("RWY", ["--data.sampling=rwy"]),
        "SUBG": lambda: fits("SUBG", ["--data.sampling=subg"]),
        "RWG": lambda: fits("RWG", ["--data.sampling=rwg"]),
        "GroupDRO": lambda: fits("GroupDRO", DRO),
        "JTT": jtt,
        "DFR": dfr,
        "CF + ERM": lambda: fits("CF + ERM", cfs),
        "CF + GroupDRO": lambda: fits("CF + GroupDRO", [*cfs, *DRO]),
        "oracle CF + ERM": lambda: fits(
            "oracle CF + ERM", [*cfs, "--data.counterfactual_images=ground_truth"]
        ),
        "null edit + ERM": lambda: fits(
            "null edit + ERM", [f"--data.counterfactuals=[{null_edits}]"]
        ),
    }


def inputs_fingerprint(
    config: str,
    epochs: int,
    augment_runs: Sequence[str],
    code: Sequence[Path] = CODE,
    threads: int | None = None,
) -> str:
    """What the rows of one invocation are computed from: the config file, the epochs, the
    shards (their checksums in each run's manifest; an absent run counts as absent), the
    code that trains and scores the methods (a changed sampler or method argument) and a
    CPU fit's threads (None on GPUs), whose order of sums moves every number."""
    digest = hashlib.sha256(Path(config).read_bytes() + str(epochs).encode())
    if threads is not None:
        digest.update(f"threads={threads}".encode())
    for source in code:
        digest.update(Path(source).read_bytes())
    for run in augment_runs:
        manifest = Path(run) / "manifest.json"
        shards = json.loads(manifest.read_text())["shards"] if manifest.is_file() else None
        digest.update(json.dumps(shards, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def run(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/classifiers/synthcxr.yaml")
    parser.add_argument("--counterfactuals", default="outputs/augment/synthcxr_tiny_256")
    parser.add_argument(
        "--null_edits", default="outputs/augment/synthcxr_tiny_null_edit_256", help="the control"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=None, help="a subset, by name")
    parser.add_argument(
        "--jobs", type=job_count, default=1, help="fits at once: a GPU or a CPU share each"
    )
    parser.add_argument("--out", type=Path, default=Path("experiments/results/table2"))
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / "results.csv"
    trainer = yaml.safe_load(Path(options.config).read_text()).get("trainer", {})
    gpus = trainer.get("accelerator") in ("gpu", "cuda")
    inputs = inputs_fingerprint(
        options.config,
        options.epochs,
        [options.counterfactuals, options.null_edits],
        threads=None if gpus else cpu_share(options.jobs),
    )
    results = load_results(path)
    stale = results.get("inputs", pd.Series(None, index=results.index, dtype=object)) != inputs
    if stale.any():
        print(f"{path}: {int(stale.sum())} rows were made from other inputs; they run again")
        results = results[~stale]
    runs = options.out / "runs"
    fits = {
        seed: method_fits(
            options.config, options.counterfactuals, options.null_edits, runs, seed, options.epochs
        )
        for seed in options.seeds
    }
    known = list(fits[options.seeds[0]])
    names = options.methods or known
    if unknown := sorted(set(names) - set(known)):
        parser.error(f"unknown methods {unknown}; the methods are {known}")
    done = set(zip(results["method"], results["seed"], strict=True))
    waiting = [(name, seed) for seed in options.seeds for name in names if (name, seed) not in done]
    with FitPool(options.jobs, gpus=gpus) as pool:
        while waiting or pool.running_keys:
            # A job waits while the job it needs is still to run in this invocation.
            unfinished = {*waiting, *pool.running_keys}
            ready = [job for job in waiting if (NEEDS.get(job[0]), job[1]) not in unfinished]
            for job in ready[: pool.free_slots]:
                waiting.remove(job)
                pool.submit(job, fits[job[1]][job[0]]())
            (name, seed), metrics = pool.next_finished()
            row = {"method": name, "seed": seed, "inputs": inputs, **metrics}
            results = append_result(results, row, path)
            print(f"{name} seed {seed}: worst-group {row['worst_group_acc']:.3f}, "
                  f"mean {row['mean_acc']:.3f}", flush=True)  # fmt: skip
    results = in_method_order(results, known)
    results.to_csv(path, index=False)
    table = summarise(results, options.out / "table2.png")
    (options.out / "table2.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    run()
