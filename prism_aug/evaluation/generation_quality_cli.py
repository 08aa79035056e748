"""``prism-aug finetune-quality``: judge a fine-tuned model's samples with the oracle.

prism-aug finetune-quality --model outputs/models/synthcxr_tiny --oracle outputs/models/oracle
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from prism_aug.diffusion.loading import load_components
from prism_aug.evaluation.generation_quality import evaluate, write_report
from prism_aug.evaluation.oracle import load_oracle


def _quality_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Prompt accuracy and Frechet distance, judged by the oracle."
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=str, default="outputs/models/synthcxr_tiny")
    parser.add_argument("--oracle", type=str, default="outputs/models/oracle")
    parser.add_argument("--real_csv", type=str, default="data/synthcxr_finetune/test.csv")
    parser.add_argument("--samples_per_condition", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=7.5, help="guidance scale (PRISM: 7.5)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument(
        "--out", type=Path | None, default=None, help="default: outputs/quality/<model name>.json"
    )
    return parser


def report_path(model: str, out: Path | None) -> Path:
    """Where the report goes: ``out``, else a file named after the model folder, so that
    judging another model never overwrites the default model's report."""
    return out if out is not None else Path("outputs/quality") / f"{Path(model).name}.json"


def run_quality_cli(args: Sequence[str] | None = None) -> None:
    """``prism-aug finetune-quality --model <folder> --oracle <folder>``: print and save."""
    cfg = _quality_parser().parse_args(None if args is None else list(args))
    report = evaluate(
        load_oracle(cfg.oracle),
        load_components(cfg.model),
        cfg.real_csv,
        cfg.samples_per_condition,
        cfg.steps,
        cfg.guidance,
        cfg.batch_size,
    )
    out = report_path(cfg.model, cfg.out)
    write_report(report, out)
    print(report.markdown())
    print(f"saved {out}")
