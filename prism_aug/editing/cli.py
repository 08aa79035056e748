"""``prism-aug edit``: edit a handful of radiographs and look at the result.

    prism-aug edit --model outputs/models/synthcxr_tiny --input data/synthcxr/test.csv \
        --edit "remove:Support Devices" --out outputs/edits [--oracle outputs/models/oracle]
    prism-aug edit --model DIR --input image.png --labels "Pleural Effusion,Support Devices" \
        --edit "remove:Support Devices" --out DIR

Records (a CheXpert-shaped CSV) give each image its labels; a single image takes them from
``--labels`` (its positive findings). Records the edit does not apply to are skipped with the
reason. With ``--oracle`` the verifier picks each image's candidate (or rejects the edit);
without, the candidate of the middle self-attention injection fraction is shown.

Writes ``grid.png`` (rows: original | counterfactual | difference), one PNG per edited image,
and ``edits.csv`` (source, prompts, status: accepted, rejected or unverified, the reason, the
kept candidate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from jsonargparse import ActionConfigFile, ArgumentParser
from PIL import Image

from prism_aug.data.prompts import CAPTION_FINDINGS, EditSpec, edit_prompts
from prism_aug.data.records import filter_views, load_image, read_chexpert, square_image
from prism_aug.editing.editor import Editor, EditorSettings
from prism_aug.editing.verifier import UNVERIFIED, Verifier


@dataclass
class EditJob:
    """One image to edit: its key, pixels and labels."""

    key: str
    image: np.ndarray
    labels: dict[str, object]


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="prism-aug edit", description="Edit a handful of radiographs.")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=str, required=True, help="diffusers folder or hub id")
    parser.add_argument(
        "--input", type=Path, required=True, help="a CheXpert-shaped CSV or an image"
    )
    parser.add_argument("--edit", type=str, required=True, help='e.g. "remove:Support Devices"')
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs and edits.csv")
    parser.add_argument(
        "--labels", type=str, default="", help="an image's positive findings, comma-separated"
    )
    parser.add_argument("--limit", type=int, default=8, help="records to edit from a CSV")
    parser.add_argument("--oracle", type=Path | None, default=None, help="verifier's oracle")
    parser.add_argument("--settings", type=EditorSettings, default=EditorSettings())
    return parser


def read_jobs(
    source: Path, labels: str, spec: EditSpec, limit: int
) -> tuple[list[EditJob], list[str]]:
    """Images the edit applies to (at most ``limit``), and why the others were skipped."""
    if source.suffix.lower() != ".csv":
        positives = [name.strip() for name in labels.split(",") if name.strip()]
        unknown = sorted(set(positives) - set(CAPTION_FINDINGS))
        if unknown:
            raise ValueError(
                f"--labels names unknown findings {unknown}; valid: {CAPTION_FINDINGS}"
            )
        record = {name: 1.0 for name in positives}
        image = np.asarray(Image.open(source).convert("L"))
        ok, reason = spec.applies_to(record)
        return ([EditJob(source.stem, image, record)], []) if ok else ([], [f"{source}: {reason}"])
    records = filter_views(read_chexpert(source), ("Frontal",))
    jobs, skipped = [], []
    for row in records.to_dict("records"):
        ok, reason = spec.applies_to(row)
        if not ok:
            skipped.append(f"{row['path']}: {reason}")
            continue
        image = load_image(records.attrs["root"], row["path"])
        jobs.append(
            EditJob(Path(row["path"]).with_suffix("").as_posix().replace("/", "_"), image, row)
        )
        if len(jobs) == limit:
            break
    return jobs, skipped


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| stretched to the full grey range, so a faint edit is visible."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float32)
    return (diff * (255.0 / max(float(diff.max()), 1.0))).astype(np.uint8)


def write_grid(
    path: Path | BinaryIO, originals: np.ndarray, edited: np.ndarray, pad: int = 2
) -> Path | BinaryIO:
    """One PNG row per image: original | counterfactual | difference; uint8 ``(B, H, W)`` each."""
    b, h, w = originals.shape
    grid = np.full((b * (h + pad) + pad, 3 * (w + pad) + pad), 255, dtype=np.uint8)
    for i in range(b):
        for j, tile in enumerate((originals[i], edited[i], _difference(originals[i], edited[i]))):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            grid[top : top + h, left : left + w] = tile
    Image.fromarray(grid).save(path, format="PNG")
    return path


def run_edit_cli(args: list[str]) -> None:
    """Run ``prism-aug edit`` on ``args``."""
    from prism_aug.diffusion.loading import load_components

    parser = _parser()
    cfg = parser.instantiate(parser.parse_args(args))
    spec = EditSpec.parse(cfg.edit)
    jobs, skipped = read_jobs(cfg.input, cfg.labels, spec, cfg.limit)
    for line in skipped:
        print(f"skipped {line}")
    if not jobs:
        raise ValueError(f"the edit {spec} applies to no image of {cfg.input}")
    components = load_components(cfg.model)
    editor = Editor(components, cfg.settings)
    size = components.vae.config.sample_size
    prompts = [edit_prompts(job.labels, spec) for job in jobs]
    originals = np.stack([square_image(j.image, size) for j in jobs])
    result = editor.edit(originals, [p[0] for p in prompts], [p[1] for p in prompts])
    if cfg.oracle is not None:
        from prism_aug.evaluation.oracle import load_oracle

        verdicts = Verifier(load_oracle(cfg.oracle)).judge(
            originals, result.candidates, [spec] * len(jobs)
        )
        kept = [v.kept_or(result.fallback) for v in verdicts]
        status, reasons = [v.status for v in verdicts], [v.reason for v in verdicts]
    else:
        kept = [result.fallback] * len(jobs)
        status, reasons = [UNVERIFIED] * len(jobs), ["no verifier"] * len(jobs)
    cfg.out.mkdir(parents=True, exist_ok=True)
    edited = np.stack([result.candidates[i, c] for i, c in enumerate(kept)])
    for job, image in zip(jobs, edited, strict=True):
        Image.fromarray(image).save(cfg.out / f"{job.key}.png")
    table = pd.DataFrame(
        {
            "key": [j.key for j in jobs],
            "edit": str(spec),
            "source_prompt": [p[0] for p in prompts],
            "target_prompt": [p[1] for p in prompts],
            "status": status,
            "reason": reasons,
            "self_replace": [cfg.settings.candidates[c].self_replace for c in kept],
            "mask_threshold": [cfg.settings.candidates[c].mask_threshold for c in kept],
        }
    )
    table.to_csv(cfg.out / "edits.csv", index=False)
    grid = write_grid(cfg.out / "grid.png", originals, edited)
    counts = ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().items())
    print(f"{len(jobs)} edited ({counts}): {grid}, {cfg.out / 'edits.csv'}")
