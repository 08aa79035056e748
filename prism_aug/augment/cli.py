"""``prism-aug augment``: plan, generate and shard counterfactuals (a LightningCLI predict run).

    prism-aug augment --config configs/augment/synthcxr_tiny.yaml
    prism-aug augment --config configs/augment/chexpert_sd15.yaml --data.records ... \
        --data.out s3://bucket/run                      # 8 GPUs, or torchrun / SLURM

Rerunning the same command resumes: complete shards are kept, partial ones discarded and
the missing jobs done; with nothing left it only rewrites the manifest and the summary.
The exit status is the number of failed jobs (capped at 100), 0 when none failed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import yaml
from lightning.pytorch.cli import LightningArgumentParser

from prism_aug.augment.data import AugmentDataModule
from prism_aug.augment.manifest import build_manifest, format_summary
from prism_aug.augment.module import FAILED, AugmentModule
from prism_aug.augment.reader import read_augmented
from prism_aug.augment.run_settings import check_run_settings
from prism_aug.augment.shards import SHARD_FOLDER, complete_shards, filesystem
from prism_aug.augment.writer import ShardPredictionWriter
from prism_aug.editing.cli import write_grid
from prism_aug.editing.editor import EditorSettings
from prism_aug.lightning_cli import PrismCLI

EXAMPLES_NAME = "examples.png"


class AugmentCLI(PrismCLI):
    """LightningCLI for predict only, with the shard writer configured beside the data."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ShardPredictionWriter, "writer")
        parser.link_arguments("data.out", "writer.out")
        parser.add_argument("--examples", type=int, default=8, help="rows of examples.png")


def write_examples(out: str, n: int) -> str | None:
    """A PNG grid (source | counterfactual | difference) of the first ``n`` usable samples
    (rank 0 writes it after a DDP run: it reads every rank's shards)."""
    shards = complete_shards(f"{out}/{SHARD_FOLDER}")
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for item in read_augmented(shards, every_rank=True) if shards else []:
        pairs.setdefault(item["key"], {})[item["kind"]] = item["image"]
        if len(pairs) > n:
            break
    pairs = dict(list(pairs.items())[:n])
    if not pairs:
        return None
    fs, folder = filesystem(out)
    originals = np.stack([p["original"] for p in pairs.values()])
    edited = np.stack([p["counterfactual"] for p in pairs.values()])
    with fs.open(f"{folder}/{EXAMPLES_NAME}", "wb") as f:
        write_grid(f, originals, edited)
    return f"{out}/{EXAMPLES_NAME}"


def build_cli(args: Sequence[str] | None = None) -> AugmentCLI:
    """Parse ``args`` (or the command line) into model, data and trainer, without running."""
    return AugmentCLI(
        AugmentModule,
        AugmentDataModule,
        args=None if args is None else list(args),
        run=False,
        save_config_callback=None,
    )


def augment(cli: AugmentCLI) -> tuple[dict[str, Any] | None, float]:
    """Run the predict loop; rank 0 then writes the manifest and the examples and prints the
    summary. Returns the manifest (None on other ranks) and the loop's seconds."""
    trainer, data, model = cli.trainer, cli.datamodule, cli.model
    check_run_settings(
        data.out,
        {
            "model": model.model_id,
            "oracle": model.oracle_path,
            "threshold": model.threshold,
            "seed": model.seed,
            "settings": asdict(model.settings),
            "batch_size": data.batch_size,
            "precision": str(trainer.precision),
        },
        defaults={"settings": asdict(EditorSettings())},
    )
    start = time.perf_counter()
    trainer.predict(cli.model, datamodule=data, return_predictions=False)
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return None, seconds
    config: dict[str, Any] = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))
    manifest = build_manifest(data.out, data.plan, data.groups_before(), config, model.model_id)
    print(format_summary(manifest, data.pending_jobs, seconds))
    examples = write_examples(data.out, cli.config.examples)
    print(
        f"shards: {data.out}/{SHARD_FOLDER}, manifest: {data.out}/manifest.json"
        + (f", examples: {examples}" if examples else "")
    )
    return manifest, seconds


def run_augment_cli(args: Sequence[str] | None = None) -> None:
    """Run ``prism-aug augment`` on ``args``; exits with the number of failed jobs."""
    manifest, _ = augment(build_cli(args))
    failed = manifest["status"][FAILED] if manifest else 0
    if failed:
        raise SystemExit(min(failed, 100))
