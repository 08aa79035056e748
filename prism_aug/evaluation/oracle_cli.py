"""``prism-aug oracle {fit,validate,test,report}``: train the oracle and say how good it is.

    prism-aug oracle fit --config configs/oracle/synthcxr.yaml
    prism-aug oracle report --oracle outputs/models/oracle --csv data/synthcxr/test.csv
    prism-aug oracle test --config configs/oracle/synthcxr.yaml --ckpt_path CKPT

fit, validate and test are a LightningCLI. fit trains on fresh renders and, through the
ExportOracle callback in the config, writes the oracle folder that
:func:`prism_aug.evaluation.load_oracle` reads. report prints the markdown table of
:func:`prism_aug.evaluation.oracle_report` (per attribute, and the hard cases) for a folder,
then the judge check of :mod:`prism_aug.evaluation.judge_check` (recall on pieces of devices
and the faintest findings, which must reach 95% before the oracle judges edits).
On a CPU shared with other jobs, OMP_NUM_THREADS=1 trains several times faster.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from jsonargparse import ArgumentParser

SUBCOMMANDS: tuple[str, ...] = ("fit", "validate", "test", "report")


def _report(args: list[str]) -> None:
    from prism_aug.data.records import read_chexpert
    from prism_aug.evaluation.judge_check import REQUIRED_RECALL, judge_check
    from prism_aug.evaluation.oracle import load_oracle
    from prism_aug.evaluation.oracle_report import oracle_report, to_markdown

    parser = ArgumentParser(prog="prism-aug oracle report", description="Score an oracle.")
    parser.add_argument("--oracle", type=Path, default=Path("outputs/models/oracle"))
    parser.add_argument("--csv", type=Path, default=Path("data/synthcxr/test.csv"))
    parser.add_argument("--threshold", type=float, default=0.5, help="present at or above")
    parser.add_argument(
        "--judge_check", type=int, default=200, help="patients per hard case; 0 skips the check"
    )
    cfg = parser.parse_args(args)
    oracle = load_oracle(cfg.oracle)
    print(to_markdown(oracle_report(oracle, read_chexpert(cfg.csv), cfg.threshold)))
    if cfg.judge_check:
        check = judge_check(oracle, cfg.judge_check, cfg.threshold)
        print(f"\nJudge check (recall >= {REQUIRED_RECALL} on each hard case):\n")
        print(to_markdown(check))


def run_oracle_cli(args: list[str]) -> None:
    """Run ``prism-aug oracle`` on ``args`` (a subcommand first, then its options)."""
    if not args or args[0] not in (*SUBCOMMANDS, "-h", "--help"):
        got = args[0] if args else "nothing"
        raise SystemExit(f"prism-aug oracle: expected one of {', '.join(SUBCOMMANDS)}, got {got}")
    if args[0] == "report":
        _report(args[1:])
        return
    from prism_aug.evaluation.oracle_datamodule import OracleDataModule
    from prism_aug.evaluation.oracle_module import OracleModule
    from prism_aug.lightning_cli import PrismCLI

    with warnings.catch_warnings():  # `prism-aug oracle ...` passes args on purpose
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        PrismCLI(
            OracleModule,
            OracleDataModule,
            args=args,
            save_config_kwargs={"overwrite": True},
        )
