"""``prism-aug evaluate-edits`` end to end on a small random model: Table 1's shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from small_models import small_preset

from prism_aug.cli import main
from prism_aug.data.prompts import EditSpec
from prism_aug.data.records import load_image, read_chexpert
from prism_aug.data.synthcxr import write_synthcxr
from prism_aug.diffusion.build import build_components
from prism_aug.diffusion.export import save_pipeline
from prism_aug.editing.editor import EditedBatch, EditorSettings
from prism_aug.evaluation import edit_evaluation
from prism_aug.evaluation.oracle import save_oracle
from prism_aug.evaluation.oracle_network import OracleNetwork

# Three UNet levels: LEdits++ reads cross-attention at a quarter of the latent side.
SMALL = small_preset(unet_channels=[8, 16, 32])


def test_only_our_row_takes_our_settings(monkeypatch) -> None:
    """Tuning ours (fewer steps, other candidates) leaves the literature's rows as published."""
    made: list[EditorSettings] = []
    monkeypatch.setattr(edit_evaluation, "Editor", lambda components, s: made.append(s))
    for name in ("SDEdit", "DiffEdit", "LEditsPP"):
        monkeypatch.setattr(edit_evaluation, name, lambda components, *args: args)
    ours = EditorSettings(steps=12, self_replace=(0.5,), blend="prediction", images_per_batch=4)
    methods = edit_evaluation.editing_methods(None, ours, EditorSettings(), [0.5])
    assert "ours (direct + P2P, prediction blend, 12 steps)" in methods
    prism, ddim = (s for s in made if s is not ours)
    assert ours in made
    assert (prism.inversion, ddim.inversion) == ("null_text", "ddim")
    for published in (prism, ddim):
        assert published.steps == 50 and published.self_replace == (0.4, 0.5, 0.6, 0.7, 0.8)
        assert published.blend == "attention" and published.blend_threshold == 0.3
    assert list(edit_evaluation.select_methods(methods, ["SDEdit", "ours"])) == [
        "ours (direct + P2P, prediction blend, 12 steps)",
        "SDEdit 0.5",
    ]
    with pytest.raises(ValueError, match=r"starts with \['SDedit'\]"):
        edit_evaluation.select_methods(methods, ["SDedit"])


def test_inverse_swaps_remove_and_add() -> None:
    spec = EditSpec.parse("remove:Support Devices")
    assert edit_evaluation.inverse(spec) == EditSpec.parse("add:Support Devices")
    assert edit_evaluation.inverse(edit_evaluation.inverse(spec)) == spec
    with pytest.raises(ValueError, match="keep:Pleural Effusion has no inverse"):
        edit_evaluation.inverse(EditSpec.parse("keep:Pleural Effusion"))


def test_soundness_measures_the_null_edit_and_the_round_trip_against_the_originals(
    tmp_path,
) -> None:
    """A method that inverts the grey levels fails the null edit by exactly its distance to the
    negative, and undoes itself on the round trip, whose second leg gets the prompts swapped."""
    write_synthcxr(tmp_path, 40, size=32, seed=0)
    records = read_chexpert(tmp_path / "test.csv")
    calls: list[tuple[list[str], list[str]]] = []

    def negative(images, sources, targets, edits) -> EditedBatch:
        calls.append((list(sources), list(targets)))
        out = (255 - images)[:, None]
        return EditedBatch(out, np.ones(out.shape, dtype=np.float32))

    spec = EditSpec.parse("remove:Support Devices")
    metrics = edit_evaluation.soundness(negative, None, records, 3, spec)
    images = np.stack([load_image(records.attrs["root"], p) for p in records["path"][:3]])
    error = (255 - 2 * images.astype(np.float64)) ** 2
    assert metrics["null_edit_n"] == metrics["round_trip_n"] == 3
    assert metrics["null_edit_psnr"] == pytest.approx(10 * np.log10(255**2 / error.mean()))
    assert metrics["null_edit_l1"] == pytest.approx(np.abs(255 - 2.0 * images).mean())
    assert metrics["round_trip_psnr"] == np.inf and metrics["round_trip_l1"] == 0.0
    assert metrics["round_trip_ssim"] == pytest.approx(1.0)
    (null_src, null_tgt), (there_src, there_tgt), (back_src, back_tgt) = calls
    assert null_src == null_tgt
    assert there_src != there_tgt and (back_src, back_tgt) == (there_tgt, there_src)


@pytest.mark.slow
def test_table1_rows_and_files(tmp_path) -> None:
    data = tmp_path / "synthcxr"
    write_synthcxr(data, 40, size=32, seed=0)
    model = save_pipeline(build_components("tiny", **SMALL), tmp_path / "model")
    network = OracleNetwork("resnet18", model_kwargs={"in_chans": 1, "num_classes": 11})
    oracle = save_oracle(network, 32, tmp_path / "oracle")
    out = tmp_path / "table1"
    main(
        [
            "evaluate-edits",
            "--model",
            str(model),
            "--oracle",
            str(oracle),
            "--csv",
            str(data / "test.csv"),
            "--n",
            "2",
            "--out",
            str(out),
            "--edits",
            "[remove:Support Devices]",
            "--strengths",
            "[0.5]",
            "--settings.steps",
            "3",
            "--settings.blend",
            "prediction",
            "--settings.self_replace",
            "[0.4, 0.8]",
            "--published.steps",
            "2",
        ]
    )
    table = pd.read_csv(out / "table1.csv")
    methods = table["method"].tolist()
    assert methods[:2] == ["identity", "ground truth"]
    assert "SDEdit 0.5" in methods and "LEdits++" in methods
    assert "ours (direct + P2P, prediction blend, 3 steps) (ground-truth mask blend)" in methods
    identity = table.iloc[0]
    assert identity["effectiveness"] == 0.0 and identity["change_recovered"] == 0.0
    assert table.iloc[1]["change_recovered"] == 1.0 and table.iloc[1]["psnr_outside"] == np.inf
    assert (table["n"] == 2).all()
    assert {"psnr_outside", "others_unchanged", "frechet", "images_per_s"} <= set(table.columns)
    markdown = (out / "table1.md").read_text()
    assert markdown.startswith("| edit | method |") and "Soundness: the null edit" in markdown
    sound = pd.read_csv(out / "soundness.csv")
    ours = "ours (direct + P2P, prediction blend, 3 steps)"
    assert sound["method"].tolist() == [
        ours,
        f"{ours}, no mask",
        "DDIM + P2P",
        "DDIM + P2P, no mask",
    ]
    assert (sound[["null_edit_n", "round_trip_n"]] == 2).all(axis=None)
    # With its mask a null edit has no edited words and returns the source pixels; without
    # it the random model's VAE reconstruction shows.
    null = sound.set_index("method")["null_edit_psnr"]
    assert null[ours] == np.inf and np.isfinite(null[f"{ours}, no mask"])
    assert (out / "examples.png").is_file()
