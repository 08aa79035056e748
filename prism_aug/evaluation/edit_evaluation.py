"""Table 1: every editing method on SynthCXR edits with ground truth, scored alike.

    prism-aug evaluate-edits --config configs/edit/synthcxr_tiny.yaml --n 200 --out outputs/table1

For each edit (remove and add of Support Devices and of Pleural Effusion) the first ``n``
test records it applies to are edited by each method ("ours" with ``--settings``; PRISM's
and DDIM's rows and diffusers' baselines with ``--published``, PRISM's settings by default);
SynthCXR renders their true counterfactuals from the records' seeds. Editor methods return a
candidate per self-attention fraction and mask threshold (``EditorSettings.candidates``) and
the verifier (the oracle) picks one; a rejected edit keeps the method's fallback candidate,
so it counts against effectiveness, and "accepted" says how often that was.
Writes ``table1.md``, ``table1.csv`` and ``examples.png``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from jsonargparse import ActionConfigFile, ArgumentParser
from PIL import Image

from prism_aug.data.prompts import EditSpec, edit_prompts
from prism_aug.data.records import load_image, read_chexpert
from prism_aug.data.synthcxr import record_counterfactual
from prism_aug.data.vocabulary import SEED
from prism_aug.diffusion.components import SDComponents
from prism_aug.editing.baselines import DiffEdit, LEditsPP, SDEdit
from prism_aug.editing.editor import EditedBatch, Editor, EditorSettings
from prism_aug.editing.verifier import Verifier
from prism_aug.evaluation.counterfactual_quality import (
    EditSet,
    FeatureJudge,
    edit_metrics,
    reference_rows,
    summarise,
)

EDITS: tuple[str, ...] = (
    "remove:Support Devices",
    "remove:Pleural Effusion",
    "add:Support Devices",
    "add:Pleural Effusion",
)
# A method edits images with their source and target prompts and edits.
Method = Callable[[np.ndarray, Sequence[str], Sequence[str], Sequence[EditSpec]], EditedBatch]


def as_method(editor: Editor | SDEdit | DiffEdit) -> Method:
    """An editor that needs only the images and their prompts, as a Table 1 method."""
    return lambda images, src, tgt, edits: editor.edit(images, src, tgt)


def editing_methods(
    components: SDComponents,
    settings: EditorSettings,
    published: EditorSettings,
    strengths: Sequence[float],
) -> dict[str, Method]:
    """Table 1's methods by row name: ours with ``settings``; PRISM's and DDIM's rows with
    ``published`` (PRISM's settings by default) and its inversion set per row, and diffusers'
    baselines with its steps and guidance, so that tuning ours leaves them as published."""
    steps, guidance = published.steps, published.guidance
    name = f"ours ({settings.inversion} + P2P, {settings.blend} blend, {settings.steps} steps)"
    methods: dict[str, Method] = {
        "PRISM (null-text + P2P)": as_method(
            Editor(components, replace(published, inversion="null_text"))
        ),
        name: as_method(Editor(components, settings)),
        "DDIM + P2P": as_method(Editor(components, replace(published, inversion="ddim"))),
    }
    for strength in strengths:
        methods[f"SDEdit {strength:g}"] = as_method(SDEdit(components, strength, steps, guidance))
    methods["DiffEdit"] = as_method(DiffEdit(components, steps, guidance))
    ledits = LEditsPP(components, steps)
    methods["LEdits++"] = lambda images, src, tgt, edits: ledits.edit(images, src, tgt, edits)
    return methods


def edit_cases(
    records: pd.DataFrame, spec: EditSpec, n: int
) -> tuple[list[tuple[str, str]], EditSet]:
    """The first n records the edit applies to: their (source, target) prompts, and an
    EditSet with their ground truth whose counterfactuals are the sources (for now)."""
    rows = [r for r in records.to_dict("records") if spec.applies_to(r)[0]][:n]
    if not rows:
        raise ValueError(f"no record of {records.attrs.get('source', 'the CSV')} takes {spec}")
    sources, truths, masks, prompts = [], [], [], []
    for row in rows:
        image = load_image(records.attrs["root"], row["path"])
        source, target, mask = record_counterfactual(
            row, spec.action, spec.attribute, size=image.shape[0]
        )
        if not np.array_equal(source.image, image):
            raise ValueError(f"{row['path']}: the image is not the render of its Seed {row[SEED]}")
        sources.append(image)
        truths.append(target.image)
        masks.append(mask)
        prompts.append(edit_prompts(row, spec))
    src = np.stack(sources)
    return prompts, EditSet(spec, src, src, np.stack(truths), np.stack(masks))


def run_method(
    method: Method,
    verifier: Verifier,
    cases: EditSet,
    pairs: Sequence[tuple[str, str]],
) -> tuple[np.ndarray, float, float]:
    """The method's chosen outputs, its acceptance rate and its images per second; a
    rejected edit keeps the method's fallback candidate."""
    edits = [cases.edit] * len(pairs)
    start = time.perf_counter()
    batch = method(cases.sources, [p[0] for p in pairs], [p[1] for p in pairs], edits)
    seconds = time.perf_counter() - start
    k = batch.candidates.shape[1]
    if k == 1:
        chosen, accepted = batch.candidates[:, 0], float("nan")
    else:
        verdicts = verifier.judge(cases.sources, batch.candidates, edits)
        picks = [v.kept_or(batch.fallback) for v in verdicts]
        chosen = batch.candidates[np.arange(len(picks)), picks]
        accepted = float(np.mean([v.accepted for v in verdicts]))
    return chosen, accepted, len(chosen) / seconds


def evaluate_edits(
    components: SDComponents,
    oracle: FeatureJudge,
    records: pd.DataFrame,
    n: int,
    settings: EditorSettings,
    published: EditorSettings,
    strengths: Sequence[float],
    edits: Sequence[str] = EDITS,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Table 1 as a frame (per edit: the reference rows identity and ground truth, then each
    method and its ground-truth mask blend) and, per edit,
    an example strip (source | truth | each method) for the grid. ``only`` keeps the methods
    whose names start with one of its entries ("ours", "SDEdit"). ``progress`` receives a
    line per finished row (a run of every method on 200 images takes hours on a CPU)."""
    methods = editing_methods(components, settings, published, strengths)
    if only:
        unknown = [o for o in only if not any(name.startswith(o) for name in methods)]
        if unknown:
            raise ValueError(f"no method's name starts with {unknown}; methods: {list(methods)}")
        methods = {n: m for n, m in methods.items() if any(n.startswith(o) for o in only)}
    verifier = Verifier(oracle)
    real = oracle.features(
        np.stack([load_image(records.attrs["root"], p) for p in records["path"]])
    )
    rows, examples = [], {}
    for text in edits:
        spec = EditSpec.parse(text)
        prompts, cases = edit_cases(records, spec, n)
        strip = [cases.sources[0], cases.truths[0]]
        references = reference_rows(cases)
        for reference in ("identity", "ground truth"):
            metrics = edit_metrics(oracle, references[reference], real)
            rows.append({"edit": text, "method": reference, **metrics})
        for name, method in methods.items():
            chosen, accepted, speed = run_method(method, verifier, cases, prompts)
            scored = replace(cases, counterfactuals=chosen)
            metrics = edit_metrics(oracle, scored, real)
            rows.append(
                {
                    "edit": text,
                    "method": name,
                    "accepted": accepted,
                    **metrics,
                    "images_per_s": speed,
                }
            )
            if progress is not None:
                effectiveness = metrics["effectiveness"]
                progress(f"{text} | {name}: effectiveness {effectiveness:.2f}, {speed:.3f} img/s")
            blend = reference_rows(scored)["ground-truth mask blend"]
            rows.append(
                {
                    "edit": text,
                    "method": f"{name} (ground-truth mask blend)",
                    **edit_metrics(oracle, blend, real),
                }
            )
            strip.append(chosen[0])
        examples[text] = np.concatenate(strip, axis=1)
    return pd.DataFrame(rows), examples


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="prism-aug evaluate-edits", description=__doc__.split("\n")[0])
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=str, default="outputs/models/synthcxr_tiny")
    parser.add_argument("--oracle", type=Path, default=Path("outputs/models/oracle"))
    parser.add_argument("--csv", type=Path, default=Path("data/synthcxr/test.csv"))
    parser.add_argument("--n", type=int, default=200, help="images per edit")
    parser.add_argument("--out", type=Path, default=Path("outputs/table1"))
    parser.add_argument("--strengths", type=list[float], default=[0.3, 0.5, 0.7])
    parser.add_argument("--edits", type=list[str], default=list(EDITS))
    parser.add_argument(
        "--methods", type=list[str] | None, default=None, help="rows to run, by name or its start"
    )
    parser.add_argument("--settings", type=EditorSettings, default=EditorSettings())
    parser.add_argument(
        "--published",
        type=EditorSettings,
        default=EditorSettings(),
        help="PRISM's, DDIM's and the baselines' rows (inversion set per row)",
    )
    return parser


def run_evaluate_edits_cli(args: list[str]) -> None:
    """Run ``prism-aug evaluate-edits`` on ``args``; print and write Table 1."""
    from prism_aug.diffusion.loading import load_components
    from prism_aug.evaluation.oracle import load_oracle

    parser = _parser()
    cfg = parser.instantiate(parser.parse_args(args))
    table, examples = evaluate_edits(
        load_components(cfg.model),
        load_oracle(cfg.oracle),
        read_chexpert(cfg.csv),
        cfg.n,
        cfg.settings,
        cfg.published,
        cfg.strengths,
        cfg.edits,
        cfg.methods,
        progress=lambda line: print(line, flush=True),
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(cfg.out / "table1.csv", index=False)
    markdown = summarise(table.to_dict("records"))
    (cfg.out / "table1.md").write_text(markdown + "\n")
    Image.fromarray(np.concatenate(list(examples.values()), axis=0)).save(cfg.out / "examples.png")
    print(markdown)
    print(f"wrote {cfg.out / 'table1.md'}, {cfg.out / 'table1.csv'}, {cfg.out / 'examples.png'}")
