"""Table 1: every editing method on SynthCXR edits with ground truth, scored alike.

    prism-aug evaluate-edits --config configs/edit/synthcxr_tiny.yaml --n 200 --out outputs/table1

For each edit (remove and add of Support Devices and of Pleural Effusion) the first ``n``
test records it applies to are edited by each method ("ours" with ``--settings``; PRISM's
and DDIM's rows and diffusers' baselines with ``--published``, PRISM's settings by default);
SynthCXR renders their true counterfactuals from the records' seeds. Editor methods return a
candidate per self-attention fraction and mask threshold (``EditorSettings.candidates``) and
the verifier (the oracle) picks one; a rejected edit keeps the method's fallback candidate,
so it counts against effectiveness, and "accepted" says how often that was.
Soundness, for the methods named by ``--soundness`` ("ours" and "DDIM" by default): a null
edit (the record's own caption as the target) must return the image, and an edit followed by
its inverse (``--round_trip`` with its prompts swapped) the original.
Writes ``table1.md`` (Table 1, then the soundness table), ``table1.csv``, ``soundness.csv``
and ``examples.png``.
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

from prism_aug.data.prompts import ACTIONS, EditSpec, edit_prompts
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
    distances,
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
ROUND_TRIP = "remove:Support Devices"  # soundness: this edit, then its inverse
SOUNDNESS_METHODS: tuple[str, ...] = ("ours", "DDIM")
# A method edits images with their source and target prompts and edits.
Method = Callable[[np.ndarray, Sequence[str], Sequence[str], Sequence[EditSpec]], EditedBatch]


def as_method(editor: Editor | SDEdit | DiffEdit) -> Method:
    """An editor that needs only the images and their prompts, as a Table 1 method."""
    return lambda images, src, tgt, edits: editor.edit(images, src, tgt)


def editor_settings(
    settings: EditorSettings, published: EditorSettings
) -> dict[str, EditorSettings]:
    """The rows our editor makes, by name: ours with ``settings``; PRISM's and DDIM's with
    ``published`` (PRISM's settings by default) and their inversion set per row."""
    name = f"ours ({settings.inversion} + P2P, {settings.blend} blend, {settings.steps} steps)"
    return {
        "PRISM (null-text + P2P)": replace(published, inversion="null_text"),
        name: settings,
        "DDIM + P2P": replace(published, inversion="ddim"),
    }


def editing_methods(
    components: SDComponents,
    settings: EditorSettings,
    published: EditorSettings,
    strengths: Sequence[float],
) -> dict[str, Method]:
    """Table 1's methods by row name: our editor's rows (``editor_settings``), and diffusers'
    baselines with the published steps and guidance, so that tuning ours leaves them as
    published."""
    steps, guidance = published.steps, published.guidance
    methods: dict[str, Method] = {
        name: as_method(Editor(components, s))
        for name, s in editor_settings(settings, published).items()
    }
    for strength in strengths:
        methods[f"SDEdit {strength:g}"] = as_method(SDEdit(components, strength, steps, guidance))
    methods["DiffEdit"] = as_method(DiffEdit(components, steps, guidance))
    ledits = LEditsPP(components, steps)
    methods["LEdits++"] = lambda images, src, tgt, edits: ledits.edit(images, src, tgt, edits)
    return methods


def select_methods(methods: dict[str, Method], only: Sequence[str]) -> dict[str, Method]:
    """The methods whose names start with one of ``only`` ("ours", "SDEdit")."""
    unknown = [o for o in only if not any(name.startswith(o) for name in methods)]
    if unknown:
        raise ValueError(f"no method's name starts with {unknown}; methods: {list(methods)}")
    return {n: m for n, m in methods.items() if any(n.startswith(o) for o in only)}


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
    methods: dict[str, Method],
    oracle: FeatureJudge,
    records: pd.DataFrame,
    n: int,
    edits: Sequence[str] = EDITS,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Table 1 as a frame (per edit: the reference rows identity and ground truth, then each
    method and its ground-truth mask blend) and, per edit, an example strip (source | truth |
    each method) for the grid. ``progress`` receives a line per finished row (a run of every
    method on 200 images takes hours on a CPU)."""
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


def inverse(spec: EditSpec) -> EditSpec:
    """The edit that undoes ``spec``: add for remove and remove for add."""
    if spec.action == "keep":
        raise ValueError(f"{spec} has no inverse: a round trip needs one of {ACTIONS[:2]}")
    return EditSpec("add" if spec.action == "remove" else "remove", spec.attribute)


def soundness(
    method: Method, verifier: Verifier, records: pd.DataFrame, n: int, round_trip: EditSpec
) -> dict[str, float]:
    """Does the method leave alone what it is not asked to change?

    The null edit (``keep``: the record's own caption as source and target) runs on the first
    n records and must return them; ``round_trip`` then its inverse (the same prompts swapped)
    run on the first n records it applies to and must return the originals. The verifier
    picks candidates as in Table 1. Returns the reconstruction metrics of both, with the
    verifier's acceptance rates.
    """
    keep = EditSpec("keep", round_trip.attribute)
    rows = records.head(n).to_dict("records")
    images = np.stack([load_image(records.attrs["root"], row["path"]) for row in rows])
    untouched = EditSet(keep, images, images, images, np.zeros(images.shape, dtype=bool))
    null, null_accepted, _ = run_method(
        method, verifier, untouched, [edit_prompts(row, keep) for row in rows]
    )
    prompts, cases = edit_cases(records, round_trip, n)
    there, there_accepted, _ = run_method(method, verifier, cases, prompts)
    back_cases = replace(cases, edit=inverse(round_trip), sources=there)
    back, back_accepted, _ = run_method(
        method, verifier, back_cases, [(target, source) for source, target in prompts]
    )
    metrics = {"null_edit_n": float(len(images)), "null_edit_accepted": null_accepted}
    metrics |= {f"null_edit_{k}": v for k, v in distances(null, images).items()}
    metrics |= {
        "round_trip_n": float(len(back)),
        "round_trip_accepted": there_accepted * back_accepted,
    }
    metrics |= {f"round_trip_{k}": v for k, v in distances(back, cases.sources).items()}
    return metrics


def soundness_methods(
    components: SDComponents, settings: EditorSettings, published: EditorSettings
) -> dict[str, Method]:
    """Our editor's rows, each also without its mask (blend "none": no local blend and no
    composite onto the source). With its mask a null edit has no edited words, so the editor
    returns the source pixels untouched; without it, what comes back is the inversion's and
    the VAE's own reconstruction."""
    methods: dict[str, Method] = {}
    for name, s in editor_settings(settings, published).items():
        methods[name] = as_method(Editor(components, s))
        unmasked = replace(s, blend="none", composite_thresholds=())
        methods[f"{name}, no mask"] = as_method(Editor(components, unmasked))
    return methods


def evaluate_soundness(
    methods: dict[str, Method],
    oracle: FeatureJudge,
    records: pd.DataFrame,
    n: int,
    round_trip: EditSpec,
) -> pd.DataFrame:
    """One row of ``soundness`` per method."""
    verifier = Verifier(oracle)
    rows = [
        {"method": name, **soundness(method, verifier, records, n, round_trip)}
        for name, method in methods.items()
    ]
    return pd.DataFrame(rows)


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
    parser.add_argument(
        "--soundness",
        type=list[str],
        default=list(SOUNDNESS_METHODS),
        help="methods (by name or its start) whose null edit and round trip are measured",
    )
    parser.add_argument("--round_trip", type=str, default=ROUND_TRIP)
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
    components, oracle, records = (
        load_components(cfg.model),
        load_oracle(cfg.oracle),
        read_chexpert(cfg.csv),
    )
    round_trip = EditSpec.parse(cfg.round_trip)
    inverse(round_trip)  # a null edit has none: fail now, not after Table 1's hours
    methods = editing_methods(components, cfg.settings, cfg.published, cfg.strengths)
    table, examples = evaluate_edits(
        select_methods(methods, cfg.methods) if cfg.methods else methods,
        oracle,
        records,
        cfg.n,
        cfg.edits,
        progress=lambda line: print(line, flush=True),
    )
    checked = soundness_methods(components, cfg.settings, cfg.published)
    sound = evaluate_soundness(
        select_methods(checked, cfg.soundness), oracle, records, cfg.n, round_trip
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(cfg.out / "table1.csv", index=False)
    sound.to_csv(cfg.out / "soundness.csv", index=False)
    markdown = summarise(table.to_dict("records"))
    if len(sound):
        markdown += (
            f"\n\nSoundness: the null edit, and {round_trip} then {inverse(round_trip)} "
            "(distances to the original image)\n\n" + summarise(sound.to_dict("records"))
        )
    (cfg.out / "table1.md").write_text(markdown + "\n")
    Image.fromarray(np.concatenate(list(examples.values()), axis=0)).save(cfg.out / "examples.png")
    print(markdown)
    written = ("table1.md", "table1.csv", "soundness.csv", "examples.png")
    print("wrote " + ", ".join(str(cfg.out / name) for name in written))
