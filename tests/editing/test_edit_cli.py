"""``prism-aug edit`` on a saved small model and a small SynthCXR folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prism_aug.cli import main
from prism_aug.data.synthcxr import write_synthcxr
from prism_aug.diffusion.export import save_pipeline

FAST = ["--settings.steps", "4", "--settings.self_replace", "[0.4, 0.8]"]


@pytest.fixture(scope="module")
def model_folder(small_model, tmp_path_factory):
    return save_pipeline(small_model, tmp_path_factory.mktemp("model") / "small")


def test_edit_csv_writes_grid_images_and_table(model_folder, tmp_path, capsys):
    data = tmp_path / "synthcxr"
    write_synthcxr(data, 12, size=32, seed=0)
    out = tmp_path / "edits"
    argv = [
        "edit",
        "--model",
        str(model_folder),
        "--input",
        str(data / "train.csv"),
        "--edit",
        "remove:Support Devices",
        "--out",
        str(out),
        "--limit",
        "2",
        *FAST,
    ]
    main(argv)
    table = pd.read_csv(out / "edits.csv")
    assert len(table) == 2 and (table["edit"] == "remove:Support Devices").all()
    assert table["source_prompt"].str.contains("Support Devices").all()
    assert not table["target_prompt"].str.contains("Support Devices").any()
    assert set(table["self_replace"]) <= {0.4, 0.8} and (table["mask_threshold"] == 0.3).all()
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 + 2 * 34, 2 + 3 * 34)
    assert all((out / f"{key}.png").is_file() for key in table["key"])
    printed = capsys.readouterr().out
    assert "skipped" in printed and "nothing to remove" in printed
    assert "2 edited (2 unverified)" in printed  # no --oracle: kept, not called accepted
    assert (table["status"] == "unverified").all() and (table["reason"] == "no verifier").all()


def test_edit_one_image_with_labels(model_folder, small_model, radiographs, tmp_path):
    image = tmp_path / "cxr.png"
    Image.fromarray(radiographs[0]).save(image)
    out = tmp_path / "one"
    main(
        [
            "edit",
            "--model",
            str(model_folder),
            "--input",
            str(image),
            "--labels",
            "Pleural Effusion",
            "--edit",
            "remove:Pleural Effusion",
            "--out",
            str(out),
            *FAST,
        ]
    )
    assert pd.read_csv(out / "edits.csv")["target_prompt"].tolist() == [
        "Normal chest X-ray with no significant findings"
    ]


def test_edit_errors_name_the_problem(model_folder, radiographs, tmp_path):
    image = tmp_path / "cxr.png"
    Image.fromarray(radiographs[0]).save(image)
    common = ["edit", "--model", str(model_folder), "--input", str(image), "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="applies to no image"):
        main([*common, "--edit", "remove:Pleural Effusion"])
    with pytest.raises(SystemExit, match="unknown findings \\['Efusion'\\]"):
        main([*common, "--labels", "Efusion", "--edit", "remove:Pleural Effusion"])
    with pytest.raises(SystemExit, match="unknown edit action 'delete'"):
        main([*common, "--edit", "delete:Pleural Effusion"])
