"""Editing throughput (images/s) side by side, with the share of the true change recovered.

    .venv/bin/python benchmarks/bench_editor.py [--images 8] [--settings.steps 50]

Model, oracle and our settings come from Table 1's config, configs/edit/synthcxr_tiny.yaml.

Edits the first test images of data/synthcxr that carry a device (remove:Support Devices)
with every row's method in one process; the oracle picks each image's candidate as in
Table 1, and SynthCXR's ground truth scores the pick. Prints a markdown table:

- ours: the settings of ``make augment`` and Table 1, all images in one batch;
- the same, one image and one candidate per call (a loop over a single-image editor);
- PRISM-faithful: null-text inversion, 50 steps, P2P's blend, 5 candidates, batched like ours;
- diffusers' DiffEdit pipeline at 50 steps, one image per call.

"images/s" counts source images edited (each with all of its candidates where the method has
several). Timings from different runs or machines are not comparable; compare rows.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from jsonargparse import ActionConfigFile, ArgumentParser

from prism_aug.data.prompts import EditSpec
from prism_aug.data.records import read_chexpert
from prism_aug.diffusion.loading import load_components
from prism_aug.editing.baselines import DiffEdit
from prism_aug.editing.editor import EditedBatch, Editor, EditorSettings
from prism_aug.editing.verifier import Verifier
from prism_aug.evaluation.counterfactual_quality import edit_metrics
from prism_aug.evaluation.edit_evaluation import Method, as_method, edit_cases, run_method
from prism_aug.evaluation.oracle import load_oracle

TABLE1_CONFIG = "configs/edit/synthcxr_tiny.yaml"  # model, oracle and settings of Table 1


def one_at_a_time(components, settings: EditorSettings) -> Method:
    """The editor called once per image and candidate: what batching saves."""
    editors = [
        Editor(components, replace(settings, self_replace=(fraction,), images_per_batch=1))
        for fraction in settings.self_replace
    ]

    def edit(images, src, tgt, edits) -> EditedBatch:
        runs = [editor.edit(images, src, tgt) for editor in editors]
        # (B, masks, fractions, H, W) -> the batched editor's order, by mask then fraction
        candidates = np.stack([r.candidates for r in runs], axis=2)
        masks = np.stack([r.masks for r in runs], axis=2)
        b, *_, h, w = candidates.shape
        return EditedBatch(
            candidates.reshape(b, -1, h, w), masks.reshape(b, -1, h, w), settings.fallback
        )

    return edit


def main() -> None:
    parser = ArgumentParser(
        description=__doc__.split("\n")[0], default_config_files=[TABLE1_CONFIG]
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=str, required=True)
    parser.add_argument("--oracle", type=str, required=True)
    parser.add_argument("--settings", type=EditorSettings, required=True)
    parser.add_argument("--csv", type=str, default="data/synthcxr/test.csv")
    parser.add_argument("--images", type=int, default=8)
    args = parser.instantiate(parser.parse_args())

    components = load_components(args.model)
    verifier = Verifier(load_oracle(args.oracle))
    spec = EditSpec.parse("remove:Support Devices")
    pairs, cases = edit_cases(read_chexpert(args.csv), spec, args.images)
    n = len(cases.sources)
    ours = replace(args.settings, images_per_batch=n)
    prism = EditorSettings(inversion="null_text", images_per_batch=n)
    k = len(ours.candidates)
    runs: dict[str, Method] = {
        f"ours ({ours.inversion}, {ours.steps} steps), {n} images x {k} candidates per batch": (
            as_method(Editor(components, ours))
        ),
        "ours, one image and one candidate per call": one_at_a_time(components, ours),
        f"PRISM null-text inversion, {prism.steps} steps, {len(prism.self_replace)} candidates, "
        "batched": as_method(Editor(components, prism)),
        f"diffusers DiffEdit, {prism.steps} steps, one image per call (1 candidate)": as_method(
            DiffEdit(components, prism.steps, prism.guidance)
        ),
    }
    # warm-up
    run_method(as_method(Editor(components, replace(ours, steps=2))), verifier, cases, pairs)
    rows = {}
    for name, method in runs.items():
        chosen, accepted, speed = run_method(method, verifier, cases, pairs)
        scored = replace(cases, counterfactuals=chosen)
        rows[name] = speed, accepted, edit_metrics(verifier.classifier, scored)
    base = next(iter(rows.values()))[0]
    print(f"{spec}, {n} images, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print("| method | images/s | ours is x faster | accepted | effectiveness | change recovered |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (speed, accepted, metrics) in rows.items():
        print(
            f"| {name} | {speed:.3f} | {base / speed:.1f} | {accepted:.2f} "
            f"| {metrics['effectiveness']:.2f} | {metrics['change_recovered']:.3f} |"
        )


if __name__ == "__main__":
    main()
