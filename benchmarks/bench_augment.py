"""``prism-aug augment`` throughput with 1 and 2 processes, and what writing and loading cost.

    .venv/bin/python benchmarks/bench_augment.py [--config configs/augment/synthcxr_tiny.yaml] \
        [--per_group 16]

Runs the same plan (``balance`` capped at ``per_group`` jobs per filled group) three times
into fresh folders: one process on one thread, two DDP ranks (gloo) on one thread each, and
in this process on every core with Lightning's SimpleProfiler. Prints images/s, the scaling
efficiency of 2 ranks over 1 (same threads per rank), and the share of the profiled loop
spent loading chunks (``predict_next``) and writing shards (the writer's hooks) against
generating them (``predict_step``). Seconds are the predict call's: model loading and, for
DDP, starting the second rank are inside. Needs the tiny model and the oracle (``make
finetune oracle``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from prism_aug.augment.cli import augment, build_cli

WRITER_HOOKS = ("on_predict_batch_end", "on_predict_end")


def _overrides(config: str, out: Path, per_group: int) -> list[str]:
    return [
        "--config",
        config,
        "--data.out",
        str(out),
        "--data.plan.max_per_group",
        str(per_group),
        "--trainer.enable_progress_bar",
        "false",
    ]


def _one_process(args: list[str]) -> tuple[int, float, dict[str, float]]:
    cli = build_cli([*args, "--trainer.profiler", "simple"])
    _, seconds = augment(cli)
    durations = cli.trainer.profiler.recorded_durations
    total = {name: sum(times) for name, times in durations.items()}
    costs = {
        "generate (predict_step)": sum(v for k, v in total.items() if k.endswith(".predict_step")),
        "load chunks (predict_next)": total["[_PredictionLoop].predict_next"],
        "write shards (writer hooks)": sum(
            v
            for k, v in total.items()
            if k.startswith("[Callback]ShardPredictionWriter") and k.endswith(WRITER_HOOKS)
        ),
    }
    return cli.datamodule.pending_jobs, seconds, costs


def _processes(args: list[str], ranks: int) -> tuple[int, float]:
    """A fresh ``prism-aug augment`` with ``ranks`` DDP ranks, one thread each."""
    command = [sys.executable, "-m", "prism_aug.cli", "augment", *args]
    if ranks > 1:
        command += ["--trainer.devices", str(ranks), "--trainer.strategy", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"this run: (\d+) images in ([\d.]+) s", done.stdout)
    return int(found.group(1)), float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/augment/synthcxr_tiny.yaml")
    parser.add_argument("--per_group", type=int, default=16)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            name: _overrides(options.config, Path(tmp) / name, options.per_group)
            for name in ("single", "ddp", "profiled")
        }
        n1, s1 = _processes(runs["single"], ranks=1)
        n2, s2 = _processes(runs["ddp"], ranks=2)
        n0, s0, costs = _one_process(runs["profiled"])
    rate1, rate2 = n1 / s1, n2 / s2
    print("\n| run | images | seconds | images/s | scaling efficiency |")
    print("|---|---:|---:|---:|---:|")
    print(f"| 1 process, 1 thread | {n1} | {s1:.1f} | {rate1:.3f} | 1.00 |")
    print(
        f"| 2 DDP ranks (gloo), 1 thread each | {n2} | {s2:.1f} | {rate2:.3f} "
        f"| {rate2 / (2 * rate1):.2f} |"
    )
    print(f"| 1 process, all threads (profiled) | {n0} | {s0:.1f} | {n0 / s0:.3f} | - |")
    generate = costs["generate (predict_step)"]
    print("\n| 1 process, part of the loop | seconds | share of generation |")
    print("|---|---:|---:|")
    for name, value in costs.items():
        print(f"| {name} | {value:.2f} | {value / generate:.2%} |")
    overhead = costs["load chunks (predict_next)"] + costs["write shards (writer hooks)"]
    print(f"\nwriting + loading: {overhead / generate:.2%} of generation (target < 2%)")


if __name__ == "__main__":
    main()
