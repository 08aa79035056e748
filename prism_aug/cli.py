"""The ``prism-aug`` command line.

    prism-aug data summary --csv CheXpert-v1.0-small/train.csv --target "Pleural Effusion" \
        --attribute "Support Devices" [--json]
    prism-aug data synthcxr --config configs/data/synthcxr.yaml [--n 4000] [--out data/synthcxr]
    prism-aug oracle fit --config configs/oracle/synthcxr.yaml
    prism-aug finetune-vae fit --config configs/finetune/synthcxr_tiny_vae.yaml
    prism-aug finetune fit --config configs/finetune/synthcxr_tiny.yaml [--model.lr=3e-4]
    prism-aug finetune-quality --model outputs/models/synthcxr_tiny --oracle outputs/models/oracle
    prism-aug edit --model outputs/models/synthcxr_tiny --input data/synthcxr/test.csv \
        --edit "remove:Support Devices" --out outputs/edits --oracle outputs/models/oracle
    prism-aug evaluate-edits --model outputs/models/synthcxr_tiny --n 200 --out outputs/table1
    prism-aug augment --config configs/augment/synthcxr_tiny.yaml [--trainer.devices 2]

Subcommands import their modules only when they run, so that ``data summary`` starts in a
fraction of a second on a machine where importing torch takes several.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from prism_aug.data.splits import DEFAULT_FRACTIONS

# Commands with parsers of their own (LightningCLI programs, and `edit`, which needs torch to
# build its parser): the rest of the line goes to them.
DELEGATED_COMMANDS: dict[str, str] = {
    "oracle": "prism_aug.evaluation:run_oracle_cli",
    "finetune-vae": "prism_aug.diffusion.cli:run_vae_cli",
    "finetune": "prism_aug.diffusion.cli:run_finetune_cli",
    "finetune-quality": "prism_aug.evaluation.generation_quality_cli:run_quality_cli",
    "edit": "prism_aug.editing.cli:run_edit_cli",
    "evaluate-edits": "prism_aug.evaluation.edit_evaluation:run_evaluate_edits_cli",
    "augment": "prism_aug.augment.cli:run_augment_cli",
}


def _summary_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Summarise a CheXpert-shaped CSV under a label policy.")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--csv", type=Path, required=True, help="train.csv or valid.csv")
    parser.add_argument(
        "--root", type=Path | None, default=None, help="folder the CSV's paths start from"
    )
    parser.add_argument("--target", type=str | None, default=None, help="finding y")
    parser.add_argument(
        "--attribute", type=str | None, default=None, help="a finding, device or COLUMN=VALUE"
    )
    parser.add_argument("--uncertain", type=str, default="ignore", help="zeros, ones or ignore")
    parser.add_argument("--blank", type=str, default="zeros", help="zeros or ignore")
    parser.add_argument("--views", type=list[str], default=["Frontal"], help="views kept")
    parser.add_argument("--ap_pa", "--ap-pa", type=str | None, default=None, help="AP or PA")
    parser.add_argument("--fractions", type=tuple[float, float, float], default=DEFAULT_FRACTIONS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _synthcxr_parser() -> ArgumentParser:
    from prism_aug.data.synthcxr import Study

    parser = ArgumentParser(description="Render SynthCXR into a CheXpert-shaped folder.")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--out", type=Path, default=Path("data/synthcxr"))
    parser.add_argument("--n", type=int, default=4000, help="number of patients")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="rendering processes")
    parser.add_argument("--study", type=Study, default=Study(), help="labels of the default study")
    parser.add_argument(
        "--contact_sheet", "--contact-sheet", type=Path | None, default=None, help="PNG to write"
    )
    return parser


def build_parser() -> ArgumentParser:
    """The whole ``prism-aug`` parser; subcommand groups are added in level order."""
    parser = ArgumentParser(
        prog="prism-aug",
        description=__doc__.split("\n")[0],
        epilog=f"More commands: {', '.join(DELEGATED_COMMANDS)} (each with --help).",
    )
    commands = parser.add_subcommands()
    data = ArgumentParser(description="Records and the SynthCXR data set.")
    commands.add_subcommand("data", data, help="records and SynthCXR")
    data_commands = data.add_subcommands()
    data_commands.add_subcommand("summary", _summary_parser(), help="summarise a CSV")
    data_commands.add_subcommand("synthcxr", _synthcxr_parser(), help="render SynthCXR")
    return parser


def run_summary(args: Namespace) -> None:
    from prism_aug.data.labels import LabelPolicy
    from prism_aug.data.summary import format_summary, summarize_csv

    summary = summarize_csv(
        args.csv,
        root=args.root,
        policy=LabelPolicy(uncertain=args.uncertain, blank=args.blank),
        views=tuple(args.views),
        ap_pa=args.ap_pa,
        target=args.target,
        attribute=args.attribute,
        fractions=args.fractions,
    )
    print(json.dumps(summary) if args.json else format_summary(summary))


def run_synthcxr(args: Namespace) -> None:
    from prism_aug.data.synthcxr import write_contact_sheet, write_synthcxr

    written = write_synthcxr(
        args.out, args.n, size=args.size, seed=args.seed, study=args.study, workers=args.workers
    )
    for split, table in written.items():
        print(f"{args.out / f'{split}.csv'}: {len(table)} images")
    if args.contact_sheet is not None:
        write_contact_sheet(args.contact_sheet, seed=args.seed)
        print(f"contact sheet: {args.contact_sheet}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED_COMMANDS:
        module, function = DELEGATED_COMMANDS[argv[0]].split(":")
        # sys.argv stays whole: Lightning's DDP launcher reruns it once per rank. LightningCLI
        # then warns that it was given args beside a command line, which is intended here.
        with _user_errors(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            getattr(importlib.import_module(module), function)(argv[1:])
        return
    parser = build_parser()
    args = parser.parse_args(argv)
    runners = {"summary": run_summary, "synthcxr": run_synthcxr}
    with _user_errors():
        if args.subcommand == "data":
            runners[args.data.subcommand](args.data[args.data.subcommand])


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Bad input is the user's to fix: say what is wrong in one line, not a traceback."""
    try:
        yield
    except (ValueError, KeyError, OSError) as error:
        sys.exit(f"prism-aug: error: {error}")


if __name__ == "__main__":
    main()
