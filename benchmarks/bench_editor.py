"""Editing throughput (images/s) side by side: the batched editor against the naive ways.

    .venv/bin/python benchmarks/bench_editor.py [--model outputs/models/synthcxr_tiny] \
        [--images 8] [--steps 50]

Edits the first test images of data/synthcxr that carry a device (remove:Support Devices)
with every row's method in one process and prints a markdown table:

- ours: direct inversion, P2P, prediction blend, 5 candidates, all images in one batch;
- the same, one image and one candidate per call (what a loop over a single-image editor does);
- PRISM-faithful null-text inversion (10 inner steps), batched like ours;
- diffusers' DiffEdit pipeline, one image per call.

"images/s" counts source images edited (each with all of its candidates where the method has
several). Timings from different runs or machines are not comparable; compare rows.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from prism_aug.data.prompts import EditSpec, edit_prompts
from prism_aug.data.records import load_image, read_chexpert
from prism_aug.diffusion.loading import load_components
from prism_aug.editing.baselines import DiffEdit
from prism_aug.editing.editor import Editor, EditorSettings


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="outputs/models/synthcxr_tiny")
    parser.add_argument("--csv", default="data/synthcxr/test.csv")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    components = load_components(args.model)
    records = read_chexpert(args.csv)
    spec = EditSpec.parse("remove:Support Devices")
    rows = [r for r in records.to_dict("records") if spec.applies_to(r)[0]][: args.images]
    images = np.stack([load_image(records.attrs["root"], r["path"]) for r in rows])
    prompts = [edit_prompts(r, spec) for r in rows]
    src, tgt = [p[0] for p in prompts], [p[1] for p in prompts]
    n = len(images)
    ours = EditorSettings(
        inversion="direct", blend="prediction", steps=args.steps, images_per_batch=n
    )
    candidates = len(ours.self_replace)

    def batched(settings: EditorSettings) -> Callable[[], object]:
        return lambda: Editor(components, settings).edit(images, src, tgt)

    def one_at_a_time() -> None:
        for fraction in ours.self_replace:
            editor = Editor(components, replace(ours, self_replace=(fraction,), images_per_batch=1))
            editor.edit(images, src, tgt)

    diffedit = DiffEdit(components, steps=args.steps)
    runs = {
        f"ours, {n} images x {candidates} candidates per batch": batched(ours),
        "ours, one image and one candidate per call": one_at_a_time,
        "PRISM null-text inversion, batched": batched(replace(ours, inversion="null_text")),
        "diffusers DiffEdit, one image per call (1 candidate)": lambda: diffedit.edit(
            images, src, tgt
        ),
    }
    batched(replace(ours, steps=2))()  # warm-up
    seconds = {name: _timed(run) for name, run in runs.items()}
    base = seconds[next(iter(runs))]
    print(
        f"remove:Support Devices, {n} images, {args.steps} steps, {torch.get_num_threads()} threads"
    )
    print("| method | s | images/s | ours is x faster |")
    print("|---|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.1f} | {n / s:.3f} | {s / base:.1f} |")


if __name__ == "__main__":
    main()
