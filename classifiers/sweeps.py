"""Run a W&B sweep file locally, with no W&B server: expand it, run each point, tabulate.

    python -m classifiers.sweeps configs/sweeps/synthcxr_groupdro.yaml [--count 8] \
        [--out experiments/results/sweeps/synthcxr_groupdro] [--jobs 2] [--gpus]
    # or with W&B: wandb sweep configs/sweeps/synthcxr_groupdro.yaml; wandb agent ID

The file is W&B's own format: ``program`` (``prism-classify``), ``method`` (grid or
random), ``parameters`` (``values``, ``value``, or for random search ``distribution`` with
``min`` and ``max``: uniform, log_uniform_values, int_uniform), and ``command`` with
``${program}``, ``${args}`` (each parameter as ``--name=value``) and ``${env}`` /
``${interpreter}`` (dropped here). ``--jobs N`` points run at once, each on 1/N of the
cores or, with ``--gpus``, on its own GPU (``classifiers.pool``); their test metrics go to
``results.csv`` as they finish (a rerun skips points already there), then ``sweep.md`` and
``sweep.png`` in the points' order.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from classifiers.pool import FitPool, job_count
from classifiers.report import append_result, in_method_order, load_results, summarise

PROGRAMS: tuple[str, ...] = ("prism-classify",)
DISTRIBUTIONS = ("uniform", "log_uniform_values", "int_uniform")


def _draw(name: str, spec: dict[str, Any], rng: np.random.Generator) -> Any:
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return spec["values"][rng.integers(len(spec["values"]))]
    kind, low, high = spec.get("distribution"), spec.get("min"), spec.get("max")
    if kind not in DISTRIBUTIONS or low is None or high is None:
        raise ValueError(
            f"sweep parameter {name!r}: give value, values, or distribution "
            f"({', '.join(DISTRIBUTIONS)}) with min and max; got {spec}"
        )
    if kind == "int_uniform":
        return int(rng.integers(low, high + 1))
    if kind == "uniform":
        return float(rng.uniform(low, high))
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def expand(sweep: dict[str, Any], count: int | None = None, seed: int = 0) -> list[dict]:
    """The sweep's points: every combination (grid) or ``count`` draws (random)."""
    parameters, method = sweep.get("parameters", {}), sweep.get("method")
    if method == "grid":
        names = list(parameters)
        choices = []
        for name in names:
            spec = parameters[name]
            if "values" not in spec and "value" not in spec:
                raise ValueError(f"grid sweep parameter {name!r} needs value or values: {spec}")
            choices.append(spec["values"] if "values" in spec else [spec["value"]])
        points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]
        return points[:count] if count else points
    if method == "random":
        if not count:
            raise ValueError("a random sweep runs forever under W&B: give --count")
        rng = np.random.default_rng(seed)
        return [{n: _draw(n, s, rng) for n, s in parameters.items()} for _ in range(count)]
    raise ValueError(f"sweep method {method!r}: the local runner does grid and random")


def command(sweep: dict[str, Any], point: dict[str, Any]) -> list[str]:
    """The command line of one point, after the program name, as a W&B agent builds it."""
    template = sweep.get("command", ["${env}", "${program}", "${args}"])
    args = [f"--{name}={value}" for name, value in point.items()]
    line: list[str] = []
    for part in template:
        if part == "${args}":
            line.extend(args)
        elif part not in ("${env}", "${interpreter}", "${program}"):
            line.append(str(part))
    return line


def run(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the sweep of the command line ``argv``; returns its results table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--count", type=int, default=None, help="points (random: required)")
    parser.add_argument("--seed", type=int, default=0, help="the random search's draws")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--jobs", type=job_count, default=1, help="points at once")
    parser.add_argument("--gpus", action="store_true", help="a GPU per point, not a CPU share")
    options = parser.parse_args(argv)
    sweep = yaml.safe_load(options.sweep.read_text())
    if sweep.get("program") not in PROGRAMS:
        raise SystemExit(f"{options.sweep}: program must be one of {list(PROGRAMS)}")
    out = options.out or Path("experiments/results/sweeps") / options.sweep.stem
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.csv"
    results = load_results(path)
    points = expand(sweep, options.count, options.seed)
    labels = [" ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in p.items()) for p in points]
    waiting = [i for i, label in enumerate(labels) if not (results["method"] == label).any()]
    with FitPool(options.jobs, gpus=options.gpus) as pool:
        while waiting or pool.running_keys:
            while waiting and pool.free_slots:
                i = waiting.pop(0)
                folder = out / "runs" / f"point{i:03d}"
                arguments = [*command(sweep, points[i]), f"--trainer.default_root_dir={folder}"]
                pool.submit(i, [arguments])
            i, metrics = pool.next_finished()
            row = {"method": labels[i], "seed": points[i].get("seed_everything", 0), **metrics}
            results = append_result(results, row, path)
    results = in_method_order(results, labels)
    results.to_csv(path, index=False)
    table = summarise(results, out / "sweep.png")
    (out / "sweep.md").write_text(table + "\n")
    print(table)
    return results


if __name__ == "__main__":
    run()
