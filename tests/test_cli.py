"""The ``prism-aug`` command line, end to end: render SynthCXR, then summarise it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prism_aug.cli import main
from prism_aug.data.records import read_chexpert


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    main(list(argv))
    return json.loads(capsys.readouterr().out)


def test_summary_json_and_text(capsys, write_csv, chexpert_row) -> None:
    csv_path = write_csv(
        [
            chexpert_row(1, Pleural_Effusion=1.0, Support_Devices=1.0),
            chexpert_row(2, Pleural_Effusion=0.0, Support_Devices=0.0),
            chexpert_row(3, view="Lateral", Pleural_Effusion=1.0),
        ]
    )
    summary = run_json(
        capsys, "data", "summary", "--csv", str(csv_path), "--target", "Pleural Effusion",
        "--attribute", "Support Devices", "--json",
    )  # fmt: skip
    assert summary["rows_read"] == 3 and summary["rows_kept"] == 2
    assert summary["groups"]["counts"]["y=1,a=1"] == 1
    assert summary["groups"]["counts"]["y=0,a=0"] == 1

    main(["data", "summary", "--csv", str(csv_path), "--views", "[Frontal, Lateral]"])
    text = capsys.readouterr().out
    assert "Pleural Effusion" in text and "3" in text


def test_summary_errors_name_the_problem(capsys, write_csv, chexpert_row) -> None:
    csv_path = write_csv([chexpert_row(1)], columns=["Path", "Sex", "Age"])
    with pytest.raises(SystemExit, match="Frontal/Lateral"):
        main(["data", "summary", "--csv", str(csv_path)])

    csv_path = write_csv([chexpert_row(1)], name="ok/train.csv")
    with pytest.raises(SystemExit, match="Pleural Effusions"):
        main(["data", "summary", "--csv", str(csv_path), "--target", "Pleural Effusions",
              "--attribute", "Support Devices"])  # fmt: skip
    with pytest.raises(SystemExit, match=r"missing\.csv"):
        main(["data", "summary", "--csv", str(csv_path.parent / "missing.csv")])


@pytest.mark.slow
def test_synthcxr_then_summary_end_to_end(capsys, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    sheet = tmp_path / "sheet.png"
    main(["data", "synthcxr", "--out", str(out), "--n", "60", "--size", "64",
          "--contact_sheet", str(sheet)])  # fmt: skip
    capsys.readouterr()
    assert sheet.stat().st_size > 0
    for split in ("train", "valid", "test"):
        records = read_chexpert(out / f"{split}.csv")
        assert all(Path(records.attrs["root"], p).is_file() for p in records["path"])

    summary = run_json(
        capsys, "data", "summary", "--csv", str(out / "train.csv"), "--target",
        "Pleural Effusion", "--attribute", "Support Devices", "--json",
    )  # fmt: skip
    train = read_chexpert(out / "train.csv")
    assert summary["rows_kept"] == len(train)
    assert summary["splits"]["train"]["rows"] == len(train)  # the files agree with the hash
    counts = summary["groups"]["counts"]
    assert counts["excluded"] == 0
    assert sum(counts.values()) == len(train)
